"""fit(): the training loop, with evaluation, a divergence guard and interruptible checkpoints.

The whole data set is one uint8 tensor on the training device; each batch is normalised, resized
and augmented there as one batched op (see ninlab.data.transforms). Everything random is fixed by
`config.seed`: initialisation (global RNG, seeded before the model is built), the batch order of
epoch e and its augmentation (generators seeded from (seed, e)), and dropout (global RNG, saved in
checkpoints). So a run resumed from a checkpoint ends in the same weights as one never stopped
(bit-identical on CPU with the same thread count and number of processes).

On several processes (torchrun; see ninlab.train.distributed) the model is wrapped in
DistributedDataParallel and each rank trains on its slice of every global batch. The step loop
never waits for the device: loss and accuracy are summed there, and read (one host sync, and one
all-reduce that also agrees on stopping) only every SYNC_EVERY steps and at the end of an epoch.
"""

from __future__ import annotations

import math
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ninlab.data import BatchLoader, Dataset, epoch_generator
from ninlab.errors import NinlabError
from ninlab.models import list_models
from ninlab.models.whitening import fit_whitening, images_to_fit, needs_fitting
from ninlab.progress import bar as progress_bar
from ninlab.train.config import TrainConfig, is_prepared, prepare_config
from ninlab.train.distributed import (
    LostProcess,
    World,
    amp_dtype,
    autocast,
    current_world,
    device_for,
    precision_for,
)
from ninlab.train.estimate import epoch_seconds, estimate_line
from ninlab.train.evaluation import evaluate, to_input
from ninlab.train.optim import make_optimizer, make_scheduler

EXPLODED = 10  # an epoch's mean train loss above EXPLODED * ln(classes) means divergence
SYNC_EVERY = 10  # steps between reads of the running loss (progress bar, NaN check, stop)
STUCK_AFTER = 20  # steps before a loss at chance counts as stuck: every model starts there
FEW_STEPS = 30  # fewer steps than this in a whole run are warned about (schedule.py wants 600)


class Diverged(NinlabError):
    """Training produced a NaN/inf loss, or collapsed to predicting one class at chance loss."""

    exit_code = 3


class Interrupted(NinlabError):
    """A stop was requested (Ctrl-C, SIGTERM or a callback); the state was checkpointed."""

    def __init__(self, message: str, signum: int | None):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process stopped by that signal."""
        return 128 + (self.signum or signal.SIGINT)


@dataclass
class TrainState:
    """Everything a checkpoint holds, and what callbacks see."""

    config: TrainConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    epoch: int = 0  # epochs completed
    step: int = 0  # batches done in the current epoch (0 at an epoch boundary)
    history: list[dict] = field(default_factory=list)
    partial: dict = field(default_factory=dict)  # mid-epoch: loss sums and generator states
    scaler: torch.amp.GradScaler | None = None  # fp16 only
    world_size: int = 1  # processes training together
    stop_reason: str | None = None
    stop_signum: int | None = None

    def request_stop(self, reason: str = "stop requested", signum: int | None = None) -> None:
        """Ask fit() to checkpoint and stop after the current batch."""
        self.stop_reason, self.stop_signum = reason, signum

    def checkpoint(self) -> dict:
        """Everything needed to resume, as tensors and plain data (what checkpoint.pt holds)."""
        ckpt = {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "partial": self.partial,
            "rng_cpu": torch.get_rng_state(),
            "world_size": self.world_size,
        }
        if self.scaler is not None and self.scaler.is_enabled():
            ckpt["scaler"] = self.scaler.state_dict()
        if torch.cuda.is_available():
            ckpt["rng_cuda"] = torch.cuda.get_rng_state_all()
        return ckpt

    def load(self, ckpt: dict) -> None:
        """Restore a `checkpoint()`: weights, optimizer, schedule, position, history and RNG."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.history, self.partial = ckpt["history"], ckpt["partial"]
        torch.set_rng_state(ckpt["rng_cpu"])
        if "scaler" in ckpt and self.scaler is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        if "rng_cuda" in ckpt and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])


