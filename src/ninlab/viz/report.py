"""One HTML page about a run that explains itself: what ran where, how it trained, what it gets
right and wrong and why, and what it looks at.

Sections (SECTIONS): the run's facts as training recorded them (`ninlab.runs.read_facts`), the
curves, precision / recall / F1 per class, the confusion counts and row shares with the most
confident mistakes of the most confused pairs, class activation maps of examples chosen by a
stated rule, sparsity by depth with its verdict in words, the model summary, the config, and the
claims the page links to. Every number comes from the run's files or from evaluating it now.
The page itself (self-contained, readable at 420 px, checked on load) is `ninlab.viz.page`.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ninlab.analysis import summary
from ninlab.analysis.cam import (
    BOX_MOST,
    CAM,
    box_share,
    boxes_shown,
    cam_method,
    class_activation_maps,
    peak_on_background,
    smallest_box_share,
)
from ninlab.claims.sparsity import STATEMENT, SparsityReport, run_sparsity
from ninlab.data import Dataset
from ninlab.errors import NinlabError
from ninlab.files import write_text
from ninlab.runs import BEST, CURVES, Evaluation, Run, evaluate_run
from ninlab.runs.inputs import display_image
from ninlab.runs.run import averaged
from ninlab.train import PANELS, curve_figure, precision_recall_f1, smoothed_loss_floor
from ninlab.train.metrics import row_shares
from ninlab.version import __version__
from ninlab.viz.cam import cam_panels
from ninlab.viz.page import esc, image, matrix, page, picture, table, thumbnail
from ninlab.viz.sparsity import dead_figure, zeros_figure

SECTIONS = {
    "facts": "Run facts",
    "curves": "Training curves",
    "classes": "Per class",
    "confusion": "Confusion",
    "cams": "Class activation maps",
    "sparsity": "Sparsity by depth",
    "summary": "Model summary",
    "config": "Config",
    "claims": "Claims",
}
PAIRS = 3  # most confused pairs shown with their most confident mistakes
PER_PAIR = 4  # mistakes shown per pair


@dataclass
class Report:
    """The page and the numbers it shows."""

    html: str
    accuracy: float  # on the test images used
    images: int  # test images used
    sparsity: SparsityReport

    def write(self, path: str | Path) -> Path:
        return write_text(path, self.html)


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


# ---- run facts ----


def _facts(run: Run, data: Dataset, ev: Evaluation, history: list[dict]) -> str:
    cfg = run.config
    best = max(history, key=lambda r: r["test_acc"]) if history else None  # first on a tie
    try:
        sessions, unread = run.facts(), ""
    except NinlabError as e:
        sessions, unread = [], str(e)
    missing = unread or "not recorded (trained by a ninlab that did not record its facts)"
    rows = []
    if sessions:
        first, last = sessions[0], sessions[-1]
        start, end = first.get("started"), last.get("ended") or "not finished"
        when = f"{start} to {end}".replace("T", " ")
        if len(sessions) > 1:
            when += f", in {len(sessions)} sessions (stopped and resumed)"
        rows.append(("date", when))
    else:
        rows.append(("date", missing))
    if history and "elapsed" in history[-1]:
        rows.append(
            (
                "wall time",
                f"{history[-1]['elapsed']:,.1f} s of training and test "
                f"evaluation over {len(history)} epochs (data loading not counted)",
            )
        )
        rates = [r["images_per_s"] for r in history if "images_per_s" in r]
        if rates:
            rows.append(
                (
                    "images/s",
                    f"{statistics.median(rates):,.0f} training images/s, median "
                    f"of the epochs ({min(rates):,.0f} to {max(rates):,.0f})",
                )
            )
    for k, s in enumerate(sessions):
        tag = f" (session {k + 1})" if len(sessions) > 1 else ""
        procs = s.get("processes") or 1
        procs = f" per process, {procs} processes" if procs > 1 else ""
        rows.append(
            (
                f"device{tag}",
                f"{s.get('device')} ({s.get('device_name')}), "
                f"{s.get('precision')} precision, {s.get('threads')} threads{procs}",
            )
        )
        rows.append(
            (
                f"versions{tag}",
                f"ninlab {s.get('ninlab')}, torch {s.get('torch')}, "
                f"Python {s.get('python')}, {s.get('platform')}",
            )
        )
        rows.append((f"command{tag}", s.get("command", "")))
    if not sessions:
        rows += [("device", missing), ("versions", missing), ("command", missing)]
    n_train = min(cfg.limit_train or len(data.train_images), len(data.train_images))
    norm = ", ".join(f"{m:.4f}/{s:.4f}" for m, s in zip(cfg.mean, cfg.std, strict=True))
    rows.append(
        (
            "data",
            f"{data.name}: {n_train:,} training images, {len(ev.labels):,} test "
            f"images on this page; {cfg.input_size} px, {cfg.in_chans} channel(s), "
            f"normalised by mean/std {norm}",
        )
    )
    floor = smoothed_loss_floor(cfg.label_smoothing, len(cfg.classes))
    smooth = (
        f"label smoothing {cfg.label_smoothing:g} (train loss cannot go below {floor:.2f})"
        if cfg.label_smoothing
        else "no label smoothing"
    )
    rows.append(
        (
            "recipe",
            f"{cfg.recipe}: {cfg.model}, {cfg.epochs} epochs of batch "
            f"{cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g} ({cfg.schedule}), "
            f"{cfg.augmentation() or 'no augmentation'}, {smooth}",
        )
    )
    rows.append(("test-time shifts" if cfg.tta_shift else "test-time flip", _tta(cfg)))
    if best is not None:
        shown = "these weights" if run.weights.name.startswith("best") else "not these weights"
        rows.append(
            (
                "best epoch",
                f"epoch {best['epoch']}, {_pct(best['test_acc'])}: {BEST}, "
                "chosen on the test set itself, so its accuracy is a slightly optimistic "
                "estimate for new images "
                f"(best.safetensors; {shown})",
            )
        )
    rows.append(("weights shown", f"{run.weights.name}"))
    return table(rows, ("", ""), keys=True)


def _tta(cfg) -> str:
    if averaged(cfg):
        return (
            f"yes: every prediction and probability on this page averages {averaged(cfg)}, as "
            "ninlab eval and predict do; the class maps come from one plain forward, so ninlab "
            "cam prints slightly different probabilities"
        )
    return (
        "no: every probability on this page is one plain forward of the image, the same "
        "numbers as ninlab eval, predict and cam print"
    )


# ---- curves ----


def _curves(run: Run, history: list[dict]) -> str:
    if not history:
        if (run.path / CURVES).is_file():
            return image((run.path / CURVES).read_bytes(), "training curves")
        return "<p>No curves: the run has not finished an epoch.</p>"
    cfg = run.config
    floor = smoothed_loss_floor(cfg.label_smoothing, len(cfg.classes))
    above = history[-1].get("train_loss", 0) > history[-1].get("test_loss", 0)
    why = [
        "The train loss is the mean over each epoch's batches while the weights still change",
        f", on augmented images ({cfg.augmentation()})" if cfg.augmentation() else "",
        f"; with label smoothing {cfg.label_smoothing:g} it cannot go below {floor:.2f}, "
        "while the test loss (plain cross-entropy of the epoch's last weights) can"
        if floor
        else "",
        ". So the train loss sitting above the test loss, as here, is not a sign of "
        "under-fitting by itself; the accuracies compare like with like more closely"
        if above
        else "",
        ".",
    ]
    figs = "".join(picture(curve_figure(p, history, cfg), f"{p} by epoch") for p in PANELS)
    return f'<p>{esc("".join(why))}</p><div class="panels">{figs}</div>'


# ---- per class and confusion ----


def _classes(ev: Evaluation) -> str:
    classes = ev.run.classes
    precision, recall, f1 = precision_recall_f1(ev.confusion)
    predicted = ev.confusion.sum(0)
    rows = [
        (
            c,
            int(ev.confusion[k].sum()),
            int(ev.confusion[k, k]),
            int(predicted[k]),
            _pct(recall[k]),
            _pct(precision[k]),
            f"{f1[k]:.3f}",
        )
        for k, c in enumerate(classes)
    ]
    worst = int(f1.argmin())
    return (
        f"<p>Test accuracy {_pct(ev.accuracy)} ({ev.correct:,} of {len(ev.labels):,} images), "
        f"test loss {ev.loss:.4f}. Recall: of a class's images, the share predicted as it (its "
        "accuracy). Precision: of the images predicted as a class, the share that are it. "
        f"F1: their harmonic mean. Weakest: <b>{esc(classes[worst])}</b> "
        f"(F1 {f1[worst]:.3f}).</p>"
        + table(
            rows,
            ("class", "images", "right", "predicted as", "recall", "precision", "F1"),
            {1, 2, 3, 4, 5, 6},
        )
    )


def _confusion(ev: Evaluation, images: torch.Tensor) -> str:
    probs = ev.probabilities
    classes, counts = ev.run.classes, ev.confusion
    shares = row_shares(counts)
    off = shares.clone().fill_diagonal_(0)
    top = max(float(off.max()), 1e-9)
    n = len(classes)
    parts = []
    if n <= 20:
        parts.append(
            "<p>Counts: rows are the true class, columns the prediction; the diagonal (grey) is "
            "right. A mistake's colour is its share of the true class's images.</p>"
            + matrix(
                classes,
                text=lambda i, j: f"{int(counts[i, j]):,}",
                tint=lambda i, j: None if i == j else float(off[i, j]) / top,
            )
            + "<p>The same, row-normalised with the diagonal left out: each mistake as a share "
            f'of its true class\'s images. Colour: <span class="legend"></span> 0 to '
            f"{_pct(top, 1)}.</p>"
            + matrix(
                classes,
                text=lambda i, j: (
                    "" if i == j or not counts[i, j] else f"{100 * float(shares[i, j]):.1f}"
                ),
                tint=lambda i, j: None if i == j else float(off[i, j]) / top,
            )
        )
    else:
        parts.append(picture(ev.confusion_figure(), "confusion matrix"))
    pairs = [divmod(int(k), n) for k in off.flatten().argsort(descending=True)[:PAIRS]]
    pairs = [(i, j) for i, j in pairs if counts[i, j] > 0]
    if not pairs:
        return "".join(parts) + "<p>No mistakes among these test images.</p>"
    parts.append(
        f"<h3>The {len(pairs)} most confused pairs, most confident mistakes first</h3><p>For each "
        f"pair, up to {PER_PAIR} of its mistakes with the highest probability of the wrong "
        "class, each with the model's top 3 probabilities.</p>"
    )
    size = ev.run.config.input_size
    for i, j in pairs:
        which = ((ev.labels == i) & (ev.preds == j)).nonzero().flatten()
        which = which[probs[which, j].argsort(descending=True, stable=True)][:PER_PAIR].tolist()
        items = []
        for k in which:
            p, c = probs[k].topk(min(3, n))
            top3 = "<br>".join(
                f"{esc(classes[int(cc)])} {_pct(pp, 1)}" for pp, cc in zip(p, c, strict=True)
            )
            thumb = thumbnail(display_image(images[k], size))
            items.append(f"<figure>{thumb}<figcaption>#{k}<br>{top3}</figcaption></figure>")
        parts.append(
            f"<p><b>{esc(classes[i])} \u2192 {esc(classes[j])}</b>: {int(counts[i, j]):,} of "
            f"{int(counts[i].sum()):,} {esc(classes[i])} images "
            f'({_pct(shares[i, j], 1)})</p><div class="panels thumbs wrong">{"".join(items)}</div>'
        )
    return "".join(parts)


# ---- class activation maps ----


def _cams(run: Run, images, ev: Evaluation, gallery: int) -> str:
    method, layer = cam_method(run.model)
    right = (ev.preds == ev.labels).nonzero().flatten()
    wrong = (ev.preds != ev.labels).nonzero().flatten()
    conf = ev.confidence
    right = right[conf[right].argsort(descending=True, stable=True)][:gallery].tolist()
    wrong = wrong[conf[wrong].argsort(descending=True, stable=True)][:gallery].tolist()
    mean = {
        "class map": "averages to the model's logit for the class",
        "CAM": "averages to the model's logit for the class (bias included)",
        "Grad-CAM": "weighs channels by gradients (its mean is not the logit)",
    }[method]
    sample = class_activation_maps(run.model, run.preprocess(images[:1]))[0]
    never = smallest_box_share(sample) > BOX_MOST  # no box of this model is ever drawn
    h, w = sample.input_size
    fh, fw = sample.field.size
    if never:
        box = (
            f"No box is drawn for this model: the strongest unit's receptive field ({fh}x{fw} px, "
            f"every {sample.field.jump[0]} px) covers more than {100 * BOX_MOST:.0f}% of the "
            f"{h}x{w} image wherever it lies, so it says nothing about where; the colours do."
        )
    else:
        box = (
            "The white box is the input the strongest unit of the map sees (its receptive "
            "field, clipped to the image) and + its centre; the box is left out where it would "
            f"cover more than {100 * BOX_MOST:.0f}% of the image, as it then says nothing about "
            "where."
        )
    ok = ev.preds == ev.labels
    typical = f"{100 * conf[ok].median().item():.1f}%" if ok.any() else "none"
    eps = run.config.label_smoothing
    target = 1 - eps + eps / len(run.classes)
    smoothing = f"; label smoothing {eps:g} trains towards {100 * target:.1f}%" if eps else ""
    intro = (
        f"<p>{esc(method[:1].upper() + method[1:])} of <code>{esc(layer)}</code>: the evidence "
        "for a class at each "
        f"position, drawn over the input (colour bar: map units; the map {mean}). "
        "<b>Examples are chosen by rule</b>: the most confident right predictions, and the most "
        "confident wrong ones, by the predicted class's probability (right predictions have a "
        f"median probability of {typical}{smoothing}). For a mistake, the true class's map stands "
        f"beside the predicted one, on the same colour scale. {box}</p>"
    )
    drawn: list[CAM] = []
    galleries = (
        f"<h3>Most confident right ({len(right)})</h3>"
        + _cam_gallery(run, images, ev, right, drawn, never)
        + f"<h3>Most confident wrong ({len(wrong)})</h3>"
        + _cam_gallery(run, images, ev, wrong, drawn, never)
    )
    return intro + _exactness(drawn) + galleries


def _exactness(cams: list[CAM]) -> str:
    """The check of "mean = logit" on the maps drawn, in words beside its number."""
    checked = [c for c in cams if c.exact is not None]
    if not checked:
        return ""
    worst = max(abs(c.map_mean - c.logit) for c in checked)
    right = sum(bool(c.exact) for c in checked)
    verdict = (
        "each averages to the model's logit for its class"
        if right == len(checked)
        else f"only {right} average to the model's logit for their class"
    )
    return (
        f'<p>Checked on the {len(checked)} maps drawn: <span class="verdict">{verdict}</span> '
        f"(largest difference {worst:.1e}), so the colours add up to the model's score.</p>"
    )


def _cam_gallery(run: Run, images, ev: Evaluation, which, drawn, never: bool) -> str:
    """The pictures of `which`; the maps drawn are appended to `drawn`. never: no box is ever
    drawn (said once above the galleries, not under each picture)."""
    if not which:
        return "<p>None among these test images.</p>"
    classes = run.classes
    x = run.preprocess(images[which])
    cams = class_activation_maps(run.model, x, ev.preds[which].tolist())
    mistakes = bool((ev.preds[which] != ev.labels[which]).any())
    # the true class's maps: a second pass only for mistakes (for a right one they are the same)
    truth = class_activation_maps(run.model, x, ev.labels[which].tolist()) if mistakes else cams
    probs = ev.probabilities
    items = []
    for i, cam, true_cam in zip(which, cams, truth, strict=True):
        wrong = int(ev.preds[i]) != int(ev.labels[i])
        drawn += [cam, true_cam] if wrong else [cam]
        display = display_image(images[i], run.config.input_size)
        fig = cam_panels(display, cam, classes, true_cam if wrong else None)
        label, pred = classes[int(ev.labels[i])], classes[int(ev.preds[i])]
        notes = []
        if not never and not boxes_shown([cam, true_cam] if wrong else [cam]):
            top, left, bottom, right = max((cam, true_cam), key=box_share).box
            h, w = cam.input_size
            notes.append(f"box left out ({bottom - top}x{right - left} px of {h}x{w})")
        if peak_on_background(display, cam):
            notes.append("the map peaks on the background, not on the item")
        verdict = f"<b>predicted {esc(pred)}</b>" if wrong else f"predicted {esc(pred)}"
        cap = (
            f"#{i}: true {esc(label)}, {verdict}, {_pct(probs[i, ev.preds[i]], 1)}"
            + (f"; true class {_pct(probs[i, ev.labels[i]], 1)}" if wrong else "")
            + "".join(f"; {esc(n)}" for n in notes)
        )
        alt = f"test image {i}: input and class maps"
        items.append(f"<figure>{picture(fig, alt)}<figcaption>{cap}</figcaption></figure>")
    cls = "panels wrong" if mistakes else "panels"
    return f'<div class="{cls}">{"".join(items)}</div>'


# ---- sparsity, summary, config, claims ----


def _sparsity(sp: SparsityReport) -> str:
    words, dead = sp.words(), sp.dead_words()
    return (
        f'<p><span class="verdict">{esc(words[:1].upper() + words[1:])}</span> '
        f'(<a href="#claim-24">claim 24</a>: {esc(sp.verdict)}; at initialisation: '
        f"{esc(sp.verdict_init)}). {esc(dead[:1].upper() + dead[1:])}. Counted over "
        f"{sp.images:,} test images: the share of exact zeros after each ReLU, and the "
        "channels that are zero on every image (dead).</p>"
        f'<div class="panels">{picture(zeros_figure(sp), "exact zeros by depth")}'
        f"{picture(dead_figure(sp), 'dead channels by depth')}</div>"
        f"<pre>{esc(sp.table())}</pre>"
    )


def _config(run: Run) -> str:
    rows = [
        (k, json.dumps(v) if isinstance(v, list | dict) else v)
        for k, v in run.config.to_dict().items()
    ]
    return (
        "<p>As resolved when training began (<code>config.json</code>); "
        "<code>device</code> and <code>threads</code> say what was asked for, the run facts "
        "above what was used.</p>" + table(rows, ("field", "value"), keys=True)
    )


def _claims() -> str:
    return (
        '<p id="claim-24"><b>Claim 24</b> of the ledger (<code>ninlab claims</code>, which checks '
        f"25 statements about 1x1 convolutions and NiN): &ldquo;{esc(STATEMENT)}&rdquo;. It holds "
        "when the share of zeros never falls from one ReLU to the next; it differs when only the "
        "last layer has more than the first; otherwise it does not hold. "
        "<code>ninlab claims --run RUN_DIR</code> checks it with the others.</p>"
    )


def build_report(
    run: Run,
    data: Dataset | None = None,
    limit: int | None = None,
    gallery: int = 6,
    batch_size: int = 256,
    progress: bool = False,
) -> Report:
    """Evaluate the run on (the first `limit` of) its test set and lay out the page (progress:
    a bar for each pass over the test images, on a terminal)."""
    data = data or run.dataset()
    ev = evaluate_run(run, data, limit, progress)
    images = data.test_images[:limit]
    sp = run_sparsity(run, images, batch_size, progress=progress)
    history = run.history()
    parts = {
        "facts": _facts(run, data, ev, history),
        "curves": _curves(run, history),
        "classes": _classes(ev),
        "confusion": _confusion(ev, images),
        "cams": _cams(run, images, ev, gallery),
        "sparsity": _sparsity(sp),
        "summary": f"<pre>{esc(summary(run.model, run.input_shape).table())}</pre>",
        "config": _config(run),
        "claims": _claims(),
    }
    title = f"{run.config.model} on {data.name}: {_pct(ev.accuracy)}"
    lead = (
        f"Run <code>{esc(run.path)}</code>, weights <code>{esc(run.weights.name)}</code>, "
        f"{len(ev.labels):,} test images. Written by ninlab {__version__} on "
        f"{time.strftime('%Y-%m-%d %H:%M')}."
    )
    sections = {k: (v, parts[k]) for k, v in SECTIONS.items()}
    html = page(f"ninlab report: {run.path}", title, lead, sections)
    return Report(html, ev.accuracy, len(ev.labels), sp)
