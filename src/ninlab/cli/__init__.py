"""ninlab's command line: one module per verb, each a thin layer over the library.

Every verb module has a docstring (its --help text, with examples), `add_arguments(parser)` and
`run(args) -> int`. A NinlabError becomes one sentence on stderr and its exit status (2 for bad
input, 3 for a diverged run); an interrupted run says how to resume and exits with 128 + signal.
An OSError that no check turned into a sentence (the disk, permissions) is still one line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from ninlab.checksum import Unchecked
from ninlab.errors import NinlabError
from ninlab.train import Interrupted
from ninlab.train.distributed import env_world
from ninlab.version import __version__

DESCRIPTION = """\
Network-in-Network models and 1x1 convolutions: train, convert, analyse, look inside.

Start with `ninlab train` (nin_fast on Fashion-MNIST, a few minutes on a CPU), then
`ninlab eval RUN_DIR` and `ninlab report RUN_DIR`."""

# verb -> module under ninlab.cli (kept in the order `ninlab --help` lists them)
VERBS = {
    "train": "train",
    "eval": "evaluate",
    "predict": "predict",
    "models": "models",
    "data": "data",
    "summary": "summary",
    "profile": "profile",
    "compare": "compare",
    "claims": "claims",
    "convert": "convert",
    "export": "export",
    "features": "features",
    "sparsity": "sparsity",
    "cam": "cam",
    "locate": "locate",
    "report": "report",
    "explore": "explore",
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
        description=DESCRIPTION,
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


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """ninlab's own warnings as one line, "ninlab: warning: ..."; others as Python shows them."""
    if issubclass(category, Unchecked):
        print(f"ninlab: warning: {message}.", file=file or sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    warnings.showwarning = _show_warning
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line as given (`train --nproc` passes it on to torchrun)
    try:
        return args.run(args) or 0
    except Interrupted as e:  # a requested stop, not an error: rank 0 wrote the checkpoint
        if env_world().main:  # (the process group is gone by now; torchrun's RANK is not)
            print(f"\nninlab: {e}")
        return e.exit_code
    except NinlabError as e:
        rank = env_world().rank
        print(f"ninlab{f' (rank {rank})' if rank else ''}: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # e.g. `ninlab eval RUN | head`: the reader left, nothing to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silence the flush at exit)
        return 0
    except OSError as e:  # the machine's refusal (a full disk, a permission) that no check saw
        where = f" ({e.filename})" if e.filename else ""
        print(f"ninlab: error: {e.strerror or e}{where}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ninlab: interrupted.", file=sys.stderr)
        return 130
