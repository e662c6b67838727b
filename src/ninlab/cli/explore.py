"""Look inside a trained run in a live page in your browser: pictures, units, scenes, the model.

Starts a local web server (Starlette and uvicorn, the explore extra: pip install -e
".[explore]") and prints its address; Ctrl-C stops it. Picture: upload or drop an image (made
like a training image, exactly as `ninlab predict` makes it) or choose a test image by index or
class; the top-5 classes, and the class map of any class you click. Units: a layer's feature
maps; click a unit to see its receptive field on the input (the window `ninlab summary` gives),
its activation, and on the class map's layer its share of the logit. Scene: drop a larger
picture, or take a sample one, and see `ninlab locate`'s boxes. Model: the summary table and
the run's facts. Everything is served from the package (no CDN); uploads stay in a private
temporary folder, removed when the server stops. It listens on 127.0.0.1 only, unless --host
says otherwise (with a warning: the page has no login).

Examples:
  ninlab explore runs/r
  ninlab explore runs/r --port 0
  ninlab explore runs/r --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

from ninlab.cli.options import add_run_inputs, at_least
from ninlab.explore import DEFAULT_PORT, serve


def add_arguments(p) -> None:
    add_run_inputs(p)
    p.add_argument("--port", type=at_least(0), default=DEFAULT_PORT, metavar="P",
                   help=f"port to listen on (default {DEFAULT_PORT}; 0: any free one)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                   help="address to listen on (default 127.0.0.1: this machine only)")  # fmt: skip


def run(args) -> int:
    serve(args.run_dir, args.host, args.port, args.weights, args.data_dir)
    return 0
