"""The ledger: every statement of docs/claims.md, checked. Claims 1-20 (arithmetic and shapes)
run real modules (`ninlab.claims.shapes`); claims 21-25 (training) take their numbers
from the run directories given, through `ninlab.runs`, and reuse the sparsity counting of
`ninlab.analysis.relu_zeros` and the scenes of `ninlab.viz.locate` (claim 25: class maps of test
items placed in larger scenes): nothing here is typed in but the statements and the classic
run's published curve.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from functools import cache, partial
from itertools import pairwise
from pathlib import Path

import torch

from ninlab.analysis.relu_zeros import relu_channel_sparsity
from ninlab.claims.shapes import shape_claims
from ninlab.claims.sparsity import STATEMENT, sparser_with_depth
from ninlab.claims.verdicts import DIFFERS, FAILS, HOLDS, NEEDS_RUN, NOT_COMPARABLE, Claim
from ninlab.data import Dataset
from ninlab.data.catalog import FASHION_CLASSES
from ninlab.locate import strongest_unit_hits
from ninlab.runs import WEIGHTS, load_run, read_config, read_metrics
from ninlab.train import (
    Callback,
    Interrupted,
    TrainConfig,
    build_model,
    fit,
    precision_for,
    prepare_config,
    resolve,
)

SEED_CURVE = (33.98, 59.43, 65.87, 67.74, 69.70, 73.27, 79.59, 84.71, 85.51, 85.74)  # claim 21
SEED_TOLERANCE = 1.0  # percentage points within which a re-run "holds" for claim 21
SEED_TRAIN_IMAGES = 60_000  # Fashion-MNIST's training set: one epoch of the classic recipe
TIMED_STEPS = 3  # claim 21 without a run: steps of the classic recipe timed, after an untimed one

# Twins: registered models that differ in the claimed aspect only, NiN's choice first
# (bench/claims_runs.py trains them, 3 seeds each).
TWINS_22 = (("nin_fast", "nin_fast2"), ("nin_seed", "nin_d2l"))  # one or two 1x1 convs a block
TWINS_23 = (("nin_fast", "fast_fc"),)  # a GAP head or an FC head on the same features
A_LITTLE = 3.0  # claim 23: "a little lower" is at most this many percentage points
MIN_SEEDS = 2  # runs of each twin below which there is no seed spread, so no verdict
# The config fields in which the runs of a twin pair may differ; the others are their setting.
FREE_FIELDS = ("model", "seed", "data_dir", "threads", "device", "dist_timeout", "eval_batch_size")


@dataclass
class RunRecord:
    """What the ledger reads from a run directory: config, per-epoch test accuracy (%) and the
    training time of its fastest epoch (evaluation excluded; the fastest, as other work on the
    machine slows some epochs down)."""

    path: Path
    config: TrainConfig
    accs: list[float]  # test accuracy per epoch, in percent
    epoch_seconds: float | None = None  # the fastest epoch's training time; None if not recorded

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def has_weights(self) -> bool:
        return any((self.path / w).is_file() for w in WEIGHTS.values())

    @property
    def complete(self) -> bool:
        """Whether every epoch of the config has a test accuracy (the run was not stopped)."""
        return len(self.accs) >= self.config.epochs

    @property
    def setting_key(self) -> str:
        """The config but for FREE_FIELDS, as one string: runs of one setting are comparable."""
        d = {k: v for k, v in self.config.to_dict().items() if k not in FREE_FIELDS}
        return json.dumps(d, sort_keys=True)


def read_run(path: str | Path) -> RunRecord:
    """Config, test accuracies and fastest epoch's training time of a run directory."""
    path = Path(path)
    config = read_config(path)
    rows = [r for r in read_metrics(path) if "test_acc" in r]
    times = [r.get("train_time") for r in rows]
    seconds = min(times) if rows and None not in times else None
    return RunRecord(path, config, [100 * r["test_acc"] for r in rows], seconds)


def _curve_text(accs: list[float]) -> str:
    return ", ".join(f"{a:.2f}" for a in accs)


class _StepClock(Callback):
    """perf_counter() after each step; asks fit() to stop after `steps` steps."""

    def __init__(self, steps: int):
        self.steps, self.times = steps, []

    def on_batch_end(self, state):
        self.times.append(time.perf_counter())
        if len(self.times) == self.steps:
            state.request_stop("timed")


