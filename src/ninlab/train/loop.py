"""fit(): the training loop, with evaluation, a divergence guard and interruptible checkpoints.

The whole data set is one uint8 tensor on the training device; each batch is normalised, resized
and augmented there as one batched op (see ninlab.data.transforms). Everything random is fixed by
`config.seed`: initialisation (global RNG, seeded before the model is built), the batch order of
epoch e and its augmentation (generators seeded from (seed, e)), and dropout (global RNG, saved in
checkpoints). So a run resumed from a checkpoint ends in the same weights as one never stopped
(bit-identical on CPU with the same thread count).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ninlab.data import BatchLoader, Dataset, epoch_generator
from ninlab.data.transforms import random_flip, random_translate, resize, to_channels, to_float
from ninlab.errors import NinlabError
from ninlab.train.config import TrainConfig

EXPLODED = 10  # an epoch's mean train loss above EXPLODED * ln(classes) means divergence


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
    stop_reason: str | None = None
    stop_signum: int | None = None

    def request_stop(self, reason: str = "stop requested", signum: int | None = None) -> None:
        """Ask fit() to checkpoint and stop after the current batch."""
        self.stop_reason, self.stop_signum = reason, signum

    def checkpoint(self) -> dict:
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
        }
        if torch.cuda.is_available():
            ckpt["rng_cuda"] = torch.cuda.get_rng_state_all()
        return ckpt

    def load(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.history, self.partial = ckpt["history"], ckpt["partial"]
        torch.set_rng_state(ckpt["rng_cpu"])
        if "rng_cuda" in ckpt and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])


class Callback:
    """Hooks fit() calls; override what you need."""

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_batch_end(self, state: TrainState) -> None: ...

    def on_interrupt(self, state: TrainState) -> None: ...


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NinlabError(
            f"--device {name} was asked for but this machine has no usable CUDA GPU; "
            "use --device cpu (or auto)."
        )
    return torch.device(name)


def to_input(images: torch.Tensor, cfg: TrainConfig, gen: torch.Generator | None = None):
    """uint8 batch -> model input: normalise, resize, augment (when gen is given), channels."""
    x = to_float(images, cfg.mean, cfg.std)
    x = resize(x, cfg.input_size)
    if gen is not None:
        x = random_translate(x, cfg.translate, gen)
        if cfg.flip:
            x = random_flip(x, gen)
    x = to_channels(x, cfg.in_chans)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, cfg: TrainConfig, device=None):
    """Logits for uint8 images in batches (averaged with the mirror image when cfg.tta_flip)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), cfg.eval_batch_size):
        x = to_input(images[i : i + cfg.eval_batch_size].to(device), cfg)
        logits = model(x)
        if cfg.tta_flip:
            logits = (logits + model(x.flip(-1))) / 2
        out.append(logits.float())
    model.train(was_training)
    return torch.cat(out)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig):
    """Test loss (plain cross-entropy), accuracy and predictions on uint8 images."""
    logits = predict_logits(model, images, cfg)
    labels = labels.to(logits.device)
    preds = logits.argmax(1)
    return {
        "loss": F.cross_entropy(logits, labels).item(),
        "acc": (preds == labels).float().mean().item(),
        "preds": preds.cpu(),
        "logits": logits.cpu(),
    }


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    """Weight decay on conv/linear weights only (not on biases or batch-norm parameters)."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0
    )


def make_scheduler(optimizer, cfg: TrainConfig, total_steps: int):
    """'onecycle': lr rises linearly from 0 over the warm-up, then falls linearly to 0."""
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    warm = max(1, round(cfg.warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def init_weights(model: nn.Module, kind: str) -> None:
    if kind == "xavier":
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


class _StopOnSignal:
    """SIGINT/SIGTERM ask for a clean stop after the current batch; a second Ctrl-C aborts."""

    def __init__(self, state: TrainState):
        self.state, self.old = state, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.state.stop_reason and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.state.request_stop(f"received {signal.Signals(signum).name}", signum)

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


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

    `config` must be complete (see ninlab.train.prepare_config). Raises Diverged or Interrupted
    (after calling the callbacks' on_interrupt, which write a checkpoint) instead of returning.
    """
    cfg = config
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    n_train = min(cfg.limit_train or len(data.train_images), len(data.train_images))
    train_x = data.train_images[:n_train].to(device)
    train_y = data.train_labels[:n_train].to(device)
    loader = BatchLoader(train_x, train_y, cfg.batch_size, shuffle=True, seed=cfg.seed)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, cfg.epochs * len(loader))
    state = TrainState(cfg, model, optimizer, scheduler)
    if resume is not None:
        state.load(resume)
    chance = math.log(data.num_classes)
    with _StopOnSignal(state):
        while state.epoch < cfg.epochs:
            _train_epoch(state, loader, device, callbacks, progress)
            t_eval = time.perf_counter()
            ev = evaluate(model, data.test_images, data.test_labels, cfg)
            row = dict(state.partial["row"], test_loss=ev["loss"], test_acc=ev["acc"])
            row["eval_time"] = time.perf_counter() - t_eval
            row["elapsed"] = state.partial["elapsed_before"] + row["train_time"] + row["eval_time"]
            state.history.append(row)
            state.epoch, state.step, state.partial = state.epoch + 1, 0, {}
            if log:
                log(
                    f"Epoch [{state.epoch}/{cfg.epochs}], Train Loss: {row['train_loss']:.4f}, "
                    f"Test Loss: {row['test_loss']:.4f}, Acc: {100 * row['test_acc']:.2f}%"
                    f"  ({row['train_time'] + row['eval_time']:.1f} s, "
                    f"{row['images_per_s']:,.0f} img/s)"
                )
            if not row["train_loss"] < EXPLODED * chance or not math.isfinite(row["test_loss"]):
                raise Diverged(
                    f"training diverged in epoch {state.epoch}: the mean train loss was "
                    f"{row['train_loss']:.4g} (test loss {row['test_loss']:.4g}), more than "
                    f"{EXPLODED} times the chance level ln({data.num_classes}) = {chance:.4f}; "
                    f"try a lower --lr (now {cfg.lr:g}) or --optimizer adamw."
                )
            if abs(row["train_loss"] - chance) < 1e-3 and ev["preds"].unique().numel() == 1:
                raise Diverged(
                    f"training collapsed in epoch {state.epoch}: the loss is stuck at "
                    f"ln({data.num_classes}) = {chance:.4f} and every test image is predicted as "
                    f"{data.classes[int(ev['preds'][0])]!r} (dead class maps); try a lower --lr, "
                    "another --seed, or --optimizer adamw."
                )
            for cb in callbacks:
                cb.on_epoch_end(state)
            if state.stop_reason and state.epoch < cfg.epochs:
                for cb in callbacks:
                    cb.on_interrupt(state)
                raise Interrupted(
                    f"{state.stop_reason}: stopped after epoch {state.epoch}", state.stop_signum
                )
    return state.history


