"""Cheaper steps for issue 27's fast goal: variants of the default recipe trained side by side.

    python bench/fast_variants.py                                   # every variant, 3 epochs
    python bench/fast_variants.py --variants batch64 whiten2 --epochs 6
    python bench/fast_variants.py --variants whiten2 --epochs 6 --seeds 0 1 2

Variants (each the default recipe at the same seed and epochs; each adds to the one above it
unless it says otherwise):
  nin_fast   as `ninlab train` runs it, for --epochs
  class1x1   the class block's 3x3 conv to 256 channels (45% of the FLOPs) becomes a 1x1 conv
  batch64    batch 64 instead of 128 (lr unchanged): twice the steps per epoch
  whiten2    the 5x5 stem and its pooling become a frozen 2x2 stride-2 conv that whitens 2x2
             patches (the +/- eigenvectors of their covariance over 5,000 training images,
             scaled to unit variance: 8 channels) and a ReLU, as airbench's first layer; this
             is the registered model nin_whiten, but built on nin_fast's seeded blocks
  whiten4    as whiten2 with 4x4 patches (32 channels), in place of whiten2
  ema        whiten2, evaluated with an exponential moving average of its weights (decay 0.98
             per step, PyTorch's AveragedModel) in place of the last weights
For each: parameters, the FLOP of one training step per image (FlopCounterMode), the test
accuracy after each epoch, that of the last evaluation's weights with shift averaging
(`tta_shift`: the softmax of each test image, weighted 2, and of its four 1-pixel shifts, filled
with black; its time is not in the wall time), the training images/s, and fit()'s wall time
(data loading excluded) with its cost = wall s x R / 1000; R, this machine's fp32 matmul rate, is
measured before each variant. Every number printed is measured in this run; run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict
from dataclasses import replace

from machine import describe, matmul_rate, training_images_per_second, training_step_flops
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ninlab import train as T
from ninlab.data import epoch_generator, load_dataset
from ninlab.models.layers import NiNBlock
from ninlab.models.nin import NiN
from ninlab.models.whitening import PatchWhitening

VARIANTS = {  # name: (batch size, stem, EMA)
    "nin_fast": None,
    "class1x1": (128, None, False),
    "batch64": (64, None, False),
    "whiten2": (64, 2, False),
    "whiten4": (64, 4, False),
    "ema": (64, 2, True),
}
EMA_DECAY = 0.98


def variant_model(stem: int | None, cfg: T.TrainConfig) -> NiN:
    """nin_fast with a 1x1 class block and, when `stem` is given, a stem x stem whitening stem
    (`fit` fits it to the first 5,000 training images before the first step)."""
    base = T.build_model(cfg)  # seeded by cfg.seed: the same blocks as the default's
    features = OrderedDict(base.features.named_children())
    if stem:
        del features["pool1"]
        conv = PatchWhitening(cfg.in_chans, stem)
        features["block1"] = nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU()))
        c2 = base.features.block2.out_channels
        features["block2"] = NiNBlock(conv.out_channels, (c2, c2), 3, padding=1, batch_norm=True)
    c3, c4 = base.features.block3.out_channels, base.head.maps.block.conv.out_channels
    head = NiNBlock(c3, (c4, len(cfg.classes)), 1, batch_norm=True, final_relu=False)
    return NiN(features, head, base.default_input_size)


class Ema(T.Callback):
    """Keeps an EMA of the weights (and batch-norm buffers) and loads it for the last evaluation."""

    def __init__(self, model: nn.Module):
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(EMA_DECAY),
                                 use_buffers=True)  # fmt: skip

    def on_batch_end(self, state):
        self.ema.update_parameters(state.model)

    def on_eval_start(self, state):
        if state.epoch + 1 == state.config.epochs:
            state.model.load_state_dict(self.ema.module.state_dict())


def run_variant(name: str, seed: int, data, args) -> dict:
    spec = VARIANTS[name]
    batch = spec[0] if spec else 128
    cfg = T.resolve("fast", epochs=args.epochs, batch_size=batch, threads=args.threads, seed=seed)
    cfg = T.prepare_config(cfg, data)
    model = T.build_model(cfg) if spec is None else variant_model(spec[1], cfg)
    x = T.to_input(data.train_images[:batch], cfg, epoch_generator(0, 0))
    flops = training_step_flops(model.train(), x, data.train_labels[:batch]) / batch
    callbacks = [Ema(model)] if spec and spec[2] else []
    rate = matmul_rate()
    t0 = time.perf_counter()
    history = T.fit(model, data, cfg, callbacks, progress=False, log=None)
    wall = time.perf_counter() - t0
    test = data.test_images, data.test_labels
    img_s = training_images_per_second(history)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "mflop": flops / 1e6,
        "accs": [r["test_acc"] for r in history],
        "shifted": T.evaluate(model, *test, replace(cfg, tta_shift=True))["acc"],
        "img_s": img_s,
        "of_r": img_s * flops / (rate * 1e9),
        "wall": wall,
        "cost": wall * rate / 1000,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=3, help="epochs per variant (default: 3)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default: 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    args = p.parse_args()
    data = load_dataset("fashion-mnist")
    print(describe(matmul_rate()))
    print(f"{args.epochs} epochs per variant; the accuracy after each epoch, then with shifts")
    print(f"{'variant':<10}{'seed':>5}{'params':>9}{'MFLOP':>7}  {'test accuracy by epoch':<40}"
          f"{'shifts':>7}{'img/s':>7}{'% of R':>7}{'wall s':>7}{'cost':>6}",
          flush=True)  # fmt: skip
    for name in args.variants:
        for seed in args.seeds:
            r = run_variant(name, seed, data, args)
            accs = " ".join(f"{100 * a:.2f}" for a in r["accs"])
            speed = f"{r['img_s']:>7,.0f}{100 * r['of_r']:>6.0f}%{r['wall']:>7.0f}{r['cost']:>6.1f}"
            print(f"{name:<10}{seed:>5}{r['params']:>9,}{r['mflop']:>7.1f}  {accs:<40}"
                  f"{100 * r['shifted']:>7.2f}{speed}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
