"""Test accuracy against cost, epoch by epoch, for the recipes `bench/time_to_accuracy.py` ran.

    python bench/time_to_accuracy.py --seeds 0 1 2 --out runs/fast
    python bench/time_to_accuracy.py --recipe best --seeds 0 1 2 --out runs/best
    python bench/accuracy_cost.py runs/fast/results.json runs/best/results.json --out acc.png

Each seed is a line through its epochs: x is the cost at the end of the epoch (wall seconds since
the run started, data loading included, x the R measured before that seed / 1000), y the test
accuracy after it. The fast goal (93% at a cost of at most 12) and the best goal (95% at most
400) are drawn, and the legend gives, per recipe, the mean final accuracy and the mean cost to 93%,
read from the same files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ninlab.plotting import figure, plain_log_ticks, save_png

FONT = 9
GOALS = ((12, 93.0, "fast goal: 93% by cost 12"), (400, 95.0, "best goal: 95% by cost 400"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def cost_to(seed: dict, threshold: float) -> float | None:
    """Cost at the end of the first epoch whose test accuracy reached `threshold` (a fraction)."""
    for wall, acc in seed["epochs"]:
        if acc >= threshold:
            return wall * seed["rate"] / 1000
    return None


def draw(results: list[dict]):
    fig, ax = figure(figsize=(8, 5))
    for k, res in enumerate(results):
        finals = [100 * s["final"] for s in res["seeds"]]
        hits = [c for s in res["seeds"] if (c := cost_to(s, 0.93)) is not None]
        to93 = f"{sum(hits) / len(hits):.0f}" if len(hits) == len(res["seeds"]) else "not all"
        summary = (f"{res['recipe']} ({len(res['seeds'])} seeds): final "
                   f"{sum(finals) / len(finals):.2f}% (mean), cost to 93% {to93}")  # fmt: skip
        for j, seed in enumerate(res["seeds"]):
            x = [wall * seed["rate"] / 1000 for wall, _ in seed["epochs"]]
            y = [100 * acc for _, acc in seed["epochs"]]
            ax.plot(x, y, "o-", ms=3, color=f"C{k}", alpha=0.8, label=summary if j == 0 else None)
    for cost, acc, text in GOALS:
        ax.plot([cost], [acc], "*", ms=14, color="k")
        right = cost > 100  # the label on the side of the star that has room
        ax.annotate(text, (cost, acc), xytext=(-8 if right else 8, 6), textcoords="offset points",
                    fontsize=FONT, ha="right" if right else "left")  # fmt: skip
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel("cost: wall s x R / 1000 (TFLOP at this machine's fp32 matmul rate)",
                  fontsize=FONT)  # fmt: skip
    ax.set_ylabel("test accuracy after the epoch (%)", fontsize=FONT)
    ax.set_ylim(88, 96)
    ax.grid(alpha=0.3, which="both")
    ax.tick_params(labelsize=FONT)
    ax.legend(fontsize=FONT, loc="upper left")
    ax.set_title("Fashion-MNIST, test accuracy against cost, epoch by epoch", fontsize=FONT)
    fig.tight_layout()
    return fig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("results", nargs="+", type=Path, help="results.json of time_to_accuracy.py")
    p.add_argument("--out", default="accuracy-cost.png", help="the PNG (default %(default)s)")
    args = p.parse_args()
    results = [load(path) for path in args.results]
    print(f"wrote {save_png(draw(results), args.out)}")


if __name__ == "__main__":
    main()