class Callback:
    """Hooks fit() calls; override what you need."""

    def on_backward_end(self, state: TrainState) -> None:
        """After each batch's backward pass, before its optimizer step: the batch's gradients are
        in the parameters' .grad (multiplied by the loss scale under fp16; averaged over the
        processes under DDP), state.step is the number of batches done before this one."""

    def on_batch_end(self, state: TrainState) -> None:
        """After each optimizer step (state.step is the step within the epoch)."""

    def on_eval_start(self, state: TrainState) -> None:
        """As each epoch's evaluation starts: its training is done, state.epoch not yet counted
        (state.partial["row"] holds the epoch's training metrics)."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After each epoch's evaluation; state.history ends with the epoch's row."""

    def on_interrupt(self, state: TrainState) -> None:
        """Before fit raises Interrupted: the moment to write a checkpoint."""


class _StopOnSignal:
    """SIGINT/SIGTERM ask for a clean stop after the current batch; a second Ctrl-C aborts. Under
    torchrun a Ctrl-C reaches a process twice (from the terminal and from the agent), so there a
    repeated signal only asks again. When a peer is lost, SIGTERM stays ignored on the way out:
    torchrun sends it to the survivors, and it would kill one before it says what happened."""

    def __init__(self, state: TrainState, world: World):
        self.state, self.old, self.world = state, {}, world

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.state.stop_reason and signum == signal.SIGINT and self.world.size == 1:
            raise KeyboardInterrupt
        self.state.request_stop(f"received {signal.Signals(signum).name}", signum)

    def __exit__(self, exc_type, exc, tb):
        lost = self.world.size > 1 and isinstance(exc, RuntimeError) and _is_dist_error(exc)
        for sig, handler in self.old.items():
            signal.signal(sig, signal.SIG_IGN if lost and sig == signal.SIGTERM else handler)


def placement(cfg: TrainConfig, world: World) -> torch.device:
    """This process's device, after refusing what cannot run: CUDA where there is none, fp16 on
    the CPU, a global batch that the processes cannot share evenly."""
    device = device_for(cfg.device, world)
    amp_dtype(cfg.precision, device)
    if cfg.batch_size % world.size:
        raise NinlabError(
            f"--batch-size {cfg.batch_size} is the global batch and must split evenly over "
            f"{world.size} processes; pick a multiple of {world.size}."
        )
    return device


