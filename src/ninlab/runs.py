"""The run directory: what `ninlab train` writes and every other verb reads, both ways here.

RUN_DIR/config.json        the resolved TrainConfig (model, dataset, input size, mean/std, ...)
RUN_DIR/metrics.csv|jsonl  one row per epoch, the fields of METRICS
RUN_DIR/curves.png         losses and accuracy by epoch
RUN_DIR/final.safetensors  weights after the last epoch   } metadata: model name, config
RUN_DIR/best.safetensors   weights of the best test epoch }
RUN_DIR/checkpoint.pt      model, optimizer, scheduler and RNG states, for --resume
RUN_DIR/confusion.png      the confusion matrix, written by `ninlab eval`
RUN_DIR/files.json         a folder of images only: which files went to train and test, and
                           which were skipped (paths relative to the folder)
RUN_DIR/facts.json         one entry per training session (the first and each --resume): when,
                           the command, versions, device, precision, threads, processes, epochs
RUN_DIR/train.lock         while a process trains it (see ninlab.lock)

Writing: `train_run` and `resume_run` lock the directory, then run `ninlab.train.fit` with a
RunWriter callback, which rewrites the files of each epoch atomically and together (a full disk
keeps the last epoch's set; the checkpoint alone on an interrupt), so a kill at any moment leaves
whole files: `resume_run` goes on from the last checkpoint, or starts over from config.json when
there is none yet. The checkpoint and the weights carry a SHA-256 of their content
(ninlab.checksum), checked on every read. Reading: `load_run` gives a Run (model, TrainConfig,
weights) with the run's preprocessing, data set and history, and `evaluate_run` evaluates it. No
other module opens these files.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import pickle
import shlex
import statistics
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from ninlab.checksum import check_checkpoint, check_weights, read_safetensors, save_sealed, sealed
from ninlab.convert import load_converted_run
from ninlab.data import Dataset, dataset_label, load_dataset
from ninlab.errors import NinlabError
from ninlab.files import (
    TMP_SUFFIX,
    CannotWrite,
    atomic_write,
    leftovers,
    make_dir,
    remove_leftovers,
    together,
    write_text,
)
from ninlab.lock import LOCK, DirLock
from ninlab.models import create_model, create_model_for
from ninlab.plotting import save_png
from ninlab.text import WIDTH, wrap, wrapping
from ninlab.train import (
    Callback,
    Diverged,
    Interrupted,
    TrainConfig,
    TrainState,
    build_model,
    confusion_figure,
    confusion_matrix,
    curves_figure,
    fit,
    format_confusion,
    per_class_accuracy,
    precision_for,
    predict_logits,
    prepare_config,
    to_input,
)
from ninlab.train.distributed import (
    LostProcess,
    device_for,
    env_world,
    on_main,
    process_group,
)
from ninlab.train.facts import now, session_facts
from ninlab.train.loop import placement

CONFIG = "config.json"
METRICS_CSV, METRICS_JSONL = "metrics.csv", "metrics.jsonl"
CURVES, CONFUSION = "curves.png", "confusion.png"
CHECKPOINT = "checkpoint.pt"
FILES = "files.json"
FACTS = "facts.json"
WEIGHTS = {"best": "best.safetensors", "final": "final.safetensors"}
WRITTEN = (CONFIG, METRICS_CSV, METRICS_JSONL, CURVES, CHECKPOINT, FILES, FACTS,
           *WEIGHTS.values())  # fmt: skip
BEST = "the epoch of highest test accuracy (the earlier one on a tie)"  # what best.safetensors is
FACT_COUNTS = ("threads", "processes", "first_epoch", "last_epoch")  # facts.json's numbers
METRICS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_time",
           "eval_time", "elapsed", "images_per_s")  # fmt: skip


@dataclass
class Run:
    """A trained model with the config it was trained with."""

    path: Path
    model: nn.Module
    config: TrainConfig
    weights: Path  # the weights file loaded

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model input as trained."""
        return (self.config.in_chans, self.config.input_size, self.config.input_size)

    def preprocess(self, images: torch.Tensor, native: bool = False) -> torch.Tensor:
        """uint8 (N, C, H, W) images -> the float input this run's model was trained on:
        normalised and resized to the training size, or (native) normalised at their own size,
        for a model that takes any input size (`check_native`) or a convolutionalized one."""
        if not native:
            return to_input(images, self.config)
        return to_input(images, replace(self.config, input_size=tuple(images.shape[-2:])))

    def check_native(self) -> None:
        """One sentence when the model needs its training size (a Flatten + Linear head)."""
        if not getattr(self.model, "any_input_size", False):
            s = self.config.input_size
            raise NinlabError(
                f"{self.config.model} has a fully-connected head that takes only {s}x{s} "
                f"inputs, so it cannot run on an image at its own size; drop --native (the image "
                f"is then resized to {s}x{s})."
            )

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) of uint8 images, as evaluation computes them."""
        return torch.softmax(predict_logits(self.model, images, self.config), 1)

    def dataset(self, data_dir: str | None = None, name: str | None = None, log=None) -> Dataset:
        """The run's data set (or another one, `name`, with as many classes), looked for in
        data_dir first, then where the run found it; a folder is read as the run read it."""
        cfg = self.config
        data = load_dataset(name or cfg.dataset, data_dir=data_dir or cfg.data_dir,
                            folder=cfg.folder_options(), log=log)  # fmt: skip
        if data.num_classes != len(self.classes):
            raise NinlabError(
                f"{data.name} has {data.num_classes} classes but the run's model predicts "
                f"{len(self.classes)}; use a data set with the same classes."
            )
        return data

    def history(self) -> list[dict]:
        return read_metrics(self.path)

    def facts(self) -> list[dict]:
        return read_facts(self.path)


# ---- reading and writing the files ----


def read_config(run_dir: str | Path) -> TrainConfig:
    """The run's config.json as a TrainConfig, or one NinlabError saying what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NinlabError(f"run directory {run_dir} does not exist; pass the --out of a train run.")
    path = run_dir / CONFIG
    if not path.is_file():
        raise NinlabError(f"{run_dir} has no {CONFIG}; it is not a ninlab run directory.")
    try:  # ValueError: not JSON, not UTF-8, or an integer of over 4,300 digits
        d = json.loads(path.read_bytes())
    except (ValueError, RecursionError, OSError) as e:
        raise NinlabError(
            f"{path} is not valid JSON ({str(e)[:100]}); the run directory is damaged."
        ) from None
    if not isinstance(d, dict):
        raise NinlabError(f"{path} holds no JSON object; the run directory is damaged.")
    try:
        return TrainConfig.from_dict(d)
    except NinlabError as e:
        raise NinlabError(f"{path} is damaged: {e}") from None