def _train_epoch(state: TrainState, loader: BatchLoader, device, callbacks, progress) -> None:
    cfg, model, optimizer, scheduler = state.config, state.model, state.optimizer, state.scheduler
    epoch = state.epoch
    loader.set_epoch(epoch)
    gen = epoch_generator(cfg.seed + 7919, epoch)  # augmentation, apart from the batch order
    p = state.partial
    if state.step:  # resuming inside this epoch
        gen.set_state(p["aug_state"])
    else:
        elapsed = state.history[-1]["elapsed"] if state.history else 0.0
        p.update(loss_sum=0.0, correct=0, seen=0, train_time=0.0, elapsed_before=elapsed)
    model.train()
    bar = tqdm(
        total=len(loader),
        initial=state.step,
        desc=f"Epoch {epoch + 1}/{cfg.epochs}",
        unit="batch",
        leave=False,
        disable=not progress or None,
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    train_time0 = p["train_time"]
    for i, (xb, yb) in enumerate(loader):
        if i < state.step:
            continue
        x = to_input(xb, cfg, gen)
        logits = model(x)
        loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise Diverged(
                f"training diverged in epoch {epoch + 1}, step {i + 1}: the loss became "
                f"{loss.item()}. Try a lower --lr "
                f"(now {cfg.lr:g}), or --optimizer adamw."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        p["loss_sum"] += loss.item() * len(yb)
        p["correct"] += (logits.argmax(1) == yb).sum().item()
        p["seen"] += len(yb)
        state.step = i + 1
        p["train_time"] = train_time0 + time.perf_counter() - t0
        if bar.n % 10 == 0 or state.step == len(loader):
            bar.set_postfix(
                loss=f"{p['loss_sum'] / p['seen']:.4f}",
                img_s=f"{p['seen'] / max(p['train_time'], 1e-9):,.0f}",
            )
        bar.update(1)
        for cb in callbacks:
            cb.on_batch_end(state)
        if state.stop_reason and state.step < len(loader):
            p["aug_state"] = gen.get_state()
            bar.close()
            for cb in callbacks:
                cb.on_interrupt(state)
            raise Interrupted(
                f"{state.stop_reason}: stopped in epoch {epoch + 1} after step {state.step} of "
                f"{len(loader)}",
                state.stop_signum,
            )
    bar.close()
    p["row"] = {
        "epoch": epoch + 1,
        "train_loss": p["loss_sum"] / p["seen"],
        "train_acc": p["correct"] / p["seen"],
        "lr": optimizer.param_groups[0]["lr"],
        "train_time": p["train_time"],
        "images_per_s": p["seen"] / max(p["train_time"], 1e-9),
    }