@cache
def _seed_recipe_speed(batch_size: int | None = None) -> tuple[float, TrainConfig]:
    """Training images/s of the classic recipe on this machine's CPU, and the config timed: the
    fastest of TIMED_STEPS steps of nin_seed at 224 px (after one untimed step), through fit()
    as `ninlab train --recipe seed --device cpu` runs them, on random 28 px images (the speed
    does not depend on the pixels). `batch_size` None is the recipe's own (64). Measured once a
    process; the caller's random state is kept."""
    cfg = resolve("seed", batch_size=batch_size, device="cpu")
    n = cfg.batch_size * (TIMED_STEPS + 2)  # a step more than run: the clock stops in the epoch
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, len(FASHION_CLASSES), (n,), generator=g)
    data = Dataset("fashion-mnist", FASHION_CLASSES, images, labels, images, labels, {})
    clock = _StepClock(TIMED_STEPS + 1)
    with torch.random.fork_rng(devices=[]):  # building models draws from the global generator
        cfg = prepare_config(cfg, data)
        cfg = replace(cfg, precision=precision_for(cfg.precision, torch.device("cpu")))
        try:
            fit(build_model(cfg), data, cfg, callbacks=[clock], progress=False, log=None)
        except Interrupted:
            if len(clock.times) < clock.steps:
                raise  # Ctrl-C, not the clock
    return cfg.batch_size / min(b - a for a, b in pairwise(clock.times)), cfg


def _seed_projection() -> str:
    """The classic recipe's training time on this machine's CPU, projected from timed steps."""
    speed, cfg = _seed_recipe_speed()
    epochs = resolve("seed").epochs
    hours = epochs * SEED_TRAIN_IMAGES / speed / 3600
    return (
        f"projected here: {hours:.1f} h of training for {epochs} epochs of "
        f"{SEED_TRAIN_IMAGES:,} images ({speed:.1f} images/s, the fastest of {TIMED_STEPS} timed "
        f"steps of {cfg.model} at {cfg.input_size} px, batch {cfg.batch_size}, {cfg.precision}, "
        f"{torch.get_num_threads()} CPU threads; evaluations extra); a CUDA GPU runs the same "
        "command with --device cuda"
    )


# What claim 21 states about its run ("classic NiN, Fashion-MNIST at 224, SGD 0.1, batch 64, 10
# epochs"), as the seed recipe's config fields; a run that differs in one is not comparable.
SEED_SETTING = ("model", "dataset", "input_size", "optimizer", "lr", "batch_size", "epochs",
                "limit_train", "limit_test")  # fmt: skip
SEED_COMMAND = "`ninlab train --recipe seed` (10 epochs of all 60,000 training images at 224 px)"


def _shown(field: str, value) -> str:
    """A config value as the ledger prints it: a limit of None is "all"."""
    return "all" if value is None and field.startswith("limit_") else str(value)


def claim_21(runs: list[RunRecord]) -> list[Claim]:
    """A verdict per run of the classic recipe (recipe seed, or model nin_seed) when its setting
    is the claim's (SEED_SETTING, every epoch done), else "not comparable" with what differs;
    without such a run, "needs a run" and the time the recipe would take here."""
    stmt = "classic NiN, Fashion-MNIST at 224, SGD 0.1, batch 64, 10 epochs: 85.74%"
    stated = f"85.74% (curve {_curve_text(SEED_CURVE)})"
    candidates = [r for r in runs if r.config.recipe == "seed" or r.model == "nin_seed"]
    if not candidates:
        computed = f"needs a run of `ninlab train --recipe seed`; {_seed_projection()}"
        return [Claim(21, stmt, stated, computed, NEEDS_RUN)]
    want = resolve("seed")
    claims = []
    for run in candidates:
        off = [f"{k} {_shown(k, getattr(run.config, k))} (claim: {_shown(k, getattr(want, k))})"
               for k in SEED_SETTING if getattr(run.config, k) != getattr(want, k)]  # fmt: skip
        if not run.complete:
            off.append(f"stopped after {len(run.accs)} of {run.config.epochs} epochs")
        if off:
            result = (f"{run.accs[-1]:.2f}% after {len(run.accs)} epoch(s); "
                      if run.accs else "no epoch finished; ")  # fmt: skip
            computed = (f"{result}not comparable: the run differs from the claim's setting in "
                        f"{', '.join(off)}; a comparable run: {SEED_COMMAND}")  # fmt: skip
            claims.append(Claim(21, stmt, stated, computed, NOT_COMPARABLE, str(run.path)))
            continue
        final = run.accs[-1]
        delta = final - 85.74
        computed = (
            f"{final:.2f}% after {len(run.accs)} epochs ({delta:+.2f} points; holds within "
            f"{SEED_TOLERANCE}); curve {_curve_text(run.accs)}"
        )
        verdict = HOLDS if abs(delta) <= SEED_TOLERANCE else DIFFERS
        claims.append(Claim(21, stmt, stated, computed, verdict, str(run.path)))
    return claims


