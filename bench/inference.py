"""Inference speed of nin_fast: as trained vs folded/fused, and dense maps vs crop-by-crop.

    python bench/inference.py                      # untrained nin_fast (speed needs no training)
    python bench/inference.py --run runs/nin_fast  # a trained run

1. images/s at the training size: the model as trained (conv + BN) vs `for_inference` (BN folded
   into the convs, every fusable 1x1 pair fused), same batch, same process, same threads.
2. On an image `--scale` times the training side: one dense pass (the DenseClassifier's score
   grid, one cell per crop every `stride` px) vs classifying each of those crops on its own.
Every number printed is measured in this run; timings are the fastest of --repeats.
"""

from __future__ import annotations

import argparse

import torch

from ninlab.convert import for_inference, images_per_second
from ninlab.models import create_model
from ninlab.runs import load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", metavar="RUN_DIR", help="a trained nin_fast run (default: untrained)")
    p.add_argument(
        "--batch-size", type=int, default=128, help="images per timed call at training size"
    )
    p.add_argument("--scale", type=int, default=4, help="large image side / training side")
    p.add_argument("--large-batch", type=int, default=4, help="large images per timed call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.run:
        run = load_run(args.run)
        model, source = run.model, f"trained run {args.run}"
        c, size, _ = run.input_shape
    else:
        model = create_model("nin_fast").eval()
        c, size, source = 1, 28, "untrained nin_fast (no --run given; speed needs no training)"
    dense, conversion = for_inference(model, (c, size, size))
    print(f"{source}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"for_inference: {len(conversion.folded)} BN folded, {len(conversion.fused)} pairs fused")

    x = torch.randn(args.batch_size, c, size, size)
    with torch.no_grad():
        diff = (dense(x).flatten(1) - model(x)).abs().max().item()
    a = images_per_second(model, x, args.repeats)
    b = images_per_second(dense, x, args.repeats)
    print(f"\n{size}x{size}, batch {args.batch_size} (max |difference| {diff:.1e})")
    print(f"  {'as trained':<28}{a:>10,.0f} images/s")
    print(f"  {'folded + fused':<28}{b:>10,.0f} images/s   {b / a:.2f}x")

    big = size * args.scale
    s = dense.stride
    n = (big - size) // s + 1  # crops per side
    xl = torch.randn(args.large_batch, c, big, big)

    def crop_by_crop(images):
        crops = images.unfold(2, size, s).unfold(3, size, s)  # N x C x n x n x size x size
        crops = crops.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, size, size)
        return torch.cat([model(part) for part in crops.split(256)])

    d = images_per_second(dense, xl, args.repeats, warmup=1)
    e = images_per_second(crop_by_crop, xl, max(1, args.repeats // 2), warmup=1)
    print(
        f"\n{big}x{big} images ({args.scale}x the side), {n}x{n} = {n * n} crops of {size} px "
        f"every {s} px, batch {args.large_batch}"
    )
    print(f"  {'crop by crop (as trained)':<28}{e:>10,.2f} images/s")
    print(f"  {'dense score map':<28}{d:>10,.2f} images/s   {d / e:.1f}x")


if __name__ == "__main__":
    main()
