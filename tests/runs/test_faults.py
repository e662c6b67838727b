"""Nothing lost: kills at chosen moments, the run-directory lock, full disks (the fast subset of
bench/faults.py)."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ninlab import files
from ninlab.cli import main
from ninlab.errors import NinlabError
from ninlab.lock import LOCK, DirLock, Locked
from ninlab.runs import check_run, load_run, read_metrics, resume_run, train_run
from ninlab.train import resolve

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
import faults as bench  # noqa: E402  (bench/faults.py)


@pytest.fixture(scope="module")
def setup(data_dir, tmp_path_factory):
    """The tiny run every kill test repeats, and its uninterrupted reference."""
    s = bench.make_setup(str(data_dir), limit=300, batch=50, epochs=2, threads=1)
    ref = tmp_path_factory.mktemp("reference") / "run"
    bench.reference(s, ref)
    return s, ref


@pytest.mark.parametrize(
    "moment", ["step:9", "eval:1", "write:checkpoint.pt:2", "write:config.json:2"]
)
@pytest.mark.slow
def test_a_kill_leaves_loadable_files_and_resume_is_bit_identical(setup, moment, tmp_path):
    s, ref = setup
    trial = bench.kill_and_resume(s, moment, tmp_path / "run", ref)
    assert trial.killed, trial
    assert all(v in ("ok", "leftover", "stale") for v in trial.files.values()), trial.files
    assert trial.files.get("train.lock") == "stale"  # kill -9 leaves the lock: resume clears it
    if moment.startswith("write:"):  # the new content was written, never renamed over the old
        assert any(v == "leftover" for v in trial.files.values()), trial.files
    assert trial.resumed.startswith("exit 0"), trial.resumed
    assert trial.identical
    assert set(trial.after.values()) == {"ok"}, trial.after  # no leftovers, no lock


@pytest.mark.slow
def test_a_kill_before_the_config_is_written_leaves_one_sentence(setup, tmp_path, capsys):
    s, _ = setup
    out = tmp_path / "run"
    done = subprocess.run(s.killed_at("write:config.json:1", out), capture_output=True)
    assert done.returncode == -9
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"start it with `ninlab train --out {out}`" in err


def test_a_live_lock_refuses_train_and_resume(tmp_path, data_dir, capsys):
    out = tmp_path / "busy"
    with DirLock(out):  # held by this (live) process, as by a run in training
        argv = ["train", "--data-dir", str(data_dir), "--epochs", "1", "--out", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"ninlab: error: {out} is in use by process {os.getpid()}")
        assert err.endswith("wait for it to finish, or pass another --out.") and "\n" not in err
        assert main(["train", "--resume", str(out)]) == 2
        assert "wait for it to finish or stop it before resuming" in capsys.readouterr().err
    assert not (out / LOCK).exists()


def test_a_lock_whose_process_is_gone_is_stale(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)  # fmt: skip
    pid = int(dead.stdout)
    tmp_path.mkdir(exist_ok=True)
    lock = DirLock(tmp_path)
    lock.path.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "started": None,
                                     "since": "then", "command": "x"}))  # fmt: skip
    assert lock.owner().alive() is False
    with lock:
        assert lock.took_over.pid == pid and json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_a_recycled_process_id_does_not_keep_a_lock(tmp_path):
    """The id of a live process (ours) with another start time: the owner is dead."""
    lock = DirLock(tmp_path)
    lock.path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                     "started": -1.0, "since": "then"}))  # fmt: skip
    assert lock.owner().alive() is False
    lock.acquire().release()


def test_a_lock_from_another_host_is_respected_and_says_how_to_clear_it(tmp_path):
    lock = DirLock(tmp_path)
    lock.path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": "then"}))
    with pytest.raises(Locked, match=f"delete {lock.path}"):
        lock.acquire()


def test_two_lockers_at_once_one_wins(tmp_path):
    a, b = DirLock(tmp_path), DirLock(tmp_path)
    a.acquire()
    with pytest.raises(Locked):
        b.acquire()
    a.release()
    b.acquire().release()


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = files.write_text(tmp_path / "metrics.jsonl", "old\n")

    def full(tmp):
        Path(tmp).write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(files.CannotWrite, match="no space left on device; the previous"):
        files.atomic_write(path, full)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_torch_save_on_a_full_disk_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_full", lambda folder: True)

    def broken(tmp):  # what torch.save raises when the disk fills under it
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    with pytest.raises(files.CannotWrite, match="cannot write .*checkpoint.pt: no space left"):
        files.atomic_write(tmp_path / "checkpoint.pt", broken)


@pytest.mark.slow
def test_a_full_disk_in_training_keeps_the_last_epoch_and_says_how_to_resume(
    tmp_path, data_dir, monkeypatch
):
    cfg = resolve("fast", data_dir=str(data_dir), epochs=3, limit_train=300, batch_size=50,
                  threads=1)  # fmt: skip
    out = tmp_path / "run"

    def fills_up_in_epoch_2(path):  # as the new checkpoint has been written, before its rename
        # an epoch's files are renamed together: while epoch 2's are written, epoch 1 is committed
        if path.name == "checkpoint.pt" and len(read_metrics(out)) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "on_written", [fills_up_in_epoch_2])
    with pytest.raises(
        NinlabError, match="the run keeps its checkpoint of epoch 1, so free some space and resume"
    ) as e:
        train_run(cfg, out, progress=False, log=None)
    assert "\n" not in str(e.value)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and not (out / LOCK).exists()
    assert set(check_run(out).values()) == {"ok"}
    monkeypatch.setattr(files, "on_written", [])
    history, _ = resume_run(out, progress=False, log=None)
    assert len(history) == 3


def test_out_that_is_a_file_is_one_sentence(tmp_path, data_dir, capsys):
    f = tmp_path / "afile"
    f.write_text("mine")
    assert main(["train", "--data-dir", str(data_dir), "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert f.read_text() == "mine"


def test_onnx_export_without_its_packages_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    from ninlab.convert import export_onnx
    from ninlab.models import create_model

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name.startswith("onnx") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(NinlabError, match=r'pip install -e "\.\[onnx\]"'):
        export_onnx(create_model("nin_fast"), tmp_path / "m.onnx", (1, 28, 28))
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_a_reader_of_a_run_in_training_sees_whole_files(tmp_path, setup):
    s, _ = setup
    out = tmp_path / "run"
    longer = [*s.args[: s.args.index("--epochs")], "--epochs", "50",
              *s.args[s.args.index("--epochs") + 2 :]]  # fmt: skip
    cmd = [sys.executable, "-m", "ninlab", "train", *longer, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = set()
    try:
        deadline = time.time() + 60
        while len(seen) < 3 and time.time() < deadline:  # three epochs read while written
            found = check_run(out)
            assert all(v in ("ok", "leftover") for v in found.values()), found
            if found.get("final.safetensors") == "ok":
                run = load_run(out, "final")
                seen.add(len(read_metrics(out)))
                assert run.config.epochs == 50
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert len(seen) >= 3


def test_a_data_cache_that_cannot_be_written_costs_time_not_the_run(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
    import shapes

    from ninlab.data import folders, load_folder

    root = shapes.write_folder(tmp_path / "f", per_class=6)
    calls = []

    def full(path, write):  # every cache file meets a full disk
        calls.append(Path(path).name)
        raise files.CannotWrite(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(folders, "atomic_write", full)
    data = load_folder(root)
    assert len(data.train_images) + len(data.test_images) == 18 and calls
    assert "safetensors" in " ".join(calls)  # the decoded tensor was to be cached: it was not
    assert not list(folders.cache_root().rglob("*.safetensors"))
