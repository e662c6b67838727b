"""ninlab's command line: one module per verb, each a thin layer over the library.

Every verb module has a docstring (its --help text, with examples), `add_arguments(parser)` and
`run(args) -> int`. A NinlabError becomes one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import ninlab
from ninlab import __version__
from ninlab.errors import NinlabError

# verb -> module under ninlab.cli (kept in the order `ninlab --help` lists them)
VERBS = {
    "train": "train",
    "eval": "evaluate",
    "predict": "predict",
    "models": "models",
    "data": "data",
    "summary": "summary",
    "compare": "compare",
    "claims": "claims",
    "convert": "convert",
    "export": "export",
    "features": "features",
    "sparsity": "sparsity",
    "cam": "cam",
    "report": "report",
}


def _available_verbs() -> dict:
    modules = {}
    for verb, name in VERBS.items():
        try:
            modules[verb] = importlib.import_module(f"ninlab.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"ninlab.cli.{name}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ninlab",
        description=ninlab.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `ninlab VERB --help` for the options and examples of each verb.",
    )
    parser.add_argument("--version", action="version", version=f"ninlab {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, module in _available_verbs().items():
        doc = module.__doc__ or verb
        p = sub.add_parser(
            verb,
            help=doc.splitlines()[0],
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except NinlabError as e:
        print(f"ninlab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `ninlab eval RUN | head`: the reader left, nothing to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silence the flush at exit)
        return 0
    except KeyboardInterrupt:
        print("ninlab: interrupted.", file=sys.stderr)
        return 130
