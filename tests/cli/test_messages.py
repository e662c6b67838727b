"""What a person sees when things go wrong outside the training loop: workers that outlive a
killed launcher, lock files that are not locks, a model whose forward raises, curves of absurd
numbers. Each message is one sentence that says what is true."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from torch import nn

from ninlab.analysis import summary
from ninlab.cli import main
from ninlab.errors import NinlabError
from ninlab.lock import LOCK, DirLock, NotALock
from ninlab.train import curve_figure, curves_figure
from ninlab.train.curves import PANELS

from ..conftest import make_idx_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_idx_dataset(root / "fashion-mnist", n_train=600, n_test=40)
    return root


def _env(tmp_path, **extra):
    """One thread per process and no GPU (gloo on the CPU), as in test_distributed."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "CUDA_VISIBLE_DEVICES": "", **extra}  # fmt: skip


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---- workers die with their launcher ----


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_workers_stop_within_seconds_of_a_sigkilled_launcher(tmp_path, data_dir):
    """kill -9 of `ninlab train --nproc 2`: its two workers checkpoint, free the lock and exit."""
    out = tmp_path / "run"
    with open(tmp_path / "stdout", "w") as so, open(tmp_path / "stderr", "w") as se:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "ninlab", "train", "--nproc", "2", "--epochs", "200",
             "--limit-train", "600", "--data-dir", str(data_dir), "--out", str(out),
             "--no-progress"], stdout=so, stderr=se, env=_env(tmp_path),
        )  # fmt: skip
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while not (out / "metrics.jsonl").exists():  # both are training
            assert launcher.poll() is None and time.monotonic() < deadline, "never trained"
            time.sleep(0.1)
        workers = _children(launcher.pid)
        assert len(workers) == 2
        launcher.kill()
        launcher.wait()
        killed = time.monotonic()
        while any(_running(w) for w in workers) and time.monotonic() - killed < 15:
            time.sleep(0.05)
        took = time.monotonic() - killed
        assert not any(_running(w) for w in workers), f"workers still run {took:.0f} s after"
        print(f"workers gone {took:.2f} s after the launcher's SIGKILL")
        assert took < 10
        said = (tmp_path / "stdout").read_text()
        assert "received SIGTERM" in said and f"Resume with: ninlab train --resume {out}" in said
        assert (out / "checkpoint.pt").is_file() and not (out / LOCK).exists()
    finally:
        workers = workers or _children(launcher.pid)
        for pid in [launcher.pid, *workers]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        launcher.wait()


@pytest.mark.slow
def test_a_worker_whose_launcher_died_before_it_began_refuses(tmp_path, data_dir):
    """The launcher named in the environment is not this worker's parent any more."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)  # fmt: skip
    pid = int(dead.stdout)
    env = _env(tmp_path, RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
               TORCHELASTIC_RUN_ID="orphan", NINLAB_LAUNCHER_PID=str(pid))  # fmt: skip
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "ninlab", "train", "--data-dir", str(data_dir),
                        "--out", str(out)], capture_output=True, text=True, env=env,
                       timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr == (
        f"ninlab: error: process 0 of 2 found its launcher (process {pid}) gone before training "
        "began; nothing was trained, so run the command again.\n"
    )
    assert not out.exists()  # the folder made for it is removed again


# ---- lock files that are not locks ----


def _dead_owner_lock() -> str:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)  # fmt: skip
    return json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "started": None,
                       "since": "then", "command": "x"})  # fmt: skip


@pytest.mark.parametrize("kind", ["dangling link", "link to a lock", "folder", "named pipe"])
def test_a_lock_that_is_not_a_file_is_refused_at_once_and_left_alone(tmp_path, kind):
    lock = DirLock(tmp_path / "run")
    lock.folder.mkdir()
    target = tmp_path / "elsewhere.lock"
    if kind == "dangling link":
        lock.path.symlink_to(tmp_path / "missing")
    elif kind == "link to a lock":  # the stale lock of a dead process, followed before
        target.write_text(_dead_owner_lock())
        lock.path.symlink_to(target)
    elif kind == "folder":
        lock.path.mkdir()
    else:
        os.mkfifo(lock.path)  # reading it would block forever
    said = {"folder": "a folder", "named pipe": "a named pipe"}.get(kind, "a symbolic link")
    t0 = time.monotonic()
    with pytest.raises(NotALock) as e:
        lock.acquire()
    assert time.monotonic() - t0 < 1
    assert str(e.value) == (
        f"{lock.path} is {said}, not a ninlab lock; delete it if nothing trains in {lock.folder}."
    )
    assert os.path.lexists(lock.path) and (kind != "link to a lock" or target.is_file())


def test_a_dangling_lock_link_is_one_sentence_from_train(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).symlink_to(tmp_path / "gone")
    assert main(["train", "--data-dir", str(data_dir), "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ninlab: error: {out / LOCK} is a symbolic link, not a ninlab lock; delete it if "
        f"nothing trains in {out}.\n"
    )


@pytest.mark.slow
def test_an_unreadable_lock_with_a_future_time_is_taken_over_after_two_seconds(tmp_path):
    """An empty lock (a crash between creating and filling it) dated in the future: waited for
    as a rival's, then taken over, not "keeps changing hands"."""
    lock = DirLock(tmp_path)
    lock.path.write_text("")
    future = time.time() + 3600
    os.utime(lock.path, (future, future))
    t0 = time.monotonic()
    with lock:
        assert lock.took_over.pid == 0
    assert 1.9 < time.monotonic() - t0 < 5


