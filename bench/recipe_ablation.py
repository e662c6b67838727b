"""What each part of a recipe is worth: train it with one part changed at a time.

    python bench/recipe_ablation.py                                 # every variant, seed 0
    python bench/recipe_ablation.py --variants default aug --seeds 0 1 2
    python bench/recipe_ablation.py --variants default no-bn --epochs 3
    python bench/recipe_ablation.py --recipe whiten --seeds 0 1 2   # the whiten recipe's tricks

Variants (each the recipe that --recipe names, fast by default, with the same seed and epochs
and one change):
  default       as `ninlab train --recipe RECIPE` runs it
  fp32          no bf16 autocast (where the recipe uses it)
  compile       torch.compile the model
  aug           random shifts of up to 2 px, horizontal flips and test-time flip averaging
  no-smoothing  label smoothing 0
  constant-lr   no warm-up and no decay: the peak lr throughout
  half-lr       half the recipe's peak lr
  no-bn         nin_fast without batch norm (convs get biases)
  random-stem   nin_whiten with its frozen stem left at PyTorch's random init, not whitened
  class-3x3     nin_whiten with nin_fast's 3x3 conv to 256 in its class block, not a 1x1 conv
The last three change the model, so they apply to the recipes of that model only; without
--variants, every variant that applies runs. The final weights of every variant are evaluated
three times: plainly, averaging each test image's logits with those of its mirror image (flip
TTA), and averaging its probabilities with those of its four 1-px shifts (shift TTA, the whiten
recipe's). R, this machine's fp32 matmul rate, is measured before each run, and cost = wall s x R
/ 1000. Every number printed is measured in this run; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from machine import describe, matmul_rate, training_images_per_second

from ninlab import train as T
from ninlab.data import load_dataset
from ninlab.models import create_model
from ninlab.models.whitening import PatchWhitening

VARIANTS = {
    "default": {},
    "fp32": dict(precision="fp32"),
    "compile": dict(compile=True),
    "aug": dict(translate=2, flip=True, tta_flip=True),
    "no-smoothing": dict(label_smoothing=0.0),
    "constant-lr": dict(schedule="constant"),
    "half-lr": {},  # the recipe's lr / 2, below
    "no-bn": {},  # a model change, below
    "random-stem": {},
    "class-3x3": {},
}
MODEL_OF = {"no-bn": "nin_fast", "random-stem": "nin_whiten", "class-3x3": "nin_whiten"}


def build(name: str, cfg: T.TrainConfig) -> torch.nn.Module:
    """The recipe's model, or the variant's change of it, initialised from cfg.seed."""
    kwargs = {"no-bn": dict(batch_norm=False), "class-3x3": dict(class_kernel=3)}.get(name)
    if kwargs is None:
        model = T.build_model(cfg)
    else:
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model, num_classes=len(cfg.classes), **kwargs)
    if name == "random-stem":  # marked fitted, so `fit` keeps the random frozen weights
        for m in model.modules():
            if isinstance(m, PatchWhitening):
                m.fitted.fill_(True)
    return model


def run_variant(name: str, seed: int, data, args) -> dict:
    lr = {"lr": T.resolve(args.recipe).lr / 2} if name == "half-lr" else {}
    cfg = T.resolve(args.recipe, seed=seed, epochs=args.epochs, threads=args.threads,
                    data_dir=args.data_dir, **VARIANTS[name], **lr)  # fmt: skip
    cfg = T.prepare_config(cfg, data)
    model = build(name, cfg)
    rate = matmul_rate()
    t0 = time.perf_counter()
    try:
        history = T.fit(model, data, cfg, progress=False, log=None)
    except T.Diverged as e:
        wall = time.perf_counter() - t0
        return {"outcome": f"stopped by the guard: {e}", "wall": wall}
    wall = time.perf_counter() - t0
    test = data.test_images, data.test_labels
    ways = {"plain": {}, "tta": dict(tta_flip=True), "shifts": dict(tta_shift=True)}
    plain = dict(tta_flip=False, tta_shift=False)
    acc = {k: T.evaluate(model, *test, replace(cfg, **(plain | w)))["acc"] for k, w in ways.items()}
    return {
        "acc": history[-1]["test_acc"],  # as the recipe evaluates (with TTA or without)
        **acc,
        "train_loss": history[-1]["train_loss"],
        "img_s": training_images_per_second(history),
        "wall": wall,
        "cost": wall * rate / 1000,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipe", default="fast", choices=T.RECIPES, help="the recipe (fast)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                   help="default: every variant that applies to the recipe's model")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, help="epochs per variant (default: the recipe's)")
    p.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: usual places)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    args = p.parse_args()
    data = load_dataset("fashion-mnist", data_dir=args.data_dir)
    recipe = T.resolve(args.recipe)
    model = recipe.model
    applies = [v for v in VARIANTS if MODEL_OF.get(v, model) == model]
    wrong = [v for v in args.variants or () if v not in applies]
    if wrong:
        changes = ", ".join(f"{v} changes {MODEL_OF[v]}" for v in wrong)
        p.error(f"{changes}, and the {args.recipe} recipe trains {model}; for it choose from "
                f"{' '.join(applies)}")  # fmt: skip
    args.variants = args.variants or applies
    epochs = args.epochs or recipe.epochs
    print(describe(matmul_rate()))
    print(f"recipe {args.recipe} ({model}), {epochs} epochs per variant, seeds "
          f"{' '.join(map(str, args.seeds))}")  # fmt: skip
    print(f"{'variant':<14}{'seed':>4}{'recipe acc':>11}{'plain':>8}{'flip TTA':>9}{'shifts':>8}"
          f"{'train loss':>11}{'img/s':>7}{'wall s':>7}{'cost':>5}", flush=True)  # fmt: skip
    for name in args.variants:
        results = []
        for seed in args.seeds:
            r = run_variant(name, seed, data, args)
            if "outcome" in r:
                print(f"{name:<14}{seed:>4}  {r['outcome']}  ({r['wall']:.0f} s)", flush=True)
                continue
            results.append(r)
            print(f"{name:<14}{seed:>4}{100 * r['acc']:>10.2f}%{100 * r['plain']:>7.2f}%"
                  f"{100 * r['tta']:>8.2f}%{100 * r['shifts']:>7.2f}%"
                  f"{r['train_loss']:>11.4f}{r['img_s']:>7,.0f}"
                  f"{r['wall']:>7.0f}{r['cost']:>5.0f}", flush=True)  # fmt: skip
        if len(results) > 1:
            accs = [100 * r["acc"] for r in results]
            print(f"{name:<14}mean{sum(accs) / len(accs):>10.2f}%  (min {min(accs):.2f}%, "
                  f"max {max(accs):.2f}%)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
