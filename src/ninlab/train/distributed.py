"""Several processes, one training run: torch.distributed as torchrun sets it up.

torchrun starts W processes and gives each RANK, LOCAL_RANK and WORLD_SIZE in its environment;
`process_group` joins them into one group (nccl on CUDA, gloo on the CPU) and leaves it at the end.
Without those variables there is one process, world size 1, and nothing else changes: the
single-process path is the same code. `fit` also works inside a process group that a user's own
script has set up (it only reads `current_world()`). A worker that torch's elastic agent started
(`--nproc`, torchrun) stops when that launcher ends, even by SIGKILL.

How a global batch of B images is shared (so that a run does not depend on W): every rank draws
the epoch's permutation and the batch's augmentation from (seed, epoch), then takes its own
contiguous slice `World.part(B)`; DDP averages the W gradients, and each rank's loss is weighted by
its share of the batch, so the step equals one process's step on the whole batch.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from ninlab.errors import NinlabError

T = TypeVar("T")

LAUNCHER = "NINLAB_LAUNCHER_PID"  # launch_local's process id, in its workers' environment
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class LostProcess(NinlabError):
    """A process of a distributed run died or could not be reached; the others stopped."""


@dataclass(frozen=True)
class World:
    """This process's place among the W processes of a run."""

    rank: int = 0
    local_rank: int = 0  # rank on this machine: which GPU to use
    size: int = 1
    local_size: int = 1  # processes on this machine (torchrun's LOCAL_WORLD_SIZE)

    @property
    def main(self) -> bool:
        """Rank 0 writes the run directory, the progress bar and the log."""
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This rank's contiguous share of n items (sizes differ by at most one)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `t` over all ranks (in place; a no-op for one process)."""
        if self.size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def max(self, t: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.size > 1:
            dist.barrier()

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        """Rank 0's `t` on every rank (in place)."""
        if self.size > 1:
            dist.broadcast(t, src=0)
        return t


ONE = World()  # a single process


def on_main(world: World, fn: Callable[[], T]) -> T:
    """fn() run on rank 0 only, its result (or its NinlabError) handed to every rank: decisions
    about files, which only rank 0 may touch, that the other ranks must follow."""
    result: list = [None, None]
    if world.main:
        try:
            result = [fn(), None]
        except NinlabError as e:
            result = [None, str(e)]
    if world.size > 1:
        dist.broadcast_object_list(result, src=0)
    if result[1] is not None:
        raise NinlabError(result[1])
    return result[0]


def env_world() -> World:
    """The world torchrun describes in the environment (one process when it says nothing)."""
    try:
        return World(
            int(os.environ.get("RANK", 0)),
            int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
        )
    except ValueError:
        raise NinlabError(
            "RANK, LOCAL_RANK, WORLD_SIZE and LOCAL_WORLD_SIZE must be whole numbers."
        ) from None


def current_world() -> World:
    """The initialised process group's world, else one process."""
    if dist.is_available() and dist.is_initialized():
        env = env_world()
        return World(dist.get_rank(), env.local_rank, dist.get_world_size(), env.local_size)
    return World()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bf16 natively: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX instructions (elsewhere bf16 is emulated, and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def precision_for(precision: str, device: torch.device) -> str:
    """What `--precision` means on a device: "auto" is bf16 where the device has it natively
    (bench/time_to_accuracy.py: 1.5x the images/s of fp32 on an AVX512-BF16 CPU), else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `--precision` on a device; None is plain fp32."""
    precision = precision_for(precision, device)
    if precision == "fp16" and device.type != "cuda":
        raise NinlabError(
            "--precision fp16 needs a CUDA GPU (fp16 training relies on CUDA's kernels and "
            "gradient scaler); use bf16 or fp32 on the CPU."
        )
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(precision: str, device: torch.device, training: bool = True):
    """The autocast context of a run's precision. Evaluation on the CPU is always fp32 (a run
    trained in bf16 on a GPU is evaluated exactly on a CPU-only machine)."""
    dtype = amp_dtype(precision, device) if training or device.type == "cuda" else None
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def device_for(name: str, world: World) -> torch.device:
    """The device this rank trains on: "auto" is CUDA when present, and rank r of a machine
    takes GPU r (LOCAL_RANK). NCCL refuses two processes on one GPU, so a machine needs a GPU
    per process."""
    cuda = torch.cuda.is_available()
    if name.startswith("cuda") and not cuda:
        raise NinlabError(
            f"--device {name} was asked for but this machine has no usable CUDA GPU; "
            "use --device cpu (or auto)."
        )
    if name == "cpu" or (name == "auto" and not cuda):
        return torch.device("cpu")
    if name in ("auto", "cuda"):
        gpus, procs = torch.cuda.device_count(), max(world.local_size, world.local_rank + 1)
        if procs > gpus:
            raise NinlabError(
                f"{procs} processes on this machine need a CUDA GPU each but it has {gpus}; "
                f"pass --nproc {gpus} (torchrun: --nproc-per-node {gpus}) or --device cpu."
            )
        return torch.device("cuda", world.local_rank)
    return torch.device(name)


@contextlib.contextmanager
def process_group(device: torch.device, timeout_s: float):
    """Join the process group that torchrun's environment describes (nothing to do for one
    process, or when the caller has joined one already) and leave it at the end. A collective
    that waits longer than `timeout_s` for another rank fails instead of hanging."""
    world = env_world()
    _die_with_launcher(world)
    if world.size <= 1 or dist.is_initialized():
        yield current_world()
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as e:
        raise NinlabError(
            f"rank {world.rank} could not join the run of {world.size} processes "
            f"({str(e).splitlines()[0]}); check --rdzv-endpoint and that every machine runs "
            "the same command."
        ) from None
    try:
        yield current_world()
        dist.barrier()  # nobody leaves while another still talks to it (gloo aborts on that)
    finally:
        with contextlib.suppress(Exception):  # a peer may be gone already
            dist.destroy_process_group()


def _die_with_launcher(world: World) -> None:
    """Make this worker stop as SIGTERM stops it (in `fit`: a checkpoint at the next sync point,
    then exit; before, at once) when the launcher that started it ends, however it ended: one
    killed by SIGKILL passes no signal on, and its workers would train on unseen to the end.

    Linux sends the signal itself (prctl PR_SET_PDEATHSIG). It fires when the parent *thread*
    ends; torch's elastic agent starts its workers from the thread that runs it (`ninlab train
    --nproc`: the main thread; torchrun: its main thread), which waits for them. Elsewhere a
    daemon thread polls the parent's process id. A launcher that died before this ran shows as a
    parent other than NINLAB_LAUNCHER_PID, which launch_local sets (an external torchrun does not
    say its id: there the parent now is taken as the launcher)."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return  # not started by torch's elastic agent: no launcher to outlive
    named = os.environ.get(LAUNCHER, "")
    launcher = int(named) if named.isdigit() else os.getppid()
    if not _parent_death_signal(signal.SIGTERM):
        threading.Thread(target=_watch_parent, args=(launcher,), daemon=True).start()
    if os.getppid() != launcher:  # checked after arming: no moment goes unwatched
        raise NinlabError(
            f"process {world.rank} of {world.size} found its launcher (process {launcher}) "
            "gone before training began; nothing was trained, so run the command again."
        )


def _parent_death_signal(sig: signal.Signals) -> bool:
    """Ask Linux to send `sig` to this process when its parent ends; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no prctl in this C library
        return False


def _watch_parent(launcher: int, every_s: float = 0.5) -> None:
    """SIGTERM this process once its parent is no longer `launcher` (an orphan is adopted by
    init or a subreaper, so its parent id changes)."""
    while os.getppid() == launcher:
        time.sleep(every_s)
    os.kill(os.getpid(), signal.SIGTERM)


def launch_local(nproc: int, argv: list[str]) -> int:
    """Run `ninlab train ARGV` as `nproc` processes on this machine: what `torchrun --standalone
    --nproc-per-node N -m ninlab train ARGV` does, with torch's own elastic agent, run here so
    that its failures end in one sentence. Returns the exit status: 0, that of the first process
    that failed, or 128 + the signal that stopped the job (the workers checkpoint and say how to
    resume)."""
    if nproc < 1:
        raise NinlabError(f"--nproc must be at least 1 (got {nproc}).")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
    )
    chosen = os.environ.get("OMP_NUM_THREADS")  # torchrun's rule: the cores shared out
    os.environ["OMP_NUM_THREADS"] = chosen or str(max(1, (os.cpu_count() or 1) // nproc))
    outer = os.environ.get(LAUNCHER)
    os.environ[LAUNCHER] = str(os.getpid())  # the workers stop when this process ends
    quiet = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
             if n.startswith("torch.distributed.elastic")]  # fmt: skip
    levels = [q.level for q in quiet]
    for q in quiet:  # the agent's own log: what it says, the processes say better
        q.setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)("-m", "ninlab", "train", *argv)
        return 0
    except SignalException as e:
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode > 0:
            return failure.exitcode  # the process said why itself
        try:
            name = signal.Signals(-failure.exitcode).name
        except ValueError:
            name = f"exit status {failure.exitcode}"
        raise LostProcess(
            f"process {rank} of {nproc} was killed ({name}) and the others stopped; "
            "the run directory keeps its last checkpoint."
        ) from None
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
        if chosen is None:
            del os.environ["OMP_NUM_THREADS"]
        if outer is None:
            del os.environ[LAUNCHER]
        else:
            os.environ[LAUNCHER] = outer