def write_config(run_dir: Path, config: TrainConfig) -> None:
    """Write config.json (the resolved config, as `read_config` reads it back)."""
    make_dir(run_dir)
    write_text(run_dir / CONFIG, json.dumps(config.to_dict(), indent=2))


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The per-epoch rows of metrics.jsonl (none when the run has not finished an epoch)."""
    path = Path(run_dir) / METRICS_JSONL
    if not path.is_file():
        return []
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as e:
        raise NinlabError(f"{path} cannot be read as text ({e}); the run is damaged.") from None
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:  # ValueError: not JSON, or an integer of over 4,300 digits
            row = json.loads(line)
        except (ValueError, RecursionError):
            raise NinlabError(f"{path} line {i + 1} is not JSON; the run is damaged.") from None
        # a row may lack fields (an older ninlab, a hand-made run); the ones it has are numbers
        if not isinstance(row, dict) or any(
            k in row and type(row[k]) not in (int, float) for k in METRICS
        ):
            raise NinlabError(
                f"{path} line {i + 1} is not an object whose {', '.join(METRICS)} are numbers; "
                "the run is damaged."
            )
        impossible = next((k for k in row if not _possible(k, row[k])), None)
        if impossible:
            bound = "is negative" if "loss" in impossible else "lies outside 0 to 1"
            raise NinlabError(
                f"{path} line {i + 1} has a {impossible} of {row[impossible]!r}, which {bound}; "
                "the run is damaged."
            )
        rows.append(row)
    return rows


def _possible(field: str, value) -> bool:
    """Whether a metrics value can be what it says: a cross-entropy is at least 0, an accuracy
    a share (NaN passes: a run that diverged wrote it)."""
    if field in ("train_loss", "test_loss"):
        return not value < 0
    if field in ("train_acc", "test_acc"):
        return not (value < 0 or value > 1)
    return True


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """Rewrite metrics.csv and metrics.jsonl from the per-epoch rows, each atomically."""

    def write_csv(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)

    atomic_write(run_dir / METRICS_CSV, write_csv)
    write_text(run_dir / METRICS_JSONL, "".join(json.dumps({k: r[k] for k in METRICS}) + "\n"
                                                for r in history))  # fmt: skip


def read_facts(run_dir: str | Path) -> list[dict]:
    """The training sessions facts.json records, earliest first (none for a run trained before
    ninlab recorded them)."""
    path = Path(run_dir) / FACTS
    if not path.is_file():
        return []
    try:
        d = json.loads(path.read_bytes())
    except (ValueError, RecursionError, OSError) as e:
        raise NinlabError(
            f"{path} is not valid JSON ({str(e)[:100]}); the run is damaged."
        ) from None
    sessions = d.get("sessions") if isinstance(d, dict) else None

    def plain(k, v) -> bool:  # counts are whole numbers, the rest text (or null)
        return type(v) is int if k in FACT_COUNTS else type(v) in (str, type(None))

    if not isinstance(sessions, list) or not all(
        isinstance(x, dict) and all(plain(k, v) for k, v in x.items()) for x in sessions
    ):
        raise NinlabError(f"{path} holds no list of sessions of text and counts; it is damaged.")
    return sessions


def _write_facts(run_dir: Path, sessions: list[dict]) -> None:
    write_text(run_dir / FACTS, json.dumps({"sessions": sessions}, indent=1))


def save_weights(model: nn.Module, path: Path, config: TrainConfig) -> None:
    """Weights as safetensors with the model name and the config in the metadata."""
    meta = {"model": config.model, "config": json.dumps(config.to_dict())}
    save_sealed(path, model.state_dict(), meta)  # checked by read_weights


def read_weights(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of a weights file, checked against the checksum that
    `save_weights` wrote into it (one sentence naming the file when they differ)."""
    meta, state = read_safetensors(path)
    remedy = "train the run again"
    if path.name in WEIGHTS.values():  # a run's best or final: the other may serve
        which, other = next((k, n) for k, n in WEIGHTS.items() if n != path.name)
        if (path.parent / other).is_file():
            remedy = f"use the run's {other} (--weights {which}) or {remedy}"
    check_weights(path, meta, state, remedy)
    return meta, state


