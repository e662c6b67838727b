"""Convert a trained run for inference: fully convolutional, batch norm folded, 1x1 convs fused.

Writes the weights of `ninlab.convert.for_inference(model)` as safetensors (the metadata says
what was folded and fused, and holds the run's config; `ninlab.convert.load_converted` reads
it back), then checks on random inputs that the converted model gives the same logits and
measures images/s of both in this process.

Examples:
  ninlab convert runs/nin_fast --out runs/nin_fast/inference.safetensors
  ninlab convert runs/lenet --out lenet_conv.safetensors --batch 256 --which final
"""

from __future__ import annotations

from pathlib import Path

import torch

from ninlab.convert import for_inference, images_per_second, save_converted
from ninlab.errors import NinlabError
from ninlab.runs import load_run


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `ninlab train`")
    p.add_argument("--out", metavar="FILE", required=True, help="where to write .safetensors")
    add_common(p)


def add_common(p) -> None:
    p.add_argument("--which", choices=("best", "final"), default="best", help="which weights")
    p.add_argument("--batch", type=int, default=64, help="inputs for the check and the timing")
    p.add_argument("--seed", type=int, default=0, help="seed of the random check inputs")


def load(args):
    """(run, input shape, converted model, conversion) from the parsed options."""
    if args.batch < 1:
        raise NinlabError(f"--batch must be at least 1, got {args.batch}.")
    run = load_run(args.run_dir, which=args.which)
    size = run.config.get("input_size") or run.model.default_input_size[-1]
    shape = (run.config["in_chans"], size, size)
    try:
        dense, conversion = for_inference(run.model, shape)
    except ValueError as e:
        raise NinlabError(str(e)) from None
    return run, shape, dense, conversion


def run(args) -> int:
    out = Path(args.out)
    if not out.parent.is_dir():
        raise NinlabError(f"folder {out.parent} does not exist; create it or pick another --out.")
    run_, shape, dense, conversion = load(args)
    torch.manual_seed(args.seed)
    x = torch.randn(args.batch, *shape)
    with torch.no_grad():
        ref = run_.model(x)
        diff = (dense(x).flatten(1) - ref).abs().max().item()
    before = images_per_second(run_.model, x)
    after = images_per_second(dense, x)
    save_converted(dense, out, conversion, run_.config)

    print(f"model {run_.config['model']} from {run_.weights}, input {'x'.join(map(str, shape))}")
    print(
        f"folded batch norm: {len(conversion.folded)} pairs; fused conv pairs: "
        f"{len(conversion.fused)}; score grid stride {conversion.stride} px"
    )
    print(
        f"check: max |converted - original| = {diff:.2e} on {args.batch} random N(0,1) inputs "
        f"(largest |logit| {ref.abs().max().item():.2e})"
    )
    print(
        f"speed: {before:,.0f} -> {after:,.0f} images/s ({after / before:.2f}x), "
        f"batch {args.batch}, {torch.get_num_threads()} threads"
    )
    print(f"wrote {out}")
    return 0
