"""Where and how a training session ran: when, the command line, the versions, and the device,
precision, threads and processes actually used (not "auto"). `ninlab.runs` keeps one entry per
session (a first run and each --resume) in RUN_DIR/facts.json; the report shows them.
"""

from __future__ import annotations

import platform
import shlex
import socket
import sys
import time
from pathlib import Path

import torch

from ninlab.train.config import TrainConfig
from ninlab.train.distributed import World
from ninlab.version import __version__


def now() -> str:
    """Local time with its UTC offset, to the second (ISO 8601)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def command_line(argv: list[str] | None = None) -> str:
    """The process's command line as a shell would take it: the program by its file name, and a
    package's __main__.py as `python -m PACKAGE`."""
    argv = list(sys.argv if argv is None else argv) or ["python"]
    program = Path(argv[0])
    module = program.name == "__main__.py"
    head = ["python", "-m", program.parent.name] if module else [program.name]
    return shlex.join([*head, *argv[1:]])


def device_name(device: torch.device) -> str:
    """The GPU's name, or the processor's (Linux: /proc/cpuinfo "model name")."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine()


def session_facts(cfg: TrainConfig, device: torch.device, world: World) -> dict:
    """The facts of a session about to train with the resolved `cfg` on `device`."""
    return {
        "started": now(),
        "command": command_line(),
        "host": socket.gethostname(),
        "ninlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": str(device),
        "device_name": device_name(device),
        "precision": cfg.precision,  # resolved: never "auto" here
        "threads": cfg.threads or torch.get_num_threads(),  # what fit() will use per process
        "processes": world.size,
    }