def load_weights(model: nn.Module, path: Path, model_name: str) -> None:
    """Load safetensors weights (`read_weights`), naming the tensors that do not fit the
    model."""
    _load_state(model, *read_weights(path), path, model_name)


def _load_state(model: nn.Module, meta: dict, state: dict, path: Path, model_name: str) -> None:
    saved_name = meta.get("model")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    # integers for a float parameter (or floats for a counter) would be cast without a word
    kind = sorted(k for k in set(own) & set(state) if k not in wrong
                  and own[k].is_floating_point() != state[k].is_floating_point())  # fmt: skip
    if missing or unexpected or wrong or kind:
        parts = []
        if wrong:
            shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:5]]
            parts.append("shapes differ for " + ", ".join(shapes))
        if kind:
            kinds = [f"{k} {state[k].dtype} vs {own[k].dtype}" for k in kind[:5]]
            parts.append("dtypes differ for " + ", ".join(kinds))
        if missing:
            parts.append(f"missing {_some(missing)}")
        if unexpected:
            parts.append(f"unexpected {_some(unexpected)}")
        saved = f" (saved from {saved_name})" if saved_name else ""
        raise NinlabError(f"{path}{saved} does not fit model {model_name}: {'; '.join(parts)}.")
    model.load_state_dict(state)


