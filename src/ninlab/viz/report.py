"""One self-contained HTML page about a run: what it was, how it trained, what it gets right and
wrong, and what it looks at.

Sections: config, training curves, per-class accuracy, confusion matrix, model summary, sparsity
by depth, and a gallery of class activation maps for right and wrong test predictions. Every
image is a PNG inside the file (a base64 data URI); there is no network access, external CSS or
JavaScript. A tiny inline script checks, on load, that every image decoded and that no script
error or console.error happened, and writes the result into the hidden #report-status element
(data-images, data-broken, data-errors, data-loaded), which the browser test reads.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ninlab import __version__
from ninlab.analysis import summary
from ninlab.data import Dataset
from ninlab.runs import Run, atomic_write
from ninlab.viz.cam import cam_method, class_activation_maps, draw_cam
from ninlab.viz.images import display_image, figure_png, pyplot
from ninlab.viz.sparsity import STATEMENT, SparsityReport, run_sparsity, sparsity_figure

SECTIONS = {
    "config": "Config",
    "curves": "Training curves",
    "accuracy": "Per-class accuracy",
    "confusion": "Confusion matrix",
    "summary": "Model summary",
    "sparsity": "Sparsity by depth",
    "cams": "Class activation maps",
}

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee;
  text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
pre.wrap { white-space: pre-wrap; }
img { max-width: 100%; } .gallery { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; width: 170px; } figcaption { font-size: 12px; }
.wrong figcaption { color: #b00; } nav a { margin-right: 1em; }
"""

# Runs before anything else: records script errors and console.error, then checks the images.
CHECK_SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message || e)); });
  var consoleError = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
    var s = document.getElementById("report-status");
    s.setAttribute("data-images", String(images.length));
    s.setAttribute("data-broken", String(broken.length));
    s.setAttribute("data-errors", String(errors.length));
    s.textContent = errors.join("\\n");
    s.setAttribute("data-loaded", "yes");
  });
})();
"""


@dataclass
class Report:
    """The page and the numbers it shows."""

    html: str
    accuracy: float  # on the test images used
    images: int  # test images used
    sparsity: SparsityReport

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Path(tmp).write_text(self.html, encoding="utf-8"))
        return path


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt)}"{w}>'


def _table(rows: list[tuple], header: tuple, numeric: set[int] = frozenset()) -> str:
    def cell(k, v, tag="td"):
        cls = ' class="num"' if k in numeric and tag == "td" else ""
        return f"<{tag}{cls}>{html.escape(str(v))}</{tag}>"

    head = "".join(cell(k, h, "th") for k, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell(k, v) for k, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def read_history(run_dir: Path) -> list[dict]:
    """The per-epoch rows of metrics.jsonl (empty when there is none or it is damaged)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError:
        return []


def _curves(run: Run) -> str:
    png = run.path / "curves.png"
    if png.is_file():
        return _img(png.read_bytes(), "training curves")
    history = read_history(run.path)
    if history:
        from ninlab.train import plot_curves

        with tempfile.TemporaryDirectory() as tmp:
            plot_curves(history, Path(tmp) / "curves.png")
            return _img((Path(tmp) / "curves.png").read_bytes(), "training curves")
    return "<p>No curves: the run directory has neither curves.png nor metrics.jsonl.</p>"


def _confusion_png(conf: torch.Tensor, classes: list[str], title: str) -> bytes:
    from ninlab.train.metrics import plot_confusion

    with tempfile.TemporaryDirectory() as tmp:
        plot_confusion(conf, classes, Path(tmp) / "confusion.png", title)
        return (Path(tmp) / "confusion.png").read_bytes()


def _gallery(run: Run, images, labels, preds, probs, which: list[int], wrong: bool) -> str:
    if not which:
        return f"<p>No {'wrong' if wrong else 'right'} predictions among these test images.</p>"
    classes = run.classes
    x = run.preprocess(images[which])
    cams = class_activation_maps(run.model, x, preds[which].tolist())
    plt = pyplot()
    items = []
    for i, cam in zip(which, cams, strict=True):
        fig, ax = plt.subplots(figsize=(2.2, 2.2))
        draw_cam(ax, display_image(images[i], run.config["input_size"]), cam)
        fig.tight_layout(pad=0.1)
        cap = (
            f"#{i}: true {classes[int(labels[i])]}, predicted {classes[int(preds[i])]} "
            f"({100 * float(probs[i]):.1f}%)"
        )
        caption = f"<figcaption>{html.escape(cap)}</figcaption>"
        items.append(f"<figure>{_img(figure_png(fig), cap)}{caption}</figure>")
    cls = "gallery wrong" if wrong else "gallery"
    return f'<div class="{cls}">{"".join(items)}</div>'