@dataclass
class Twins:
    """The complete runs of two twin models in one setting (one run per seed, as a rule)."""

    one: str  # NiN's choice
    two: str
    runs_one: list[RunRecord]
    runs_two: list[RunRecord]

    @property
    def enough(self) -> bool:
        return min(len(self.runs_one), len(self.runs_two)) >= MIN_SEEDS

    def setting(self) -> str:
        """Where the twins were measured: data, size, epochs, recipe and seeds."""
        cfg = self.runs_one[0].config
        n = f"the first {cfg.limit_train:,}" if cfg.limit_train else "all"
        tested = f" (tested on the first {cfg.limit_test:,})" if cfg.limit_test else ""
        seeds = [sorted(r.config.seed for r in rs) for rs in (self.runs_one, self.runs_two)]
        if seeds[0] == seeds[1]:
            seeds_text = f"{len(seeds[0])} seeds each ({', '.join(map(str, seeds[0]))})"
        else:
            seeds_text = " vs ".join(f"seeds {', '.join(map(str, s))}" for s in seeds)
        return (
            f"{cfg.dataset}, {n} training images{tested} at {cfg.input_size} px, {cfg.epochs} "
            f"epochs of recipe {cfg.recipe}, {seeds_text}"
        )

    def paths(self) -> str:
        return ", ".join(str(r.path) for r in self.runs_one + self.runs_two)


def _twins(runs: list[RunRecord], pairs: tuple[tuple[str, str], ...]) -> Twins | None:
    """Of the first pair with complete runs of both models in one setting, the setting with the
    most such runs."""
    for one, two in pairs:
        settings: dict[str, Twins] = {}
        for r in runs:
            if r.complete and r.model in (one, two):
                t = settings.setdefault(r.setting_key, Twins(one, two, [], []))
                (t.runs_one if r.model == one else t.runs_two).append(r)
        found = [t for t in settings.values() if t.runs_one and t.runs_two]
        if found:
            return max(found, key=lambda t: len(t.runs_one) + len(t.runs_two))
    return None


def _spread_text(values: list[float], unit: str = "%") -> str:
    """mean (lowest-highest) over the seeds."""
    mean = sum(values) / len(values)
    return f"{mean:.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


def _lead(a: list[float], b: list[float]) -> tuple[float, float, int]:
    """The gap of the means (a - b), the seed spread (the larger of the two ranges, highest -
    lowest) and who leads by more than the spread: 1 (a), -1 (b) or 0 (too close to call)."""
    gap = sum(a) / len(a) - sum(b) / len(b)
    spread = max(max(a) - min(a), max(b) - min(b))
    return gap, spread, (gap > spread) - (gap < -spread)


def _who(lead: int, one: str, two: str) -> str:
    """What a lead of _lead says: the first twin's words, the second's, or too close to call."""
    return {1: one, 0: "too close to call", -1: two}[lead]


def _needs_seeds(claim: Claim, twins: Twins) -> Claim:
    """The claim as NEEDS_RUN when a twin has fewer than MIN_SEEDS runs (no seed spread)."""
    if twins.enough:
        return claim
    note = f"; needs {MIN_SEEDS}+ seeds of each twin for a seed spread"
    return replace(claim, computed=claim.computed + note, verdict=NEEDS_RUN)


