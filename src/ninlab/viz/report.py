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
import time
from dataclasses import dataclass
from pathlib import Path

from ninlab.analysis import summary
from ninlab.analysis.sparsity import STATEMENT
from ninlab.data import Dataset
from ninlab.files import write_text
from ninlab.plotting import figure, png_bytes
from ninlab.runs import CURVES, Evaluation, Run, evaluate_run
from ninlab.train import curves_figure
from ninlab.version import __version__
from ninlab.viz.cam import cam_method, class_activation_maps, draw_cam
from ninlab.viz.images import display_image
from ninlab.viz.sparsity import SparsityReport, run_sparsity, sparsity_figure

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
        return write_text(path, self.html)


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


def _curves(run: Run) -> str:
    png = run.path / CURVES
    if png.is_file():
        return _img(png.read_bytes(), "training curves")
    history = run.history()
    if history:
        return _img(png_bytes(curves_figure(history)), "training curves")
    return "<p>No curves: the run has not finished an epoch.</p>"


def _gallery(run: Run, images, ev: Evaluation, which: list[int], wrong: bool) -> str:
    if not which:
        return f"<p>No {'wrong' if wrong else 'right'} predictions among these test images.</p>"
    classes = run.classes
    cams = class_activation_maps(run.model, run.preprocess(images[which]), ev.preds[which].tolist())
    items = []
    for i, cam in zip(which, cams, strict=True):
        fig, ax = figure(figsize=(2.2, 2.2))
        draw_cam(ax, display_image(images[i], run.config.input_size), cam)
        fig.tight_layout(pad=0.1)
        cap = (
            f"#{i}: true {classes[int(ev.labels[i])]}, predicted {classes[int(ev.preds[i])]} "
            f"({100 * float(ev.confidence[i]):.1f}%)"
        )
        caption = f"<figcaption>{html.escape(cap)}</figcaption>"
        items.append(f"<figure>{_img(png_bytes(fig), cap)}{caption}</figure>")
    cls = "gallery wrong" if wrong else "gallery"
    return f'<div class="{cls}">{"".join(items)}</div>'


def build_report(
    run: Run,
    data: Dataset | None = None,
    limit: int | None = None,
    gallery: int = 6,
    batch_size: int = 256,
) -> Report:
    """Evaluate the run on (the first `limit` of) its test set and lay out the page."""
    data = data or run.dataset()
    ev = evaluate_run(run, data, limit)
    images = data.test_images[:limit]
    classes = run.classes
    sp = run_sparsity(run, images, batch_size)
    right = (ev.preds == ev.labels).nonzero().flatten()[:gallery].tolist()
    wrong = (ev.preds != ev.labels).nonzero().flatten()[:gallery].tolist()
    title = f"{run.config.model} on {data.name}: {100 * ev.accuracy:.2f}%"

    parts = {}
    parts["config"] = _table(
        [
            (k, json.dumps(v) if isinstance(v, list | dict) else v)
            for k, v in run.config.to_dict().items()
        ],
        ("field", "value"),
    )
    parts["curves"] = _curves(run)
    rows = [
        (c, int(ev.confusion[k, k]), int(ev.confusion[k].sum()), f"{100 * a:.2f}%")
        for k, (c, a) in enumerate(zip(classes, ev.per_class, strict=True))
    ]
    parts["accuracy"] = (
        f"<p>Test accuracy {100 * ev.accuracy:.2f}% ({ev.correct:,} of {len(ev.labels):,}"
        f" images), test loss {ev.loss:.4f}.</p>"
        + _table(rows, ("class", "right", "images", "accuracy"), {1, 2, 3})
    )
    parts["confusion"] = _img(png_bytes(ev.confusion_figure()), "confusion matrix")
    parts["summary"] = f"<pre>{html.escape(summary(run.model, run.input_shape).table())}</pre>"
    parts["sparsity"] = (
        _img(png_bytes(sparsity_figure(sp)), "sparsity by depth")
        + f"<p>Statement 24, &ldquo;{html.escape(STATEMENT)}&rdquo;: <b>{sp.verdict}</b> for "
        f"this run (at initialisation: {sp.verdict_init}).</p>"
        + f'<pre class="wrap">{html.escape(sp.table())}</pre>'
    )
    method, layer = cam_method(run.model)
    parts["cams"] = (
        f"<p>{html.escape(method)} of <code>{html.escape(layer)}</code> for the "
        "predicted class, drawn over the input; the box is the receptive field of the strongest "
        "unit. Predictions and probabilities as <code>ninlab eval</code> makes them.</p>"
        f"<h3>Right</h3>{_gallery(run, images, ev, right, False)}"
        f"<h3>Wrong</h3>{_gallery(run, images, ev, wrong, True)}"
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
{len(ev.labels):,} test images.
Written by ninlab {__version__} on {time.strftime("%Y-%m-%d %H:%M")}.</p>
<nav>{nav}</nav>
{body}
</body></html>
"""
    return Report(page, ev.accuracy, len(ev.labels), sp)