def fit(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
    resume: dict | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> list[dict]:
    """Train `model` on `data` as `config` says; returns one metrics dict per epoch.

    A config without what comes from the data (a fresh `TrainConfig(epochs=1)`) is filled in
    by ninlab.train.prepare_config, for the model passed (its registry name, when it has one),
    and the values are logged. Raises Diverged or Interrupted (after calling the callbacks'
    on_interrupt, which write a checkpoint) instead of returning.
    Inside a process group (torchrun, or a user's own `init_process_group`) it trains with DDP:
    every rank calls it with the same arguments; only rank 0 logs and shows progress, while
    callbacks run on every rank.
    """
    cfg, world, filled = config, current_world(), not is_prepared(config)
    if filled:  # the same on every rank: the data and the model's name decide it
        name = getattr(model, "model_name", None)
        cfg = replace(cfg, model=name) if name in list_models() else cfg
        cfg = prepare_config(cfg, data)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = placement(cfg, world)
    # what "auto" stands for, decided once (the step's autocast reads it) and kept in checkpoints
    cfg = replace(cfg, precision=precision_for(cfg.precision, device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = cfg.deterministic
    log, progress = (log, progress) if world.main else (None, False)
    if log and filled:
        shape = f"{cfg.in_chans}x{cfg.input_size}x{cfg.input_size}"
        log(f"prepare_config filled in: {cfg.model} {shape}, {len(cfg.classes)} classes, "
            f"mean {_short(cfg.mean)}, std {_short(cfg.std)}")  # fmt: skip
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    n_train = min(cfg.limit_train or len(data.train_images), len(data.train_images))
    train_x = data.train_images[:n_train].to(device)
    train_y = data.train_labels[:n_train].to(device)
    n_test = min(cfg.limit_test or len(data.test_images), len(data.test_images))
    test_x = data.test_images[:n_test].to(device)  # copied once, like the training images
    if resume is None and needs_fitting(model):  # the same images, hence weights, on every rank
        n = min(images_to_fit(cfg.input_size), n_train)
        fitted = fit_whitening(model, to_input(train_x[:n], cfg))
        if log:
            log(f"fitted {fitted} patch-whitening layer{'s' * (fitted > 1)} to the first "
                f"{n:,} training images")  # fmt: skip
    loader = BatchLoader(train_x, train_y, cfg.batch_size, shuffle=True, seed=cfg.seed)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, cfg.epochs * len(loader))
    if log and cfg.epochs * len(loader) < FEW_STEPS and resume is None:
        log(f"warning: {cfg.epochs * len(loader)} steps in all ({n_train:,} images, batch "
            f"{cfg.batch_size}, {cfg.epochs} epochs) are too few for the weights and batch-norm "
            "statistics to settle; pass a smaller --batch-size or more --epochs, or leave both "
            "unset for ninlab to choose.")  # fmt: skip
    if log:  # a slow run says so before its first minutes (one process: the others wait)
        log(estimate_line(epoch_seconds(model, cfg, train_x, train_y, n_test, test_x)))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    state = TrainState(cfg, model, optimizer, scheduler, scaler=scaler, world_size=world.size)
    if resume is not None:
        state.load(resume)
        was = resume.get("world_size", 1)
        if log and was != world.size:
            procs = f"{world.size} process" + ("es" if world.size > 1 else "")
            log(f"resuming with {procs} where the run had {was}: the same images "
                "and augmentation, but not bit-identical (summation order and, on the CPU, "
                "per-process batch-norm statistics differ)")  # fmt: skip
    net = _parallel(model, cfg, world, device, log)  # after loading: DDP starts from rank 0's
    chance = math.log(data.num_classes)
    try:
        with _StopOnSignal(state, world):
            while state.epoch < cfg.epochs:
                _train_epoch(state, net, loader, device, world, callbacks, progress, log)
                _end_epoch(state, data, test_x, world, callbacks, chance, log, progress)
                for cb in callbacks:
                    cb.on_epoch_end(state)
                if _agree(state, world, device)[0] and state.epoch < cfg.epochs:
                    for cb in callbacks:
                        cb.on_interrupt(state)
                    world.barrier()  # nobody leaves before rank 0 has written the checkpoint
                    raise Interrupted(
                        f"{state.stop_reason}: stopped after epoch {state.epoch}", state.stop_signum
                    )
    except RuntimeError as e:
        if world.size == 1 or not _is_dist_error(e):
            raise
        reason = re.sub(r"\[[^\]]*\]\s*", "", str(e).splitlines()[0]).split(". ")[0]
        raise LostProcess(
            f"process {world.rank} of {world.size} lost contact with the others ({reason}); "
            "the run directory keeps its last checkpoint."
        ) from None
    return state.history


def _short(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def _parallel(model: nn.Module, cfg: TrainConfig, world: World, device, log) -> nn.Module:
    """What the training step calls: DDP around the model on several processes (with
    SyncBatchNorm on CUDA), compiled when asked."""
    net = model
    if world.size > 1:
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        if has_bn and cfg.sync_bn and device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif has_bn and log:
            log(f"batch norm: statistics per process ({cfg.batch_size // world.size} images "
                "each); SyncBatchNorm needs CUDA")  # fmt: skip
        net = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    return _compiled(net, log) if cfg.compile else net


def _compiled(net: nn.Module, log) -> Callable[[torch.Tensor], torch.Tensor]:
    """torch.compile(net), falling back to net itself (with one line) if compilation fails."""
    compiled = torch.compile(net)

    def forward(x: torch.Tensor) -> torch.Tensor:
        nonlocal compiled
        if compiled is None:
            return net(x)
        try:
            return compiled(x)
        except Exception as e:
            if not type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
                raise
            if log:
                log(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                    "training without it")  # fmt: skip
            compiled = None
            return net(x)

    return forward


def _is_dist_error(e: RuntimeError) -> bool:
    text = str(e).lower()
    dist_error = getattr(torch.distributed, "DistError", ())
    return isinstance(e, dist_error) or any(
        w in text for w in ("gloo", "nccl", "connection", "peer", "timed out")
    )


def _agree(state: TrainState, world: World, device, loss_sum=None) -> tuple[bool, bool]:
    """(stop, non-finite loss), the same on every rank: one small all-reduce (max) of the flags."""
    bad = loss_sum is not None and not torch.isfinite(loss_sum)
    if world.size == 1:
        return bool(state.stop_reason), bool(bad)
    flags = torch.tensor([bool(state.stop_reason), bad], dtype=torch.float32, device=device)
    stop, bad = (bool(v) for v in world.max(flags).tolist())
    if stop and not state.stop_reason:
        state.request_stop("another process was asked to stop")
    return stop, bad


def _end_epoch(
    state: TrainState, data: Dataset, test_x, world: World, callbacks, chance, log, progress
) -> None:
    """Evaluate, record the epoch's row, log it, and apply the divergence guard."""
    cfg, model = state.config, state.model
    t_eval = time.perf_counter()
    for b in model.buffers():  # batch-norm statistics: rank 0's, as saved
        world.broadcast(b)
    for cb in callbacks:
        cb.on_eval_start(state)
    # shift averaging takes five passes: the epochs before the last are watched with one
    shifted = cfg.tta_shift and state.epoch + 1 == cfg.epochs
    ev_cfg = replace(cfg, tta_shift=shifted)
    ev = evaluate(model, test_x, data.test_labels[: len(test_x)], ev_cfg, world, progress)
    row = dict(state.partial["row"], test_loss=ev["loss"], test_acc=ev["acc"])
    row["eval_time"] = time.perf_counter() - t_eval
    row["elapsed"] = state.partial["elapsed_before"] + row["train_time"] + row["eval_time"]
    state.history.append(row)
    state.epoch, state.step, state.partial = state.epoch + 1, 0, {}
    if log:
        if shifted:
            log("the accuracy below averages each test image and its four 1-px shifts (tta_shift)")
        log(
            f"Epoch [{state.epoch}/{cfg.epochs}], Train Loss: {row['train_loss']:.4f}, "
            f"Test Loss: {row['test_loss']:.4f}, Acc: {100 * row['test_acc']:.2f}%"
            f"  ({row['train_time'] + row['eval_time']:.1f} s)"  # img/s: the bar, metrics, report
        )
    if not row["train_loss"] < EXPLODED * chance or not math.isfinite(row["test_loss"]):
        raise Diverged(
            f"training diverged in epoch {state.epoch}: the mean train loss was "
            f"{row['train_loss']:.4g} (test loss {row['test_loss']:.4g}), more than "
            f"{EXPLODED} times the chance level ln({data.num_classes}) = {chance:.4f}; "
            f"try a lower --lr (now {cfg.lr:g}) or --optimizer adamw."
        )
    stuck = abs(row["train_loss"] - chance) < 1e-3 and ev["preds"].unique().numel() == 1
    if stuck and state.scheduler.last_epoch >= STUCK_AFTER:
        raise Diverged(
            f"training collapsed in epoch {state.epoch}: the loss is stuck at "
            f"ln({data.num_classes}) = {chance:.4f} and every test image is predicted as "
            f"{data.classes[int(ev['preds'][0])]!r} (dead class maps); try a lower --lr, "
            "another --seed, or --optimizer adamw."
        )


def _train_epoch(state, net, loader, device, world, callbacks, progress, log) -> None:
    cfg, optimizer, scheduler, scaler = state.config, state.optimizer, state.scheduler, state.scaler
    epoch = state.epoch
    loader.set_epoch(epoch)
    gen = epoch_generator(cfg.seed + 7919, epoch)  # augmentation, apart from the batch order
    p = state.partial
    if state.step:  # resuming inside this epoch
        gen.set_state(p["aug_state"])
    else:
        elapsed = state.history[-1]["elapsed"] if state.history else 0.0
        p.update(loss_sum=0.0, correct=0, seen=0, train_time=0.0, elapsed_before=elapsed)
    # loss sum, right answers, images: on the device, read every SYNC_EVERY steps. The partial
    # sums of a checkpoint are the whole world's; rank 0 carries them on.
    start = [p["loss_sum"], p["correct"], p["seen"]] if world.main else [0.0, 0, 0]
    sums = torch.tensor(start, dtype=torch.float64, device=device)
    state.model.train()
    desc = f"Epoch {epoch + 1}/{cfg.epochs}"
    bar = progress_bar(len(loader), desc, "batch", progress, initial=state.step)
    t0 = time.perf_counter()
    train_time0 = p["train_time"]
    for i, (xb, yb) in enumerate(loader):
        if i < state.step:
            continue
        part = world.part(len(yb))
        x, y = to_input(xb, cfg, gen, part), yb[part]
        with autocast(cfg.precision, device):
            logits = net(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        share = len(y) * world.size / len(yb)  # 1 unless the last batch splits unevenly
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss if share == 1 else loss * share).backward()
        for cb in callbacks:
            cb.on_backward_end(state)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        sums[0] += loss.detach().double() * len(y)
        sums[1] += (logits.argmax(1) == y).sum()
        sums[2] += len(y)
        state.step = i + 1
        bar.update(1)
        for cb in callbacks:
            cb.on_batch_end(state)
        sync = state.step % SYNC_EVERY == 0 or state.step == len(loader)
        if not sync and (world.size > 1 or not state.stop_reason):
            continue  # one process honours a stop at once; several agree at sync points only
        stop, bad = _agree(state, world, device, sums[0])
        p["train_time"] = train_time0 + time.perf_counter() - t0
        if bad:
            raise Diverged(
                f"training diverged in epoch {epoch + 1} by step {state.step}: the loss became "
                f"{sums[0].item()}. Try a lower --lr (now {cfg.lr:g}), or --optimizer adamw."
            )
        if progress and sync:
            loss_sum, _, seen = sums.tolist()
            rate = seen * world.size / max(p["train_time"], 1e-9)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", img_s=f"{rate:,.0f}")
        if stop and state.step < len(loader):
            p["loss_sum"], p["correct"], p["seen"] = world.sum(sums.clone()).tolist()
            p["aug_state"] = gen.get_state()
            bar.close()
            for cb in callbacks:
                cb.on_interrupt(state)
            world.barrier()
            raise Interrupted(
                f"{state.stop_reason}: stopped in epoch {epoch + 1} after step {state.step} of "
                f"{len(loader)}",
                state.stop_signum,
            )
    bar.close()
    loss_sum, correct, seen = world.sum(sums).tolist()  # the epoch's sums over every rank
    p["train_time"] = train_time0 + time.perf_counter() - t0
    p["row"] = {
        "epoch": epoch + 1,
        "train_loss": loss_sum / seen,
        "train_acc": correct / seen,
        "lr": optimizer.param_groups[0]["lr"],
        "train_time": p["train_time"],
        "images_per_s": seen / max(p["train_time"], 1e-9),
    }