def _some(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, ... ({len(names)} in all)"


def read_checkpoint(run_dir: Path) -> dict:
    """The run's checkpoint.pt (tensors and plain data only), or one NinlabError if damaged."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise NinlabError(f"{run_dir} has no {CHECKPOINT} to resume from.")
    # weights_only: tensors and plain data only, so a planted pickle cannot run code. Its
    # unpickler runs the pickle's opcodes in Python, so damaged bytes raise whatever a bad opcode
    # causes: a missing memo entry (KeyError), an empty stack (IndexError), a short read
    # (struct.error, EOFError), an unhashable key (TypeError); the zip reader raises RuntimeError.
    damaged = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, LookupError,
               TypeError, AttributeError, struct.error)  # fmt: skip
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except damaged as e:
        # torch's message spans lines around the one that says what went wrong
        boiler = ("Weights only load failed", "Please file an issue", "Check the documentation")
        lines = [t for t in str(e).splitlines() if t.strip() and not t.startswith(boiler)]
        why = (lines[0].split(". ")[0] if lines else type(e).__name__)[:160]
        raise NinlabError(
            f"{path} is damaged or not a ninlab checkpoint ({why}); delete it to train the run "
            "again from its start."
        ) from None
    if isinstance(ckpt, dict):  # the checksum of RunWriter.on_interrupt
        again = f"delete it, and `ninlab train --resume {_q(run_dir)}` trains the run anew"
        ckpt = check_checkpoint(path, ckpt, again)
    # what resume_run and TrainState.load use, with their types
    need = {"config": dict, "model": dict, "optimizer": dict, "scheduler": dict, "epoch": int,
            "step": int, "history": list, "partial": dict, "rng_cpu": torch.Tensor}  # fmt: skip
    bad = [k for k, t in need.items()
           if not isinstance(ckpt, dict) or not isinstance(ckpt.get(k), t)
           or t is int and (isinstance(ckpt[k], bool) or ckpt[k] < 0)
           or k == "rng_cpu" and ckpt[k].dtype != torch.uint8]  # fmt: skip
    if bad:
        raise NinlabError(
            f"{path} is not a ninlab checkpoint, or is damaged: {', '.join(bad)} missing or of "
            "the wrong type; delete it to train the run again from its start."
        )
    return ckpt


def load_run(run_dir: str | Path, weights: str = "best") -> Run:
    """Rebuild the model of a run directory and load its best (or final) weights; the other
    weights serve when the asked-for file is missing. A file written by `ninlab convert RUN_DIR`
    loads as that run with the converted model (`weights` does not apply; `path` is the file's
    folder)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        model, config = load_converted_run(run_dir)
        return Run(path=run_dir.parent, model=model, config=config, weights=run_dir)
    config = read_config(run_dir)
    order = [WEIGHTS[weights]] + [w for w in WEIGHTS.values() if w != WEIGHTS[weights]]
    path = next((run_dir / w for w in order if (run_dir / w).is_file()), None)
    if path is None:
        owner = DirLock(run_dir).owner()
        if owner is not None and owner.alive() is not False:
            raise NinlabError(
                f"{run_dir} has no weights yet: it is training its first epoch now (process "
                f"{owner.pid} on {owner.host}, since {owner.since}); wait for that epoch to end."
            )
        raise NinlabError(
            f"{run_dir} has no weights ({' or '.join(WEIGHTS.values())}); train it first "
            f"or resume it with `ninlab train --resume {_q(run_dir)}`."
        )
    meta, state = read_weights(path)  # first: the model's size from config.json must fit them
    model = create_model_for(state, run_dir / CONFIG, config.model,
                             num_classes=len(config.classes), in_chans=config.in_chans)  # fmt: skip
    _load_state(model, meta, state, path, config.model)
    return Run(path=run_dir, model=model.eval(), config=config, weights=path)


def check_run(run_dir: str | Path) -> dict[str, str]:
    """Each file of a run directory that exists -> "ok" when it loads completely, else why not;
    and each temporary file a killed writer left -> "leftover". (What bench/faults.py checks
    after every kill.)"""
    run_dir = Path(run_dir)
    readers = {
        CONFIG: lambda p: read_config(run_dir),
        METRICS_JSONL: lambda p: read_metrics(run_dir),
        METRICS_CSV: lambda p: list(csv.DictReader(p.read_text().splitlines())),
        CHECKPOINT: lambda p: read_checkpoint(run_dir),
        FILES: lambda p: json.loads(p.read_text()),
        FACTS: lambda p: read_facts(run_dir),
        CURVES: _read_png,
        **{w: read_weights for w in WEIGHTS.values()},
    }
    found = {}
    for name, read in readers.items():
        if (run_dir / name).is_file():
            try:
                read(run_dir / name)
                found[name] = "ok"
            except Exception as e:  # any failure to load is what this reports
                found[name] = f"{type(e).__name__}: {e}"
    for tmp in leftovers(run_dir, WRITTEN):
        found[tmp.name] = "leftover"
    return found


def _read_png(path: Path) -> None:
    with Image.open(path) as img:
        img.load()


# ---- training into a run directory ----


class RunWriter(Callback):
    """Writes metrics, curves, final and best weights (BEST) and the checkpoint at each epoch
    end, and this session's facts (`session`, from ninlab.train.facts) as it starts and after
    each epoch."""

    def __init__(self, out: Path, session: dict | None = None):
        self.out = Path(out)
        self.session = session
        self.before: list[dict] = []  # the sessions of this run before this one
        if session is not None:
            with contextlib.suppress(NinlabError):  # damaged facts are replaced, not fatal
                self.before = read_facts(self.out)
            _write_facts(self.out, [*self.before, session])

    def on_epoch_end(self, state: TrainState) -> None:
        # all files of the epoch, or (a full disk) none: the last epoch's set stays consistent
        with together():
            write_metrics(self.out, state.history)
            save_png(curves_figure(state.history, state.config), self.out / CURVES)
            save_weights(state.model, self.out / WEIGHTS["final"], state.config)
            if max(state.history, key=lambda r: r["test_acc"]) is state.history[-1]:
                save_weights(state.model, self.out / WEIGHTS["best"], state.config)
            if self.session is not None:
                self.session.setdefault("first_epoch", state.epoch)
                self.session.update(last_epoch=state.epoch, ended=now())
                _write_facts(self.out, [*self.before, self.session])
            self.on_interrupt(state)

    def on_interrupt(self, state: TrainState) -> None:
        ckpt = sealed(state.checkpoint())  # checked by read_checkpoint

        def save(tmp):  # into a Python file, so that a full disk surfaces as an OSError
            with open(tmp, "wb") as f:  # (to a path, torch says only "unexpected pos")
                torch.save(ckpt, f)

        atomic_write(self.out / CHECKPOINT, save)


def default_out(cfg: TrainConfig) -> Path:
    """Where a run goes without --out: runs/MODEL-DATASET-YYYYMMDD-HHMMSS."""
    name = dataset_label(cfg.dataset)
    return Path("runs") / f"{cfg.model}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_run(
    cfg: TrainConfig,
    out: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    callbacks: Sequence[Callback] = (),
) -> tuple[list[dict], Path]:
    """Train from a config into a new run directory; returns (history, run directory).

    Under torchrun every process calls it with the same config; they join one process group,
    and rank 0 alone writes the directory and the log."""
    world, log = env_world(), wrapping(log)
    device = placement(cfg, world)
    with contextlib.ExitStack() as held:
        if out is not None:  # locked and checked before minutes of loading data
            out = Path(out)
            if world.main:
                _take(out, held, log, BUSY)
            _refuse_a_run(out)
            if world.main:  # the config as asked for: a run killed before it began resumes
                write_config(out, cfg)
        with process_group(device, cfg.dist_timeout) as world:
            log = log if world.main else None
            data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, folder=cfg.folder_options(),
                                log=log, progress=progress and world.main)  # fmt: skip
            cfg = _resolved(cfg, data, device)
            out = Path(on_main(world, lambda: str(_new_run_dir(cfg, out, data, held, log))))
            model = build_model(cfg)
            if log:
                params = sum(p.numel() for p in model.parameters())
                procs = f", {world.size} processes" if world.size > 1 else ""
                log(
                    f"{cfg.model} ({params:,} parameters) on {cfg.dataset}: "
                    f"{min(cfg.limit_train or 10**12, len(data.train_images)):,} train / "
                    f"{min(cfg.limit_test or 10**12, len(data.test_images)):,} test images at "
                    f"{cfg.input_size} px, recipe "
                    f"{cfg.recipe}, {cfg.epochs} epochs, device {device_for(cfg.device, world)} "
                    f"in {cfg.precision}{procs}, {cfg.threads or torch.get_num_threads()} "
                    f"threads; run in {out}"
                )
            return _fit(model, data, cfg, out, None, world, progress, log, callbacks), out


