"""Nothing lost: kill -9 at random moments, two runs at one directory, and hostile input.

    python bench/faults.py                  # 10 kills, the lock, a full disk, 5,000 fuzzed inputs
    python bench/faults.py --kills 3 --fuzz 500

1. Kills. A reference run trains nin_fast on Fashion-MNIST (1,200 images, batch 64, 3 epochs,
   2 threads) uninterrupted. Then the same command is started 10 more times, each killed by
   SIGKILL at a moment drawn at random from seven kinds in turn (KINDS): inside a training step
   (after the backward pass), as an evaluation starts, while the checkpoint, the weights, the
   metrics, or the curves or config are being written (the new content on disk, not yet
   renamed), these by the run itself (bench/_kill_at.py: a training callback and a write hook),
   or by `kill -9` from outside after a random share of the reference's wall time. After each
   kill every file of the run directory must load (`ninlab.runs.check_run`; temporary files
   left by the killed writer are counted), then `ninlab train --resume` must clear the stale
   lock and the leftovers and finish with final weights bit-identical to the reference's.
   Printed: "k/10 resumed bit-identical".
2. The lock. While one `ninlab train --out D` runs, a second one and a `--resume D` must exit
   with status 2 and one sentence, and `ninlab eval D` must read the run being written.
3. A full disk (root only: a tmpfs with room for one epoch of the run's files): training that
   fills it, a report and an ONNX export onto it must each end in one sentence with the run's
   files whole; a folder of images whose cache cannot be written there must train all the same.
4. Fuzzing: bench/fuzz.py's mutated IDX, CIFAR, image, safetensors, config, metrics and
   checkpoint inputs. Printed: "N inputs tried, T ended in a traceback" (goal 0).
Exit status 1 when any of them falls short. No timing goal here: R and the wall time are
printed so that the run can be placed.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from machine import describe, matmul_rate
from safetensors.torch import load_file

from ninlab.lock import LOCK
from ninlab.runs import CHECKPOINT, WEIGHTS, check_run, read_checkpoint, read_metrics

WRITES = ("checkpoint.pt", "final.safetensors", "best.safetensors", "metrics.jsonl",
          "metrics.csv", "curves.png", "config.json")  # fmt: skip
PER_EPOCH = {"checkpoint.pt", "final.safetensors", "metrics.jsonl", "metrics.csv", "curves.png"}
KILL_AT = Path(__file__).with_name("_kill_at.py")


@dataclass
class Setup:
    """The training command that every trial runs, and what its reference run did."""

    args: list[str]  # after `ninlab train`, without --out
    epochs: int
    steps: int  # optimizer steps per epoch
    wall: float = 0.0  # seconds of the reference run
    best_writes: int = 0  # epochs that improved the best test accuracy

    def command(self, out: Path) -> list[str]:
        return [sys.executable, "-m", "ninlab", "train", *self.args, "--out", str(out)]

    def killed_at(self, moment: str, out: Path) -> list[str]:
        """The command as a run that kills itself at `moment`, "POINT:N" (bench/_kill_at.py)."""
        return [sys.executable, str(KILL_AT), moment, *self.args, "--out", str(out)]

    def count(self, point: str) -> int:
        """How often the reference run passed `point`."""
        name = point.removeprefix("write:")
        if point == "step":
            return self.epochs * self.steps
        if point == "eval" or name in PER_EPOCH:
            return self.epochs
        return self.best_writes if name == "best.safetensors" else 2  # config.json


def first(point: str) -> int:
    """The first visit of `point` that a kill may hit. config.json is written twice: as asked
    for (before the data is read) and as resolved. A kill during the first write leaves nothing
    to resume from (`--resume` says so), the same command starts the run again; a kill during
    the second leaves the request, from which --resume starts over."""
    return 2 if point == "write:config.json" else 1


@dataclass
class Trial:
    moment: str
    killed: bool
    files: dict[str, str]  # check_run after the kill
    resumed: str  # what --resume said (its last line)
    identical: bool
    after: dict[str, str]  # check_run after the resume

    @property
    def ok(self) -> bool:
        loads = all(v in ("ok", "leftover", "stale") for v in self.files.values())
        clean = all(v == "ok" for v in self.after.values()) and LOCK not in self.after
        return self.killed and loads and clean and self.identical


def reference(setup: Setup, out: Path) -> None:
    t = time.perf_counter()
    done = subprocess.run(setup.command(out), capture_output=True, text=True)
    setup.wall = time.perf_counter() - t
    if done.returncode:
        sys.exit(f"the reference run failed:\n{done.stderr}")
    accs, best = [r["test_acc"] for r in read_metrics(out)], -1.0
    for a in accs:
        setup.best_writes += a > best
        best = max(best, a)


# the moments a kill may hit, by kind; each kind is drawn in turn, then again
KINDS = {
    "step": ["step"],
    "eval": ["eval"],
    "checkpoint": ["write:checkpoint.pt"],
    "weights": ["write:final.safetensors", "write:best.safetensors"],
    "metrics": ["write:metrics.jsonl", "write:metrics.csv"],
    "time": ["time"],
    "curves or config": ["write:curves.png", "write:config.json"],
}


def draw_moments(setup: Setup, kills: int, rng: random.Random) -> list[str]:
    """`kills` moments, one of each kind in turn (a random point of it, at a random visit)."""
    kinds, moments = list(KINDS.values()), []
    for i in range(kills):
        point = rng.choice(kinds[i % len(kinds)])
        if point == "time":
            moments.append(f"time:{rng.uniform(0.2, 0.9) * setup.wall:.2f}")
        else:
            moments.append(f"{point}:{rng.randint(first(point), setup.count(point))}")
    return moments


def kill_and_resume(setup: Setup, moment: str, out: Path, ref: Path) -> Trial:
    """Start the run, kill it at `moment`, check its files, resume it, compare with `ref`."""
    timed = moment.startswith("time:")
    command = setup.command(out) if timed else setup.killed_at(moment, out)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if timed:
        try:
            proc.wait(timeout=float(moment[5:]))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed = proc.returncode == -signal.SIGKILL
    files = check_run(out)
    files.update({LOCK: "stale"} if (out / LOCK).exists() else {})
    ckpt_done = (
        files.get(CHECKPOINT) == "ok" and read_checkpoint(out)["epoch"] == setup.epochs
    )  # killed between its last write and its exit
    if ckpt_done:
        resumed = "nothing to resume: the run had finished"
    else:
        resume = [sys.executable, "-m", "ninlab", "train", "--resume", str(out), "--no-progress"]
        done = subprocess.run(resume, capture_output=True, text=True)
        lines = (done.stdout + done.stderr).strip().splitlines() or [""]
        said = next((s for s in lines if s.startswith("resuming") or "first checkpoint" in s),
                    lines[-1])  # fmt: skip
        resumed = f"exit {done.returncode} ({said.replace(str(out), 'D')[:70]})"
    identical = same_weights(out / WEIGHTS["final"], ref / WEIGHTS["final"])
    return Trial(moment, killed, files, resumed, identical, check_run(out) | _lock_of(out))


def _lock_of(out: Path) -> dict[str, str]:
    return {LOCK: "left behind"} if (out / LOCK).exists() else {}


def same_weights(a: Path, b: Path) -> bool:
    if not (a.is_file() and b.is_file()):
        return False
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def concurrency(setup: Setup, out: Path) -> list[tuple[str, bool, str]]:
    """(what, as expected, what it said) for a second train, a resume and a reader, all while
    a run trains into `out`."""
    longer = [*setup.args[: setup.args.index("--epochs")], "--epochs", "20",
              *setup.args[setup.args.index("--epochs") + 2 :]]  # fmt: skip
    cmd = [sys.executable, "-m", "ninlab", "train", *longer, "--out", str(out)]
    busy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / WEIGHTS["final"]).exists() and time.time() < deadline:
        time.sleep(0.2)
    results = []
    for what, argv in (
        ("a second train --out D", ["train", *longer, "--out", str(out)]),
        ("train --resume D", ["train", "--resume", str(out)]),
        ("eval D (a reader)", ["eval", str(out), *_data_args(setup)]),
    ):
        done = subprocess.run([sys.executable, "-m", "ninlab", *argv], capture_output=True,
                              text=True)  # fmt: skip
        err = done.stderr.strip().splitlines()
        if what.startswith("eval"):
            good = done.returncode == 0 and "accuracy" in done.stdout
            said = next((s for s in done.stdout.splitlines() if "accuracy" in s), done.stderr)
        else:
            good = done.returncode == 2 and len(err) == 1 and "Traceback" not in done.stderr
            said = err[-1] if err else ""
        results.append((what, good, said))
    busy.send_signal(signal.SIGTERM)  # a clean stop: checkpoint, lock released
    busy.wait(timeout=120)
    released = not (out / LOCK).exists()
    results.append(("the lock after the first run stopped", released,
                    "released" if released else "still there"))  # fmt: skip
    return results


def full_disk(setup: Setup, ref: Path, root: Path) -> list[tuple[str, bool, str]] | None:
    """(what, as expected, what it said) for writes to a tmpfs with room for one epoch of the
    reference run's files and little more; None unless this process may mount one (root)."""
    mnt = root / "full"
    mnt.mkdir()
    room = sum(f.stat().st_size for f in ref.iterdir()) + 96 * 1024
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room}", "tmpfs", str(mnt)],
                             capture_output=True)  # fmt: skip
    if os.geteuid() != 0 or mounted.returncode:
        return None
    results = []
    try:
        run = mnt / "run"
        cases = (
            ("train into a disk that fills in epoch 2", setup.command(run)[3:]),
            ("report onto the full disk", ["report", str(ref), "--out", str(mnt / "r.html")]),
            ("export onto the full disk", ["export", str(ref), "--out", str(mnt / "m.onnx")]),
        )
        for what, argv in cases:
            done = subprocess.run([sys.executable, "-m", "ninlab", *argv, *_data_args(setup)],
                                  capture_output=True, text=True)  # fmt: skip
            err = done.stderr.strip().splitlines()
            intact = set(check_run(run).values()) == {"ok"} and _epoch(run) == 1
            good = done.returncode == 2 and len(err) == 1 and intact
            results.append((what, good, err[-1] if err else f"exit {done.returncode}"))
        # a folder of images whose decoded cache lands on the full disk: trained all the same
        sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
        from shapes import write_folder

        folder = write_folder(root / "shapes", per_class=40)
        argv = ["train", "--data", str(folder), "--epochs", "1", "--batch-size", "8",
                "--no-progress", "--out", str(root / "shapes-run")]  # fmt: skip
        env = dict(os.environ, XDG_CACHE_HOME=str(mnt / "cache"))
        done = subprocess.run([sys.executable, "-m", "ninlab", *argv], env=env, text=True,
                              capture_output=True)  # fmt: skip
        cached = list((mnt / "cache").rglob("*.safetensors"))
        good = done.returncode == 0 and not cached
        said = f"exit {done.returncode}, {len(cached)} cache files" + (
            "" if good else f": {done.stderr.strip()[-200:]}"
        )
        results.append(("train on a folder, its cache on the full disk", good, said))
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    return results


