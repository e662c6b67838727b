"""Training into a run directory: a new run (`train_run`) or the rest of one (`resume_run`).

Both lock the directory, then run `ninlab.train.fit` with a RunWriter callback, which rewrites
the files of each epoch atomically and together (a full disk keeps the last epoch's set; the
checkpoint alone on an interrupt), so a kill at any moment leaves whole files: `resume_run` goes
on from the last checkpoint, or starts over from config.json when there is none yet.

Under torchrun every process calls them with the same arguments; they join one process group,
and rank 0 alone writes the directory and the log.
"""

from __future__ import annotations

import contextlib
import errno
import os
import statistics
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ninlab.checksum import sealed
from ninlab.data import Dataset, dataset_label, load_dataset
from ninlab.errors import NinlabError
from ninlab.files import TMP_SUFFIX, CannotWrite, remove_leftovers, together
from ninlab.lock import LOCK, DirLock
from ninlab.models import create_model
from ninlab.plotting import save_png
from ninlab.runs.store import (
    CHECKPOINT,
    CONFIG,
    CURVES,
    WEIGHTS,
    WRITTEN,
    q,
    read_checkpoint,
    read_config,
    read_facts,
    save_weights,
    write_checkpoint,
    write_config,
    write_facts,
    write_files_json,
    write_metrics,
)
from ninlab.terminal import wrapping
from ninlab.train import (
    Callback,
    Diverged,
    Interrupted,
    TrainConfig,
    TrainState,
    adapt_schedule,
    build_model,
    curves_figure,
    fit,
    precision_for,
    prepare_config,
)
from ninlab.train.distributed import (
    LostProcess,
    World,
    device_for,
    env_world,
    on_main,
    process_group,
)
from ninlab.train.facts import now, session_facts
from ninlab.train.loop import placement

Log = Callable[[str], None] | None
BUSY = "wait for it to finish, or pass another --out"  # when --out is locked
# curves.png is drawn again after an epoch only when this many seconds have passed since it was
# last drawn (and always after the last epoch and on an interrupt): a drawing costs 0.6-0.9 s
# of CPU, more than an epoch of a small folder (3 x 60 shapes: 55 epochs of 0.2-0.3 s)
CURVES_EVERY = 10.0


class RunWriter(Callback):
    """Writes metrics, final and best weights (BEST) and the checkpoint at each epoch end, and
    this session's facts (`session`, from ninlab.train.facts) as it starts and after each
    epoch; the curves after the first and the last epoch, on an interrupt, and after the others
    once CURVES_EVERY seconds have passed since they were drawn."""

    def __init__(self, out: Path, session: dict | None = None):
        self.out = Path(out)
        self.session = session
        self.drawn: tuple[float, int] | None = None  # (when, epochs shown) of curves.png
        self.before: list[dict] = []  # the sessions of this run before this one
        if session is not None:
            with contextlib.suppress(NinlabError):  # damaged facts are replaced, not fatal
                self.before = read_facts(self.out)
            write_facts(self.out, [*self.before, session])

    def on_epoch_end(self, state: TrainState) -> None:
        # all files of the epoch, or (a full disk) none: the last epoch's set stays consistent
        with together():
            write_metrics(self.out, state.history)
            last = state.epoch >= state.config.epochs
            if last or self.drawn is None or time.monotonic() - self.drawn[0] >= CURVES_EVERY:
                self._draw(state)
            save_weights(state.model, self.out / WEIGHTS["final"], state.config)
            if max(state.history, key=lambda r: r["test_acc"]) is state.history[-1]:
                save_weights(state.model, self.out / WEIGHTS["best"], state.config)
            if self.session is not None:
                self.session.setdefault("first_epoch", state.epoch)
                self.session.update(last_epoch=state.epoch, ended=now())
                write_facts(self.out, [*self.before, self.session])
            write_checkpoint(self.out, sealed(state.checkpoint()))  # checked by read_checkpoint

    def on_interrupt(self, state: TrainState) -> None:
        if state.history and (self.drawn is None or self.drawn[1] != len(state.history)):
            self._draw(state)  # a run stopped between two drawings shows all its epochs
        write_checkpoint(self.out, sealed(state.checkpoint()))

    def _draw(self, state: TrainState) -> None:
        save_png(curves_figure(state.history, state.config), self.out / CURVES)
        self.drawn = (time.monotonic(), len(state.history))


def default_out(cfg: TrainConfig) -> Path:
    """Where a run goes without --out: runs/MODEL-DATASET-YYYYMMDD-HHMMSS."""
    name = dataset_label(cfg.dataset)
    return Path("runs") / f"{cfg.model}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_run(
    cfg: TrainConfig,
    out: str | Path | None = None,
    progress: bool = True,
    log: Log = print,
    callbacks: Sequence[Callback] = (),
    adapt: Collection[str] = (),
) -> tuple[list[dict], Path]:
    """Train from a config into a new run directory (`out`, or `default_out`); returns
    (history, run directory). The fields named in `adapt` (batch_size, epochs: those the user
    left unset, as `ninlab.train.free_fields` finds them) are chosen from the number of training
    images by `ninlab.train.adapt_schedule`, and the run logs its choice."""
    world, log = env_world(), wrapping(log)
    device = placement(cfg, world)
    with contextlib.ExitStack() as held, process_group(device, cfg.dist_timeout) as world:
        log = log if world.main else None
        # locked and checked before minutes of loading data; the config as asked for is written
        # at once, so that a run killed before it began resumes
        out = Path(on_main(world, lambda: str(_claim(Path(out or default_out(cfg)), cfg, held,
                                                     log))))  # fmt: skip
        data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, folder=cfg.folder_options(),
                            log=log, progress=progress and world.main)  # fmt: skip
        cfg = _resolved(cfg, data, device)
        n_train = min(cfg.limit_train or len(data.train_images), len(data.train_images))
        cfg, chose = adapt_schedule(cfg, n_train, adapt, world.size)  # the same on every rank
        if log and chose:
            log(chose)
        on_main(world, lambda: _write_run_files(out, cfg, data))
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
        session = Session(out, cfg, data, world, progress, log, callbacks)
        return session.fit(model), out