BUSY = "wait for it to finish, or pass another --out"  # when --out is locked


def _resolved(cfg: TrainConfig, data: Dataset, device: torch.device) -> TrainConfig:
    """The config completed on its data, with the precision that "auto" stands for on this
    device recorded (so that a resumed run keeps it)."""
    cfg = prepare_config(cfg, data)
    return replace(cfg, precision=precision_for(cfg.precision, device))


def _take(run_dir: Path, held: contextlib.ExitStack, log, remedy: str) -> None:
    """Lock `run_dir` for this process until `held` closes (creating it; a folder created for
    a run that never started is removed again), and clear what a killed writer left there."""
    created = not run_dir.exists()
    lock = DirLock(run_dir).acquire(remedy)
    if created:
        held.callback(_remove_unstarted, run_dir)
    held.callback(lock.release)
    if lock.took_over and log:
        log(f"{run_dir}: the lock of process {lock.took_over.pid}, which no longer runs, "
            "was cleared")  # fmt: skip
    remove_leftovers(run_dir, WRITTEN)


def _remove_unstarted(run_dir: Path) -> None:
    """Remove the folder made for a run that stopped before it began: it holds nothing but the
    config as asked for (no classes yet: the data set was never read)."""
    with contextlib.suppress(OSError, NinlabError):
        if {p.name for p in run_dir.iterdir()} == {CONFIG} and not read_config(run_dir).classes:
            (run_dir / CONFIG).unlink()
        os.rmdir(run_dir)