# ---- a model whose forward raises ----


class Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        self.conv(x)
        raise ValueError("boom")


class Branchy(nn.Module):
    """Runs, but data-dependent control flow: a true limit of torch.fx."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return self.conv(x) if x.sum() >= 0 else x


class LateBoom(nn.Module):
    """Traced fine; the function it calls raises when it runs."""

    def forward(self, x):
        return nn.functional.interpolate(x, size=(4, 4), scale_factor=2.0)


def test_a_forward_that_raises_is_named_not_blamed_on_tracing(tmp_path, capsys):
    model_file = tmp_path / "nets.py"
    model_file.write_text(
        "from torch import nn\n\n\nclass Boom(nn.Module):\n    def forward(self, x):\n"
        "        raise ValueError('boom')\n\n\ndef boom():\n    return Boom()\n"
    )
    assert main(["summary", f"{model_file}:boom", "--input", "1x28x28"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch.fx" not in err
    assert "forward raised ValueError: boom (on an input of size 1x28x28)" in err
    with pytest.raises(NinlabError) as e:
        summary(Boom(), (1, 28, 28))
    assert str(e.value) == (
        "Boom's forward raised ValueError: boom (on an input of size 1x28x28); fix the model, "
        "or pass the input size it expects."
    )
    with pytest.raises(NinlabError, match="forward raised ValueError: only one of size or scale"):
        summary(LateBoom(), (1, 28, 28))
    with pytest.raises(NinlabError, match="cannot be traced by torch.fx"):
        summary(Branchy(), (1, 28, 28))


# ---- curves of absurd numbers ----


def _history(train_loss: float, test_loss: float) -> list[dict]:
    rows = [
        dict(epoch=e, train_loss=2.3 / e, test_loss=2.2 / e, train_acc=0.1 * e, test_acc=0.09 * e,
             lr=0.1 / e, images_per_s=1000.0)
        for e in range(1, 6)
    ]  # fmt: skip
    rows[2].update(train_loss=train_loss, test_loss=test_loss)
    return rows


@pytest.mark.parametrize("huge", [1e30, 1e308])
def test_curves_of_huge_losses_draw_quickly_and_to_scale(huge):
    t0 = time.monotonic()
    fig = curves_figure(_history(huge, -huge))
    fig.canvas.draw()  # everything matplotlib computes for a PNG
    for panel in PANELS:  # the report's panels
        curve_figure(panel, _history(huge, -huge)).canvas.draw()
    assert time.monotonic() - t0 < 5
    loss = fig.axes[0]
    assert "2 values off the scale" in loss.get_title()
    bottom, top = loss.get_ylim()
    assert -1 < bottom and top < 3  # the other epochs' losses (0.44 to 2.3) fill the panel
    assert "off the scale" not in fig.axes[1].get_title()  # the accuracy panel is untouched