def build_report(
    run: Run, data: Dataset, limit: int | None = None, gallery: int = 6, batch_size: int = 256
) -> Report:
    """Evaluate the run on (the first `limit` of) its test set and lay out the page."""
    from ninlab.train import TrainConfig, evaluate
    from ninlab.train.metrics import confusion_matrix, per_class_accuracy

    cfg = TrainConfig.from_dict(run.config)
    classes = list(run.classes)
    images, labels = data.test_images[:limit], data.test_labels[:limit]
    ev = evaluate(run.model, images, labels, cfg)
    preds = ev["preds"]
    probs = torch.softmax(ev["logits"], 1).max(1).values
    conf = confusion_matrix(preds, labels, len(classes))
    per_class = per_class_accuracy(conf).tolist()
    model_name = run.config.get("model", "?")
    title = f"{model_name} on {data.name}: {100 * ev['acc']:.2f}%"
    sp = run_sparsity(run, images, batch_size)
    size = (run.config["in_chans"], run.config["input_size"], run.config["input_size"])
    right = (preds == labels).nonzero().flatten()[:gallery].tolist()
    wrong = (preds != labels).nonzero().flatten()[:gallery].tolist()

    parts = {}
    parts["config"] = _table(
        [(k, json.dumps(v) if isinstance(v, list | dict) else v) for k, v in run.config.items()],
        ("field", "value"),
    )
    parts["curves"] = _curves(run)
    rows = [
        (c, int(conf[k, k]), int(conf[k].sum()), f"{100 * a:.2f}%")
        for k, (c, a) in enumerate(zip(classes, per_class, strict=True))
    ]
    parts["accuracy"] = (
        f"<p>Test accuracy {100 * ev['acc']:.2f}% ({int(conf.diag().sum()):,} of {len(labels):,}"
        f" images), test loss {ev['loss']:.4f}.</p>"
        + _table(rows, ("class", "right", "images", "accuracy"), {1, 2, 3})
    )
    parts["confusion"] = _img(_confusion_png(conf, classes, title), "confusion matrix")
    parts["summary"] = f"<pre>{html.escape(summary(run.model, size).table())}</pre>"
    parts["sparsity"] = (
        _img(figure_png(sparsity_figure(sp)), "sparsity by depth")
        + f"<p>Statement 24, &ldquo;{html.escape(STATEMENT)}&rdquo;: <b>{sp.verdict}</b> for "
        f"this run (at initialisation: {sp.verdict_init}).</p>"
        + f'<pre class="wrap">{html.escape(sp.table())}</pre>'
    )
    method, layer = cam_method(run.model)
    parts["cams"] = (
        f"<p>{html.escape(method)} of <code>{html.escape(layer)}</code> for the "
        "predicted class, drawn over the input; the box is the receptive field of the strongest "
        "unit. Predictions and probabilities as <code>ninlab eval</code> makes them.</p>"
        f"<h3>Right</h3>{_gallery(run, images, labels, preds, probs, right, False)}"
        f"<h3>Wrong</h3>{_gallery(run, images, labels, preds, probs, wrong, True)}"
    )

    nav = "".join(f'<a href="#{k}">{v}</a>' for k, v in SECTIONS.items())
    body = "".join(
        f'<section id="{k}"><h2>{v}</h2>{parts[k]}</section>' for k, v in SECTIONS.items()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>ninlab report: {html.escape(str(run.path))}</title>
<style>{STYLE}</style>
<script>{CHECK_SCRIPT}</script>
</head><body>
<div id="report-status" hidden></div>
<h1>{html.escape(title)}</h1>
<p>Run <code>{html.escape(str(run.path))}</code>, weights <code>{run.weights.name}</code>,
{len(labels):,} test images. Written by ninlab {__version__} on {time.strftime("%Y-%m-%d %H:%M")}.
</p>
<nav>{nav}</nav>
{body}
</body></html>
"""
    return Report(page, ev["acc"], len(labels), sp)