def _new_run_dir(cfg: TrainConfig, out, data: Dataset, held: contextlib.ExitStack, log) -> Path:
    """The run directory of a new run, locked, with its config.json (and files.json) written
    (rank 0)."""
    if out is None:
        out = default_out(cfg)
        _take(out, held, log, BUSY)
        _refuse_a_run(out)
    _write_run_files(Path(out), cfg, data)
    return Path(out)


def _write_run_files(out: Path, cfg: TrainConfig, data: Dataset) -> None:
    """The resolved config (and, for a folder, which files were used) of a run about to train."""
    write_config(out, cfg)
    if data.files is not None:
        files = {"folder": data.root, **data.files, "skipped": data.skipped}
        write_text(out / FILES, json.dumps(files, indent=1))


def _refuse_a_run(out: Path) -> None:
    """A new run never overwrites another."""
    if out.exists() and not out.is_dir():
        raise NinlabError(f"--out {out} is a file; pass a folder for the run.")
    if (out / CHECKPOINT).exists() or (out / WEIGHTS["final"]).exists():
        raise NinlabError(
            f"{out} already holds a run; continue it with `ninlab train --resume {_q(out)}` or "
            "pass another --out."
        )


def resume_run(
    run_dir: str | Path,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    callbacks: Sequence[Callback] = (),
) -> tuple[list[dict], Path]:
    """Continue an interrupted run from its checkpoint; returns (history, run directory).
    Under torchrun rank 0 reads the checkpoint and hands it to the others."""
    run_dir, world, log = Path(run_dir), env_world(), wrapping(log)
    with contextlib.ExitStack() as held:
        if world.main:
            if not run_dir.is_dir():
                raise NinlabError(f"{run_dir} does not exist; pass the --out of a train run.")
            _take(run_dir, held, log, "wait for it to finish or stop it before resuming")
        try:  # rank 0 must read it; another machine may not hold the directory, and waits
            ckpt = _resume_point(run_dir)
        except NinlabError:
            if world.main:
                raise
            ckpt = None
        cfg = TrainConfig.from_dict(ckpt["config"] if ckpt else {})
        if device:
            cfg.device = device
        with process_group(device_for(cfg.device, world), cfg.dist_timeout) as world:
            log = log if world.main else None
            ckpt = on_main(world, lambda: ckpt)  # rank 0's checkpoint on every rank
            cfg = TrainConfig.from_dict(ckpt["config"])
            if device:
                cfg.device = device
            fresh = "model" not in ckpt  # killed before its first checkpoint
            if not fresh and ckpt["epoch"] >= cfg.epochs:
                raise NinlabError(f"{run_dir} already finished its {cfg.epochs} epochs.")
            dev = device_for(cfg.device, world)
            if not fresh and cfg.precision == "auto" and dev.type == "cpu":
                cfg.precision = "fp32"  # a run from before "auto" meant bf16 on CPUs that had it
            data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, folder=cfg.folder_options(),
                                log=log, progress=progress and world.main)  # fmt: skip
            if fresh:  # as train_run: the config resolved on the data, the model from the seed
                cfg = _resolved(cfg, data, dev)
                on_main(world, lambda: _write_run_files(run_dir, cfg, data))
                model = build_model(cfg)
                if log:
                    log(f"{run_dir} stopped before its first checkpoint: training it from the "
                        "start, as its config.json says")  # fmt: skip
            else:
                model = create_model(cfg.model, num_classes=len(cfg.classes),
                                     in_chans=cfg.in_chans)  # fmt: skip
                if log:
                    log(f"resuming {run_dir} at epoch {ckpt['epoch'] + 1}, step {ckpt['step']}")
            resume = None if fresh else ckpt
            return _fit(model, data, cfg, run_dir, resume, world, progress, log, callbacks), run_dir


