"""Serving the live page: the run loaded once, a socket bound, uvicorn until Ctrl-C.

The socket is bound before the run loads, so a port in use is said at once (port 0 takes any
free one; the address printed is the real one). Uploads live in a private temporary folder
(mode 0700, `tempfile`), removed when the server stops, by Ctrl-C or SIGTERM alike.
Starlette and uvicorn are the `explore` extra, imported here only when a server starts.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ninlab.errors import NinlabError
from ninlab.explore.explorer import Explorer
from ninlab.runs import load_run

DEFAULT_PORT = 8765
EXTRA = 'pip install -e ".[explore]"'  # from a checkout; `pip install "ninlab[explore]"` else


class Stopped(Exception):
    """SIGTERM, raised where the server runs so that the folder is still removed."""


def explorer_for(run_dir: str | Path, weights: str = "best", data_dir=None, log=print) -> Explorer:
    """An Explorer of a run directory, with its test set when the data set can be read."""
    run = load_run(run_dir, weights)
    try:
        data = run.dataset(data_dir)
    except NinlabError as e:
        data = None
        if log:
            log(f"no test images to choose from: {e}")
    return Explorer(run, data)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or one sentence on why not."""
    if not 0 <= port <= 65535:
        raise NinlabError(f"--port {port} is not a TCP port; give 1 to 65535, or 0 for any free "
                          "one.")  # fmt: skip
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise NinlabError(f"port {port} on {host} is in use; pass another --port, or --port "
                              "0 for any free one.") from None  # fmt: skip
        raise NinlabError(f"cannot listen on {host}:{port} ({e.strerror or e}); pass another "
                          "--host or --port.") from None  # fmt: skip
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


def serve(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    weights: str = "best",
    data_dir=None,
    log: Callable[[str], None] | None = None,
) -> None:
    """Serve the live page of a run until Ctrl-C (or SIGTERM). The address goes to `log`
    (default: stdout, flushed, for a program that reads it through a pipe) once the run is
    loaded; the socket listens already, so a request made then waits for uvicorn to take it."""
    log = log or partial(print, flush=True)
    try:
        import uvicorn

        from ninlab.explore.app import make_app
    except ModuleNotFoundError as e:
        raise NinlabError(f"ninlab explore needs {e.name}, which the explore extra installs: "
                          f"{EXTRA}.") from None  # fmt: skip
    sock = bind(host, port)
    if not is_loopback(host):
        print(
            f"ninlab: warning: --host {host} lets other machines reach the page, which has no "
            "login: anyone who reaches it can see the run and send pictures.",
            file=sys.stderr,
        )
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        explorer = explorer_for(run_dir, weights, data_dir, log)
        with tempfile.TemporaryDirectory(prefix="ninlab-explore-") as folder:
            config = uvicorn.Config(make_app(explorer, Path(folder)), log_level="warning",
                                    access_log=False, lifespan="off")  # fmt: skip
            server = uvicorn.Server(config)
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{sock.getsockname()[1]}/"
            log(f"ninlab explore: {url} ({explorer.run.config.model} of {run_dir}; uploads in "
                f"{folder} until it stops; Ctrl-C stops it)")  # fmt: skip
            with contextlib.suppress(KeyboardInterrupt, Stopped):
                server.run(sockets=[sock])
        log("ninlab explore: stopped; the uploads folder is removed.")
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


def _raise_stopped(signum, frame):
    raise Stopped