def claim_22(runs: list[RunRecord]) -> Claim:
    stmt = "one 1x1 conv per block trains better and faster than two on a small data set"
    stated = "one 1x1: higher final test accuracy and less training time per epoch"
    t = _twins(runs, TWINS_22)
    if t is None:
        return Claim(
            22,
            stmt,
            stated,
            "needs complete runs of twins with one and two 1x1 convs per block (nin_fast and "
            "nin_fast2) in one setting, 2+ seeds each: `ninlab train --model nin_fast --seed 0`, "
            "the same with --model nin_fast2, and both again with --seed 1",
            NEEDS_RUN,
        )
    finals = [[r.accs[-1] for r in rs] for rs in (t.runs_one, t.runs_two)]
    gap, spread, better = _lead(*finals)
    computed = (
        f"{t.one} (one 1x1) vs {t.two} (two) on {t.setting()}: final test accuracy "
        f"{_spread_text(finals[0])} vs {_spread_text(finals[1])}, {gap:+.2f} points for one 1x1 "
        f"against a seed spread of {spread:.2f}: {_who(better, 'one better', 'two better')}"
    )
    seconds = [[r.epoch_seconds for r in rs] for rs in (t.runs_one, t.runs_two)]
    faster = 0
    if None in seconds[0] + seconds[1]:
        computed += "; training time not recorded"
    else:
        gap, spread, faster = _lead(seconds[1], seconds[0])  # seconds saved by one 1x1
        computed += (
            f"; fastest epoch's training time {_spread_text(seconds[0], ' s')} vs "
            f"{_spread_text(seconds[1], ' s')}, {-gap:+.2f} s for one 1x1 against a seed spread "
            f"of {spread:.2f} s: {_who(faster, 'one faster', 'two faster')}"
        )
    if better == faster == 1:
        verdict = HOLDS
    elif -1 in (better, faster) and 1 not in (better, faster):
        verdict = FAILS
    else:
        verdict = DIFFERS
    return _needs_seeds(Claim(22, stmt, stated, computed, verdict, t.paths()), t)


def claim_23(runs: list[RunRecord]) -> Claim:
    stmt = "NiN's Fashion-MNIST test accuracy is a little lower than AlexNet's"
    stated = f"NiN's GAP head a little lower than an FC head (by 0 to {A_LITTLE:g} points)"
    # the statement's setting: all of Fashion-MNIST, trained on and tested on
    whole = [r for r in runs if r.config.dataset == "fashion-mnist"
             and r.config.limit_train is None and r.config.limit_test is None]  # fmt: skip
    t = _twins(whole, TWINS_23)
    if t is None and (other := _twins(runs, TWINS_23)) is not None:
        computed = (
            f"twins {other.one} and {other.two} only on {other.setting()}: not comparable, the "
            "statement is about all of Fashion-MNIST (every training and test image); "
            "`ninlab train --model nin_fast --seed 0` and the same with --model fast_fc, without "
            "--limit-train or --limit-test, and both again with --seed 1, train comparable twins"
        )
        return Claim(23, stmt, stated, computed, NOT_COMPARABLE, other.paths())
    if t is None:
        return Claim(
            23,
            stmt,
            stated,
            "needs complete runs of twins with a GAP and an FC head (nin_fast and fast_fc) on "
            "all of fashion-mnist in one setting, 2+ seeds each: `ninlab train --model nin_fast "
            "--seed 0`, the same with --model fast_fc, and both again with --seed 1",
            NEEDS_RUN,
        )
    finals = [[r.accs[-1] for r in rs] for rs in (t.runs_one, t.runs_two)]
    gap, spread, lead = _lead(finals[1], finals[0])  # the FC head's lead
    lower = "a little lower" if gap <= A_LITTLE else f"lower by more than {A_LITTLE:g} points"
    reading = _who(lead, f"the GAP head {lower}", "the GAP head higher")
    verdict = {1: HOLDS if gap <= A_LITTLE else DIFFERS, 0: DIFFERS, -1: FAILS}[lead]
    computed = (
        f"{t.one} (GAP head) vs {t.two} (FC head) on {t.setting()}: final test accuracy "
        f"{_spread_text(finals[0])} vs {_spread_text(finals[1])}, {gap:+.2f} points for the FC "
        f"head against a seed spread of {spread:.2f}: {reading}"
    )
    return _needs_seeds(Claim(23, stmt, stated, computed, verdict, t.paths()), t)


def _test_images(r: RunRecord, limit: int, data_dir: str | None):
    """The run (its best weights) and the first `limit` images of its test set."""
    run = load_run(r.path)
    return run, run.dataset(data_dir).test_images[:limit]