def _resume_point(run_dir: Path) -> dict:
    """The run's checkpoint; for a run killed before it wrote one, {"config": its config}."""
    if not (run_dir / CHECKPOINT).is_file() and (run_dir / CONFIG).is_file():
        return {"config": read_config(run_dir).to_dict()}
    if not (run_dir / CHECKPOINT).is_file():
        raise NinlabError(
            f"{run_dir} holds no run to resume (no {CONFIG}: it stopped before it began, or it "
            f"is not a run directory); start it with `ninlab train --out {_q(run_dir)}`."
        )
    return read_checkpoint(run_dir)


def _fit(model, data, cfg, out: Path, ckpt, world, progress, log, callbacks) -> list[dict]:
    """fit() writing into `out` (rank 0); a stop or a divergence says what is in the directory."""
    facts = session_facts(cfg, placement(cfg, world), world) if world.main else None
    writer = [RunWriter(out, facts)] if world.main else []
    try:
        history = fit(
            model, data, cfg, [*writer, *callbacks], resume=ckpt, progress=progress, log=log
        )
    except Interrupted as e:
        raise Interrupted(
            f"{e}; checkpoint written. Resume with: ninlab train --resume {_q(out)}", e.signum
        ) from None
    except LostProcess as e:
        raise LostProcess(f"{e} Resume with: ninlab train --resume {_q(out)}") from None
    except CannotWrite as e:  # a full disk: the files of the last whole epoch are kept
        raise NinlabError(_unwritable(out, e)) from None
    except Diverged as e:
        kept = (out / CHECKPOINT).is_file()
        raise Diverged(
            f"{e}" + (f" The checkpoint of the last good epoch is kept in {out}." if kept else "")
        ) from None
    if log:
        best = max(history, key=lambda r: r["test_acc"])
        rate = statistics.median(r["images_per_s"] for r in history)
        log(
            f"done in {history[-1]['elapsed']:.1f} s ({rate:,.0f} training images/s): final "
            f"accuracy {100 * history[-1]['test_acc']:.2f}%, best {100 * best['test_acc']:.2f}% "
            f"(epoch {best['epoch']})\nrun directory {out}"
        )
    return history