def _epoch(run: Path) -> int:
    return read_checkpoint(run)["epoch"]


def _data_args(setup: Setup) -> list[str]:
    i = setup.args.index("--data-dir") if "--data-dir" in setup.args else None
    return [] if i is None else setup.args[i : i + 2]


def make_setup(data_dir: str | None, limit: int, batch: int, epochs: int, threads: int) -> Setup:
    args = ["--epochs", str(epochs), "--limit-train", str(limit), "--batch-size", str(batch),
            "--threads", str(threads), "--no-progress"]  # fmt: skip
    if data_dir:
        args += ["--data-dir", data_dir]
    return Setup(args, epochs, -(-limit // batch))


def run_kills(setup: Setup, kills: int, seed: int, root: Path, log=print) -> list[Trial]:
    reference(setup, root / "reference")
    log(f"reference run: {setup.wall:.1f} s, {setup.epochs} epochs of {setup.steps} steps")
    trials = []
    for i, moment in enumerate(draw_moments(setup, kills, random.Random(seed))):
        t = kill_and_resume(setup, moment, root / f"kill{i}", root / "reference")
        trials.append(t)
        bad = [f"{k} {v}" for k, v in t.files.items() if v not in ("ok", "leftover", "stale")]
        left = sum(v == "leftover" for v in t.files.values())
        state = ", ".join(bad) or "files whole" + (f" + {left} .tmp" if left else "")
        state += ", lock stale" if t.files.get(LOCK) == "stale" else ""
        log(f"{i + 1:2d}. {t.moment:<26} {'killed' if t.killed else 'NOT KILLED'}: {state}; "
            f"resume {t.resumed}; final weights "
            f"{'bit-identical' if t.identical else 'DIFFER'}")  # fmt: skip
    return trials


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kills", type=int, default=10, help="kill moments (default 10)")
    p.add_argument("--fuzz", type=int, default=5000, help="fuzzed inputs (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="where Fashion-MNIST is (default: ninlab's search)")
    a = p.parse_args()
    print(describe(matmul_rate()))
    t0 = time.perf_counter()
    setup = make_setup(a.data_dir, limit=1200, batch=64, epochs=3, threads=2)
    with tempfile.TemporaryDirectory(prefix="ninlab-faults-") as root:
        print(f"\n1. kill -9 at {a.kills} random moments: ninlab train {' '.join(setup.args)}")
        trials = run_kills(setup, a.kills, a.seed, Path(root))
        good = sum(t.ok for t in trials)
        print(f"{good}/{len(trials)} resumed bit-identical")
        print("\n2. the lock, while `ninlab train --out D` runs")
        locks = concurrency(setup, Path(root) / "busy")
        for what, ok, said in locks:
            print(f"   {what:<46} {'as expected' if ok else 'WRONG'}: {said}")
        print("\n3. a full disk (a tmpfs with room for one epoch of the run's files)")
        disk = full_disk(setup, Path(root) / "reference", Path(root))
        for what, ok, said in disk or [("", True, "skipped: mounting a tmpfs needs root")]:
            print(f"   {what:<46} {'as expected' if ok else 'WRONG'}: {said}")
    result = {"tracebacks": 0}
    if a.fuzz:
        print(f"\n4. fuzzing ({a.fuzz:,} inputs)")
        from fuzz import fuzz

        result = fuzz(a.fuzz, seed=a.seed)
        print(f"{result['tried']:,} inputs tried, {result['tracebacks']} ended in a traceback")
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    wrong = [w for w, ok, _ in locks + (disk or []) if not ok]
    failed = good < len(trials) or wrong or result["tracebacks"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
