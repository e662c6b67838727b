"""What each part of the default recipe is worth: train it with one part changed at a time.

    python bench/recipe_ablation.py                                 # every variant, seed 0
    python bench/recipe_ablation.py --variants default aug --seeds 0 1 2
    python bench/recipe_ablation.py --variants default no-bn --epochs 3

Variants (each the default recipe, same seed and epochs, with one change):
  default       as `ninlab train` runs it
  fp32          no bf16 autocast (where the default uses it)
  compile       torch.compile the model
  aug           random shifts of up to 2 px, horizontal flips and test-time flip averaging
  no-smoothing  label smoothing 0
  constant-lr   no warm-up and no decay: the peak lr throughout
  no-bn         nin_fast without batch norm (convs get biases)
The final weights of every variant are evaluated twice: plainly, and averaging each test image's
logits with those of its mirror image (flip TTA). R, this machine's fp32 matmul rate, is measured
before each run, and cost = wall s x R / 1000. Every number printed is measured in this run; run it
on an otherwise idle machine.
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

VARIANTS = {
    "default": {},
    "fp32": dict(precision="fp32"),
    "compile": dict(compile=True),
    "aug": dict(translate=2, flip=True, tta_flip=True),
    "no-smoothing": dict(label_smoothing=0.0),
    "constant-lr": dict(schedule="constant"),
    "no-bn": {},  # a model change, below
}


def run_variant(name: str, seed: int, data, args) -> dict:
    cfg = T.resolve("fast", seed=seed, epochs=args.epochs, threads=args.threads,
                    data_dir=args.data_dir, **VARIANTS[name])  # fmt: skip
    cfg = T.prepare_config(cfg, data)
    if name == "no-bn":
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model, num_classes=len(cfg.classes), batch_norm=False)
    else:
        model = T.build_model(cfg)
    rate = matmul_rate()
    t0 = time.perf_counter()
    try:
        history = T.fit(model, data, cfg, progress=False, log=None)
    except T.Diverged as e:
        wall = time.perf_counter() - t0
        return {"outcome": f"stopped by the guard: {e}", "wall": wall}
    wall = time.perf_counter() - t0
    test = data.test_images, data.test_labels
    acc = {tta: T.evaluate(model, *test, replace(cfg, tta_flip=tta))["acc"] for tta in (0, 1)}
    return {
        "acc": history[-1]["test_acc"],  # as the recipe evaluates (with flip TTA or without)
        "plain": acc[False],
        "tta": acc[True],
        "train_loss": history[-1]["train_loss"],
        "img_s": training_images_per_second(history),
        "wall": wall,
        "cost": wall * rate / 1000,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, help="epochs per variant (default: the recipe's)")
    p.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: usual places)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    args = p.parse_args()
    data = load_dataset("fashion-mnist", data_dir=args.data_dir)
    epochs = args.epochs or T.resolve("fast").epochs
    print(describe(matmul_rate()))
    print(f"{epochs} epochs per variant, seeds {' '.join(map(str, args.seeds))}")
    print(f"{'variant':<14}{'seed':>4}{'recipe acc':>11}{'plain':>8}{'flip TTA':>9}"
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
                  f"{100 * r['tta']:>8.2f}%{r['train_loss']:>11.4f}{r['img_s']:>7,.0f}"
                  f"{r['wall']:>7.0f}{r['cost']:>5.0f}", flush=True)  # fmt: skip
        if len(results) > 1:
            accs = [100 * r["acc"] for r in results]
            print(f"{name:<14}mean{sum(accs) / len(accs):>10.2f}%  (min {min(accs):.2f}%, "
                  f"max {max(accs):.2f}%)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