def _unwritable(out: Path, e: CannotWrite) -> str:
    """What a run that could not write `e.path` keeps, and how to go on."""
    full = e.errno in (errno.ENOSPC, errno.EDQUOT)
    fix, resume = "free some space" if full else "fix that", f"`ninlab train --resume {_q(out)}`"
    head = f"cannot write {e.path}: {e.reason}"
    with contextlib.suppress(NinlabError, OSError):
        if (out / CHECKPOINT).is_file():  # whole, as the epoch's files are renamed together
            epoch = read_checkpoint(out)["epoch"]
            return (f"{head}; the run keeps its checkpoint of epoch {epoch}, so {fix} and resume "
                    f"it with {resume}.")  # fmt: skip
    there = sorted(p.name for p in out.iterdir() if p.name != LOCK
                   and not p.name.endswith(TMP_SUFFIX)) if out.is_dir() else []  # fmt: skip
    holds = f"{out} holds only {', '.join(there)}" if there else f"{out} holds nothing"
    return (f"{head}; not even the files of the first epoch fit, so nothing of the training "
            f"could be kept ({holds}): {fix} and train it anew with {resume}.")  # fmt: skip


def _q(path: str | Path) -> str:
    """`path` quoted for a shell, so that a hint pastes right when it holds spaces."""
    return shlex.quote(str(path))


# ---- evaluating a run ----


@dataclass
class Evaluation:
    """A run's model on test images: loss, predictions and everything derived from them (each
    computed once, on first use)."""

    run: Run
    data: str  # the data set's name
    labels: torch.Tensor  # N
    logits: torch.Tensor  # N x classes (with the run's test-time flip, as in training)

    @cached_property
    def loss(self) -> float:
        """Plain cross-entropy (no label smoothing), as training reports the test loss."""
        return F.cross_entropy(self.logits, self.labels).item()

    @cached_property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(1)

    @cached_property
    def probabilities(self) -> torch.Tensor:
        """N x classes: softmax of the logits (in float64, so that small ones keep digits)."""
        return torch.softmax(self.logits.double(), 1)

    @cached_property
    def confidence(self) -> torch.Tensor:
        """The probability of the predicted class, per image."""
        return self.probabilities.max(1).values

    @cached_property
    def confusion(self) -> torch.Tensor:
        return confusion_matrix(self.preds, self.labels, len(self.run.classes))

    @cached_property
    def correct(self) -> int:
        return int((self.preds == self.labels).sum())

    @cached_property
    def accuracy(self) -> float:
        return self.correct / len(self.labels)

    @cached_property
    def per_class(self) -> list[float]:
        return per_class_accuracy(self.confusion).tolist()

    def text(self, width: int | None = WIDTH) -> str:
        """What `ninlab eval` prints: loss, accuracy, per-class accuracy, confusion matrix, in
        `width` columns (None: the matrix with class names atop its columns, however wide)."""
        classes = self.run.classes
        head = (f"run {self.run.path} ({self.run.config.model}, {self.run.weights.name}) on "
                f"{self.data} test set")  # fmt: skip
        lines = [
            *wrap(head, width, indent="  "),
            f"test loss {self.loss:.4f}, accuracy {100 * self.accuracy:.2f}% "
            f"({self.correct:,}/{len(self.labels):,})",
            "",
            "per-class accuracy",
        ]
        lines += [
            f"  {c:<14} {100 * a:6.2f}%" for c, a in zip(classes, self.per_class, strict=True)
        ]
        lines += [
            "",
            "confusion matrix (rows: true class)",
            format_confusion(self.confusion, classes, width),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """What `ninlab eval --json` prints: the numbers of `text`, the matrix as counts[true]
        [predicted]."""
        return {
            "run": str(self.run.path),
            "model": self.run.config.model,
            "weights": self.run.weights.name,
            "data": self.data,
            "images": len(self.labels),
            "loss": self.loss,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "classes": list(self.run.classes),
            "per_class_accuracy": self.per_class,
            "confusion": self.confusion.tolist(),
        }

    def confusion_figure(self) -> Figure:
        title = f"{self.run.config.model} on {self.data}: {100 * self.accuracy:.2f}%"
        return confusion_figure(self.confusion, self.run.classes, title)


def evaluate_run(
    run: Run, data: Dataset | None = None, limit: int | None = None, progress: bool = False
) -> Evaluation:
    """The run's model on (the first `limit` images of) the test set of `data` (default: the
    run's own data set); progress: a bar on a terminal."""
    data = data or run.dataset()
    images, labels = data.test_images[:limit], data.test_labels[:limit]
    logits = predict_logits(run.model, images, run.config, progress=progress)
    return Evaluation(run, data.name, labels.to(logits.device), logits)
