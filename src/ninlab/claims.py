"""The ledger: every statement of docs/claims.md, checked. Claims 1-20 (arithmetic and shapes)
run real modules (`ninlab.analysis.shape_claims`); claims 21-25 (training) take their numbers
from the run directories given, through `ninlab.runs`, and reuse the sparsity counting of
`ninlab.analysis.sparsity` and the class maps of `ninlab.viz.cam`: nothing here is typed in but
the statements and the classic run's published curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ninlab.analysis.shape_claims import shape_claims
from ninlab.analysis.sparsity import STATEMENT, relu_channel_sparsity, sparser_with_depth
from ninlab.analysis.verdicts import DIFFERS, FAILS, HOLDS, NEEDS_RUN, Claim
from ninlab.data import resize
from ninlab.runs import WEIGHTS, load_run, read_config, read_metrics
from ninlab.train import TrainConfig
from ninlab.viz.cam import class_activation_maps

SEED_CURVE = (33.98, 59.43, 65.87, 67.74, 69.70, 73.27, 79.59, 84.71, 85.51, 85.74)  # claim 21
SEED_TOLERANCE = 1.0  # percentage points within which a re-run "holds" for claim 21


@dataclass
class RunRecord:
    """What the ledger reads from a run directory: config and per-epoch test accuracy (%)."""

    path: Path
    config: TrainConfig
    accs: list[float]  # test accuracy per epoch, in percent

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def has_weights(self) -> bool:
        return any((self.path / w).is_file() for w in WEIGHTS.values())


def read_run(path: str | Path) -> RunRecord:
    """Config and test accuracies of a run directory."""
    path = Path(path)
    config = read_config(path)
    accs = [100 * r["test_acc"] for r in read_metrics(path) if "test_acc" in r]
    return RunRecord(path, config, accs)


def _curve_text(accs: list[float]) -> str:
    return ", ".join(f"{a:.2f}" for a in accs)


def claim_21(runs: list[RunRecord]) -> Claim:
    stmt = "classic NiN, Fashion-MNIST at 224, SGD 0.1, batch 64, 10 epochs: 85.74%"
    stated = f"85.74% (curve {_curve_text(SEED_CURVE)})"
    run = next((r for r in runs if r.config.recipe == "seed" and r.accs), None)
    run = run or next((r for r in runs if r.model == "nin_seed" and r.accs), None)
    if run is None:
        return Claim(
            21, stmt, stated, "needs a run of recipe seed: `ninlab train --recipe seed`", NEEDS_RUN
        )
    want = {
        "model": "nin_seed",
        "dataset": "fashion-mnist",
        "input_size": 224,
        "lr": 0.1,
        "batch_size": 64,
        "epochs": 10,
        "limit_train": None,
    }
    off = [f"{k}={getattr(run.config, k)}" for k, v in want.items() if getattr(run.config, k) != v]
    final = run.accs[-1]
    delta = final - 85.74
    verdict = HOLDS if abs(delta) <= SEED_TOLERANCE and not off else DIFFERS
    computed = (
        f"{final:.2f}% after {len(run.accs)} epochs ({delta:+.2f} points; holds within "
        f"{SEED_TOLERANCE}); curve {_curve_text(run.accs)}"
    )
    if off:
        computed += f"; the run differs from the recipe: {', '.join(off)}"
    return Claim(21, stmt, stated, computed, verdict, str(run.path))


def _pick(runs: list[RunRecord], model: str, dataset: str | None = None) -> RunRecord | None:
    return next(
        (r for r in runs if r.model == model and r.accs and dataset in (None, r.config.dataset)),
        None,
    )


def claim_22(runs: list[RunRecord]) -> Claim:
    stmt = "one 1x1 conv per block trains better and faster than two on a small data set"
    one = _pick(runs, "nin_seed")
    two = _pick(runs, "nin_d2l", one.config.dataset if one else None)
    if one is None or two is None:
        return Claim(
            22,
            stmt,
            "one 1x1 better",
            "needs runs of nin_seed and nin_d2l on the same data set (--run twice)",
            NEEDS_RUN,
        )
    better = one.accs[-1] > two.accs[-1]
    auc1, auc2 = sum(one.accs) / len(one.accs), sum(two.accs) / len(two.accs)
    faster = auc1 > auc2
    verdict = HOLDS if better and faster else FAILS if not (better or faster) else DIFFERS
    return Claim(
        22,
        stmt,
        "one 1x1 better and faster",
        f"final {one.accs[-1]:.2f}% (one) vs {two.accs[-1]:.2f}% (two); mean over epochs "
        f"{auc1:.2f}% vs {auc2:.2f}% (faster = higher mean)",
        verdict,
        f"{one.path}, {two.path}",
    )


def claim_23(runs: list[RunRecord]) -> Claim:
    stmt = "NiN's Fashion-MNIST test accuracy is a little lower than AlexNet's"
    alex = _pick(runs, "alexnet_fc", "fashion-mnist")
    nin = _pick(runs, "nin_seed", "fashion-mnist") or _pick(runs, "nin_d2l", "fashion-mnist")
    if alex is None or nin is None:
        return Claim(
            23,
            stmt,
            "NiN a little lower",
            "needs runs of nin_seed (or nin_d2l) and alexnet_fc on fashion-mnist (--run twice)",
            NEEDS_RUN,
        )
    gap = alex.accs[-1] - nin.accs[-1]
    verdict = FAILS if gap <= 0 else HOLDS if gap <= 3 else DIFFERS
    return Claim(
        23,
        stmt,
        "NiN a little lower (within 3 points)",
        f"{nin.model} {nin.accs[-1]:.2f}% vs alexnet_fc {alex.accs[-1]:.2f}% "
        f"({gap:+.2f} points for AlexNet)",
        verdict,
        f"{nin.path}, {alex.path}",
    )


def _test_images(r: RunRecord, limit: int, data_dir: str | None):
    """The run (its best weights) and the first `limit` images of its test set."""
    run = load_run(r.path)
    return run, run.dataset(data_dir).test_images[:limit]


def claim_24(runs: list[RunRecord], limit: int, data_dir: str | None) -> Claim:
    runs = [r for r in runs if r.has_weights]
    if not runs:
        return Claim(
            24, STATEMENT, "sparser with depth", "needs a run with weights (`--run DIR`)", NEEDS_RUN
        )
    run, images = _test_images(runs[0], limit, data_dir)
    layers = relu_channel_sparsity(run.model, images, transform=run.preprocess)
    verdict = sparser_with_depth([layer.zeros for layer in layers])
    shown = ", ".join(f"{t.name.split('.', 1)[-1]} {100 * t.zeros:.1f}%" for t in layers)
    return Claim(
        24,
        STATEMENT,
        "zeros increase with depth",
        f"zeros after each ReLU over {len(images)} test images: {shown}"
        + ("" if verdict == HOLDS else "; not monotone"),
        verdict,
        str(runs[0].path),
    )


def claim_25(runs: list[RunRecord], limit: int, data_dir: str | None) -> Claim:
    stmt = (
        "the last layer's strongest activations, mapped back through the field, locate the object"
    )
    nin_runs = [r for r in runs if r.has_weights and r.model.startswith("nin")]
    r = nin_runs[0] if nin_runs else None
    if r is None or r.config.dataset not in ("mnist", "fashion-mnist", "kmnist"):
        return Claim(
            25,
            stmt,
            "locates the object",
            "needs a NiN run on a black-background "
            "data set (mnist, fashion-mnist, kmnist); see also `ninlab cam`",
            NEEDS_RUN,
        )
    run, raw = _test_images(r, limit, data_dir)
    cams = class_activation_maps(run.model, run.preprocess(raw))  # of the predicted classes
    field, (h, w) = cams[0].field, cams[0].map.shape
    img = resize(raw.float(), cams[0].input_size)[:, 0]  # N x H x W, 0-255
    fg = img > 0.1 * img.amax(dim=(1, 2), keepdim=True)  # the object: pixels above 10% of max

    def on_object(k: int, center: tuple[float, float]) -> bool:
        """Whether the input pixel nearest `center` is on image k's object."""
        row, col = (min(max(round(c), 0), n - 1) for c, n in zip(center, fg.shape[1:], strict=True))
        return bool(fg[k, row, col])

    hit = sum(on_object(k, cam.center) for k, cam in enumerate(cams)) / len(cams)
    centers = [field.center(i, j) for i in range(h) for j in range(w)]
    chance = sum(on_object(k, c) for k in range(len(cams)) for c in centers) / (len(cams) * h * w)
    return Claim(
        25,
        stmt,
        "the strongest unit's field centre is on the object",
        f"{100 * hit:.1f}% of {len(cams)} test images (any unit: {100 * chance:.1f}%), "
        f"{h}x{w} class map, field {field.size[0]} px, jump {field.jump[0]} px",
        HOLDS if hit > chance else FAILS,
        str(r.path),
    )


def check_claims(
    run_dirs: list[str | Path] = (), limit: int = 256, data_dir: str | None = None
) -> list[Claim]:
    """Every claim, checked: 1-20 by running modules, 21-25 from the given run directories (24
    and 25 on the first `limit` test images)."""
    runs = [read_run(p) for p in run_dirs]  # a bad directory fails before any work
    claims = shape_claims()
    claims += [claim_21(runs), claim_22(runs), claim_23(runs)]
    claims += [claim_24(runs, limit, data_dir), claim_25(runs, limit, data_dir)]
    return sorted(claims, key=lambda c: c.number)