def resume_run(
    run_dir: str | Path,
    device: str | None = None,
    progress: bool = True,
    log: Log = print,
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
            ckpt = {"config": {}}  # until rank 0's arrives: the device and timeout by default
        cfg = _config_of(ckpt, device)
        with process_group(device_for(cfg.device, world), cfg.dist_timeout) as world:
            log = log if world.main else None
            ckpt = on_main(world, lambda: ckpt)  # rank 0's checkpoint on every rank
            cfg = _config_of(ckpt, device)
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
            session = Session(run_dir, cfg, data, world, progress, log, callbacks)
            return session.fit(model, None if fresh else ckpt), run_dir


@dataclass
class Session:
    """One training session into a run directory: `fit` writes there (rank 0), and a stop, a
    lost process, a full disk or a divergence ends in a sentence that says what the directory
    holds and how to go on."""

    out: Path
    cfg: TrainConfig
    data: Dataset
    world: World
    progress: bool
    log: Log
    callbacks: Sequence[Callback]

    def fit(self, model: torch.nn.Module, ckpt: dict | None = None) -> list[dict]:
        out, cfg, world = self.out, self.cfg, self.world
        facts = session_facts(cfg, placement(cfg, world), world) if world.main else None
        writer = [RunWriter(out, facts)] if world.main else []
        try:
            history = fit(model, self.data, cfg, [*writer, *self.callbacks], resume=ckpt,
                          progress=self.progress, log=self.log)  # fmt: skip
        except Interrupted as e:
            raise Interrupted(
                f"{e}; checkpoint written. Resume with: ninlab train --resume {q(out)}", e.signum
            ) from None
        except LostProcess as e:
            raise LostProcess(f"{e} Resume with: ninlab train --resume {q(out)}") from None
        except CannotWrite as e:  # a full disk: the files of the last whole epoch are kept
            raise NinlabError(_unwritable(out, e)) from None
        except Diverged as e:
            kept = (out / CHECKPOINT).is_file()
            raise Diverged(
                f"{e}" + (f" The checkpoint of the last good epoch is kept in {out}." if kept
                          else "")
            ) from None  # fmt: skip
        if self.log:
            best = max(history, key=lambda r: r["test_acc"])
            rate = statistics.median(r["images_per_s"] for r in history)
            self.log(
                f"done in {history[-1]['elapsed']:.1f} s ({rate:,.0f} training images/s): final "
                f"accuracy {100 * history[-1]['test_acc']:.2f}%, best "
                f"{100 * best['test_acc']:.2f}% (epoch {best['epoch']})\nrun directory {out}"
            )
        return history


def _config_of(ckpt: dict, device: str | None) -> TrainConfig:
    """The config a checkpoint recorded, on `device` when one is given."""
    cfg = TrainConfig.from_dict(ckpt["config"])
    return replace(cfg, device=device) if device else cfg


def _resolved(cfg: TrainConfig, data: Dataset, device: torch.device) -> TrainConfig:
    """The config completed on its data, with the precision that "auto" stands for on this
    device recorded (so that a resumed run keeps it)."""
    cfg = prepare_config(cfg, data)
    return replace(cfg, precision=precision_for(cfg.precision, device))


def _claim(out: Path, cfg: TrainConfig, held: contextlib.ExitStack, log: Log) -> Path:
    """Take `out` for a new run (rank 0): locked until `held` closes, never another run's, with
    the config as asked for written."""
    _take(out, held, log, BUSY)  # a file in the way is refused by the lock, in one sentence
    if (out / CHECKPOINT).exists() or (out / WEIGHTS["final"]).exists():
        raise NinlabError(
            f"{out} already holds a run; continue it with `ninlab train --resume {q(out)}` or "
            "pass another --out."
        )
    write_config(out, cfg)
    return out


def _take(run_dir: Path, held: contextlib.ExitStack, log: Log, remedy: str) -> None:
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


def _write_run_files(out: Path, cfg: TrainConfig, data: Dataset) -> None:
    """The resolved config (and, for a folder, which files were used) of a run about to train."""
    write_config(out, cfg)
    if data.files is not None:
        write_files_json(out, data.root, data.files, data.skipped)


def _resume_point(run_dir: Path) -> dict:
    """The run's checkpoint; for a run killed before it wrote one, {"config": its config}."""
    if not (run_dir / CHECKPOINT).is_file() and (run_dir / CONFIG).is_file():
        return {"config": read_config(run_dir).to_dict()}
    if not (run_dir / CHECKPOINT).is_file():
        raise NinlabError(
            f"{run_dir} holds no run to resume (no {CONFIG}: it stopped before it began, or it "
            f"is not a run directory); start it with `ninlab train --out {q(run_dir)}`."
        )
    return read_checkpoint(run_dir)


def _unwritable(out: Path, e: CannotWrite) -> str:
    """What a run that could not write `e.path` keeps, and how to go on."""
    full = e.errno in (errno.ENOSPC, errno.EDQUOT)
    fix, resume = "free some space" if full else "fix that", f"`ninlab train --resume {q(out)}`"
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