def claim_24(runs: list[RunRecord], limit: int, data_dir: str | None) -> list[Claim]:
    """A verdict per run with weights (a trained CNN of any kind); "needs a run" for a run
    without weights, and when no run is given."""
    line = partial(Claim, 24, STATEMENT)
    if not runs:
        return [line("sparser with depth", "needs a run with weights (`--run DIR`)", NEEDS_RUN)]
    claims = []
    for r in runs:
        if not r.has_weights:
            no = "needs a run with weights: this one has no best or final weights"
            claims.append(line("sparser with depth", no, NEEDS_RUN, str(r.path)))
            continue
        run, images = _test_images(r, limit, data_dir)
        layers = relu_channel_sparsity(
            run.model, images, transform=run.preprocess, progress=f"claim 24, {r.path.name}"
        )
        verdict = sparser_with_depth([layer.zeros for layer in layers])
        shown = ", ".join(f"{t.name.split('.', 1)[-1]} {100 * t.zeros:.1f}%" for t in layers)
        computed = f"zeros after each ReLU over {len(images)} test images: {shown}"
        computed += "" if verdict == HOLDS else "; not monotone"
        claims.append(line("zeros increase with depth", computed, verdict, str(r.path)))
    return claims


BLACK_BACKGROUND = ("mnist", "fashion-mnist", "kmnist")  # claim 25's scenes: items on black


def claim_25(runs: list[RunRecord], limit: int, data_dir: str | None) -> list[Claim]:
    """A verdict per NiN run with weights on a black-background data set (its class maps, in
    scenes of `limit` test items); "not comparable" for another kind of run, "needs a run" for
    one without weights and when no run is given."""
    line = partial(
        Claim,
        25,
        "the last layer's strongest activations, mapped back through the field, locate the object",
    )
    needs = ("needs a NiN run on a black-background data set (mnist, fashion-mnist, kmnist); see "
             "also `ninlab locate`")  # fmt: skip
    if not runs:
        return [line("locates the object", needs, NEEDS_RUN)]
    stated = "the strongest unit's field centre is on the object, clearly more often than chance"
    claims = []
    for r in runs:
        if not r.has_weights:
            no = f"{needs}; this run has no weights"
            claims.append(line("locates the object", no, NEEDS_RUN, str(r.path)))
            continue
        if not r.model.startswith("nin") or r.config.dataset not in BLACK_BACKGROUND:
            other = f"not comparable: {r.model} on {r.config.dataset}; {needs}"
            claims.append(line("locates the object", other, NOT_COMPARABLE, str(r.path)))
            continue
        run = load_run(r.path)
        u = strongest_unit_hits(run, run.dataset(data_dir), scenes=limit)
        # a clear margin: 3 standard errors of the hit rate above chance, and twice chance
        margin = 3 * math.sqrt(max(u.hit * (1 - u.hit), 1 / u.scenes) / u.scenes)
        holds = u.hit - u.chance >= margin and u.hit >= 2 * u.chance
        computed = (
            f"{100 * u.hit:.1f}% of {u.scenes} scenes (any unit: {100 * u.chance:.1f}%); "
            f"{u.size}x{u.size} black scenes with one test item at a random place, the class map "
            f"of its true class at the scene's size ({u.map_shape[0]}x{u.map_shape[1]}, field "
            f"{u.field.size[0]} px, jump {u.field.jump[0]} px), on = inside the item's tight box; "
            f"holds when above chance by 3 standard errors ({100 * margin:.1f} points) and twice"
        )
        claims.append(line(stated, computed, HOLDS if holds else FAILS, str(r.path)))
    return claims


def check_claims(
    run_dirs: list[str | Path] = (), limit: int = 256, data_dir: str | None = None
) -> list[Claim]:
    """Every claim, checked: 1-20 by running modules, 21-25 from the given run directories (24
    and 25 on the first `limit` test images). Claims 21, 24 and 25 have a verdict per run they
    apply to, 22 and 23 one over the twins' seeds; so a claim can have several lines, in the
    order of the runs."""
    runs = [read_run(p) for p in run_dirs]  # a bad directory fails before any work
    claims = shape_claims()
    claims += [*claim_21(runs), claim_22(runs), claim_23(runs)]
    claims += [*claim_24(runs, limit, data_dir), *claim_25(runs, limit, data_dir)]
    return sorted(claims, key=lambda c: c.number)
