"""Several processes on the CPU (gloo): the same steps as one process, one run directory, a
killed rank, two "machines" on localhost; and the device-independent parts of the GPU path."""

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

from ninlab.cli import main
from ninlab.data import load_dataset
from ninlab.errors import NinlabError
from ninlab.models import create_model
from ninlab.train import World, fit, precision_for, prepare_config, resolve, to_input
from ninlab.train.loop import SYNC_EVERY

from ..conftest import make_idx_dataset, sigterm_after_first_epoch

WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """600 train / 40 test random 28x28 images in Fashion-MNIST's layout."""
    root = tmp_path_factory.mktemp("data")
    make_idx_dataset(root / "fashion-mnist", n_train=600, n_test=40)
    return root


def _env(tmp_path):
    """The workers' environment: one thread each and no GPU, so that they run gloo on the CPU
    on any machine (a GPU machine would give them NCCL, one GPU per process)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip


def _run(cmd, tmp_path, timeout=120):
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path), timeout=timeout)


def test_world_parts_cover_a_batch_once():
    for n, size in ((128, 2), (96, 4), (10, 3), (2, 4)):
        parts = [World(rank=r, size=size).part(n) for r in range(size)]
        assert [i for p in parts for i in range(n)[p]] == list(range(n))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_a_slice_of_a_batch_gets_the_augmentation_of_the_whole(data_dir):
    cfg = prepare_config(
        resolve("fast", data_dir=str(data_dir)), load_dataset("fashion-mnist", data_dir=data_dir)
    )
    images = load_dataset("fashion-mnist", data_dir=data_dir).train_images[:10]
    whole = to_input(images, cfg, torch.Generator().manual_seed(3))
    parts = [to_input(images, cfg, torch.Generator().manual_seed(3), World(r, r, 3).part(10))
             for r in range(3)]  # fmt: skip
    assert torch.equal(torch.cat(parts), whole)


@pytest.mark.slow
def test_two_processes_step_like_one(tmp_path, data_dir):
    """lenet_fc (no batch norm), global batch 100, 5 steps: 1 process vs 2 x 50 images."""
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    r = _run([sys.executable, str(WORKER), "equiv", str(data_dir), str(one)], tmp_path)
    assert r.returncode == 0, r.stderr
    r = _run([*TORCHRUN, "--standalone", "--nproc-per-node", "2", str(WORKER), "equiv",
              str(data_dir), str(two)], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    a, b = torch.load(one, weights_only=True), torch.load(two, weights_only=True)
    torch.manual_seed(0)
    start = create_model("lenet_fc").state_dict()
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 1e-3  # the steps did move them
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5


@pytest.mark.slow
def test_nproc_2_writes_one_run_that_eval_reads(tmp_path, data_dir, capsys):
    out = tmp_path / "ddp"
    r = _run([sys.executable, "-m", "ninlab", "train", "--nproc", "2", "--epochs", "1",
              "--limit-train", "600", "--data-dir", str(data_dir), "--out", str(out),
              "--no-progress"], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Epoch [1/1], Train Loss:") == 1 and "2 processes" in r.stdout
    assert "Traceback" not in r.stderr
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "curves.png", "checkpoint.pt",
                 "best.safetensors", "final.safetensors"):  # fmt: skip
        assert (out / name).is_file(), name
    assert main(["eval", str(out)]) == 0
    row = json.loads((out / "metrics.jsonl").read_text())
    assert f"accuracy {100 * row['test_acc']:.2f}%" in capsys.readouterr().out


@pytest.mark.slow
def test_every_rank_holds_the_same_evaluation(tmp_path, data_dir):
    r = _run([*TORCHRUN, "--standalone", "--nproc-per-node", "2", str(WORKER), "ranks",
              str(data_dir), str(tmp_path)], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")
    views = [json.loads((tmp_path / f"rank{k}.json").read_text())[-1] for k in (0, 1)]
    assert [{k: v[k] for k in keys} for v in views][0] == {k: views[1][k] for k in keys}
    saved = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert saved["test_acc"] == views[0]["test_acc"]


@pytest.mark.slow
def test_two_machines_on_localhost(tmp_path, data_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    cmd = [*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
           "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "ninlab-test", "-m", "ninlab",
           "train", "--epochs", "1", "--limit-train", "600", "--data-dir", str(data_dir), "--out",
           str(out), "--no-progress"]  # fmt: skip
    nodes = [subprocess.Popen([*cmd[:3], "--node-rank", str(k), *cmd[3:]], env=_env(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in (0, 1)]  # fmt: skip
    results = [n.communicate(timeout=120) for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], results
    assert sum(o.count("Epoch [1/1]") for o, _ in results) == 1
    assert "2 processes" in "".join(o for o, _ in results)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow
def test_a_killed_rank_stops_the_job_and_the_run_resumes(tmp_path, data_dir):
    """Rank 1 kills itself (SIGKILL) in epoch 2; rank 0 must stop within a bound, non-zero,
    with one sentence; the checkpoint of epoch 1 resumes, here as one process."""
    t0 = time.perf_counter()
    r = _run([*TORCHRUN, "--standalone", "--nproc-per-node", "2", str(WORKER), "die",
              str(data_dir), str(tmp_path)], tmp_path, timeout=180)  # fmt: skip
    took = time.perf_counter() - t0
    assert r.returncode != 0 and took < 60
    assert "process 0 of 2 lost contact with the others" in r.stderr
    assert f"Resume with: ninlab train --resume {tmp_path / 'run'}" in r.stderr
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"], ckpt["world_size"]) == (1, 0, 2)
    r = _run([sys.executable, "-m", "ninlab", "train", "--resume", str(tmp_path / "run"),
              "--no-progress"], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "resuming with 1 process where the run had 2" in r.stdout
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3


def test_a_survivor_ignores_the_launchers_sigterm_while_it_reports():
    """torchrun SIGTERMs the survivors of a lost rank: that must not cut their one sentence."""
    from ninlab.train.loop import _StopOnSignal

    before = signal.getsignal(signal.SIGTERM)
    try:
        for error, after in ((RuntimeError("Connection reset by peer"), signal.SIG_IGN),
                             (ValueError("not a lost peer"), before)):  # fmt: skip
            signal.signal(signal.SIGTERM, before)
            with pytest.raises(type(error)), _StopOnSignal(None, World(rank=0, size=2)):
                raise error
            assert signal.getsignal(signal.SIGTERM) == after
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.slow
def test_sigterm_to_nproc_job_checkpoints_once(tmp_path, data_dir):
    out = tmp_path / "run"
    rc, stdout, stderr = sigterm_after_first_epoch(
        [sys.executable, "-m", "ninlab", "train", "--nproc", "2", "--epochs", "50",
         "--limit-train", "600", "--data-dir", str(data_dir), "--out", str(out), "--no-progress"],
        out,
        _env(tmp_path),
    )  # fmt: skip
    assert rc == 128 + signal.SIGTERM, stderr
    assert stdout.count(f"Resume with: ninlab train --resume {out}") == 1
    assert "Traceback" not in stderr
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] >= 1 and ckpt["step"] % SYNC_EVERY == 0  # stopped at a sync point


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--nproc", "3"], "--batch-size 128 is the global batch and must split evenly over 3"),
        (["--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
        (["--nproc", "2", "--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
    ],
)
def test_bad_distributed_options_are_one_sentence(tmp_path, capsys, argv, message):
    out = tmp_path / "run"  # on the CPU, also where a GPU is (which takes fp16 and has 1 GPU)
    assert main(["train", "--device", "cpu", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ninlab: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_more_processes_than_gpus_is_one_sentence(tmp_path, capsys, monkeypatch):
    """NCCL refuses two ranks on one GPU ("Duplicate GPU detected", seen on an H200): refuse
    before starting them."""
    from ninlab.train.distributed import device_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert device_for("auto", World(rank=0, local_rank=0, size=2, local_size=1)).index == 0
    for world in (World(0, 0, 2, local_size=2), World(1, 1, 2)):  # LOCAL_WORLD_SIZE unset
        with pytest.raises(NinlabError, match="2 processes on this machine need a CUDA GPU each"):
            device_for("cuda", world)
    out = tmp_path / "run"
    assert main(["train", "--nproc", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "but it has 1; pass --nproc 1 (torchrun: --nproc-per-node 1) or --device cpu." in err
    assert err.count("\n") == 1 and not out.exists()


def test_nproc_below_one_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--nproc", "0"])
    assert stop.value.code == 2 and "--nproc: must be at least 1" in capsys.readouterr().err


def _small_fit(data_dir, callbacks=(), log=None, **kw):
    data = load_dataset("fashion-mnist", data_dir=data_dir)
    cfg = resolve("fast", epochs=1, batch_size=32, limit_train=64, data_dir=str(data_dir),
                  threads=1, device="cpu", **kw)  # fmt: skip
    torch.manual_seed(0)
    model = create_model("nin_fast")
    return model, fit(model, data, prepare_config(cfg, data), callbacks, progress=False, log=log)


def test_bf16_autocast_runs_on_the_cpu(data_dir):
    """The CUDA default, exercised on the CPU: the convs run in bfloat16, the loss stays finite."""
    dtypes = []
    model = create_model("nin_fast")
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    data = load_dataset("fashion-mnist", data_dir=data_dir)
    cfg = resolve("fast", epochs=1, batch_size=32, limit_train=64, data_dir=str(data_dir),
                  threads=1, device="cpu", precision="bf16")  # fmt: skip
    history = fit(model, data, prepare_config(cfg, data), progress=False, log=None)
    assert dtypes[0] == torch.bfloat16  # training steps
    assert dtypes[-1] == torch.float32  # evaluation on the CPU stays fp32
    assert torch.isfinite(torch.tensor(history[0]["train_loss"]))


def test_auto_precision_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    cpu = torch.device("cpu")
    assert precision_for("fp32", cpu) == "fp32" and precision_for("bf16", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert precision_for("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert precision_for("auto", cpu) == "fp32"


def test_compile_that_fails_falls_back_with_one_line(data_dir, monkeypatch):
    class CompileError(Exception):
        pass

    CompileError.__module__ = "torch._dynamo.exc"

    def broken(net):
        def forward(x):
            raise CompileError("backend failed")

        return forward

    monkeypatch.setattr(torch, "compile", broken)
    lines = []
    _, history = _small_fit(data_dir, log=lines.append, compile=True)
    assert len(history) == 1
    assert [line for line in lines if "torch.compile failed (CompileError: backend failed)" in line]


@pytest.mark.slow
def test_a_rank_that_cannot_join_says_so(tmp_path, data_dir):
    """Rank 1 of 2 whose master (port 9, discard) never answers: one sentence after --timeout."""
    env = {**_env(tmp_path), "RANK": "1", "LOCAL_RANK": "0", "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "9"}  # fmt: skip
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "ninlab", "train", "--data-dir", str(data_dir), "--out", str(out),
         "--timeout", "2", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith("ninlab (rank 1): error: rank 1 could not join the run of 2 processes")
    )
    assert not out.exists()


def test_nproc_is_taken_out_of_the_command_passed_on():
    from ninlab.cli.train import without_nproc

    argv = ["train", "--nproc", "2", "--epochs", "1", "--nproc=3", "--out", "x"]
    assert without_nproc(argv) == ["--epochs", "1", "--out", "x"]
