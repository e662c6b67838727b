"""One self-contained HTML report of a run, to open in any browser or send as one file.

Sections: the run's facts (when, where, versions, command, wall time, images/s, test-time flip,
how the best epoch is chosen), the curves (loss, accuracy, learning rate, images/s), precision,
recall and F1 per class, the confusion counts and shares with the most confident mistakes of the
most confused pairs, class activation maps of the most confident right and wrong predictions,
sparsity by depth in words, the model summary and the config. Images are embedded (base64); the
page loads nothing from the network and reads on a phone as on a desktop.
Writes RUN_DIR/report.html unless --out says otherwise.

Examples:
  ninlab report runs/r
  ninlab report runs/r --out /tmp/r.html --gallery 12
  ninlab report runs/seed --limit 2000
"""

from __future__ import annotations

from ninlab.cli.options import add_limit, add_out, add_run_inputs, at_least
from ninlab.files import writable_file, wrote
from ninlab.runs import load_run
from ninlab.terminal import fill
from ninlab.viz.report import build_report


def add_arguments(p) -> None:
    add_run_inputs(p)
    add_out(p, "the HTML file (default: RUN_DIR/report.html)")
    add_limit(p)
    p.add_argument(
        "--gallery",
        type=at_least(0),
        default=6,
        help="CAMs of right and of wrong predictions (default 6)",
    )


def run(args) -> int:
    run = load_run(args.run_dir, args.weights)
    out = writable_file(args.out or run.path / "report.html")  # before minutes of work
    existed = out.exists()
    data = run.dataset(args.data_dir)
    report = build_report(run, data, limit=args.limit, gallery=args.gallery, progress=True)
    out = report.write(out)
    print(fill(f"{run.config.model} ({run.weights.name}) on {report.images:,} {data.name} test "
               f"images: accuracy {100 * report.accuracy:.2f}%", indent="  "))  # fmt: skip
    sparsity = f"sparsity: {report.sparsity.words()} (claim 24: {report.sparsity.verdict})"
    print(fill(sparsity, indent="  "))
    print(f"{wrote(out, existed)} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0
