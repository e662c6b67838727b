"""Integrity: a flipped byte in a checkpoint or weights file is refused in one sentence naming the
file; a full disk is known by its errno at any free size, and an epoch's files are kept or lost
together; the hints say what is true (ninlab.checksum, ninlab.files, ninlab.runs)."""

import errno
import json
import os
import shlex
import shutil
import struct
import subprocess
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from ninlab import checksum, files
from ninlab.cli import main
from ninlab.errors import NinlabError
from ninlab.lock import DirLock
from ninlab.runs import (
    RunWriter,
    check_run,
    load_converted,
    load_run,
    read_checkpoint,
    read_metrics,
    train_run,
)
from ninlab.train import Callback, Interrupted, resolve

from ..conftest import make_run_dir

TRAIN = ["--epochs", "2", "--limit-train", "300", "--batch-size", "50", "--threads", "1",
         "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """A finished two-epoch run (nin_fast: weights 1.5 MB each, checkpoint 3 MB) and a file
    converted from it."""
    run = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", *TRAIN, "--data-dir", str(data_dir), "--out", str(run)]) == 0
    assert main(["convert", str(run), "--out", str(run.parent / "conv.safetensors"),
                 "--batch-size", "2"]) == 0  # fmt: skip
    return run


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of that size (root, as in CI); unmounted afterwards."""
    mounted = []

    def mount(size: str) -> Path:
        d = tmp_path / f"tmpfs{len(mounted)}"
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                       check=True, capture_output=True)  # fmt: skip
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", str(d)], capture_output=True)


def flip(path: Path, member: str | None = None) -> None:
    """Flip one byte in the middle of the tensor data: of a safetensors file (after its JSON
    header), or of the largest tensor of a checkpoint's zip (stored uncompressed, and torch does
    not check the zip's CRC)."""
    raw = bytearray(path.read_bytes())
    if path.suffix == ".safetensors":
        start = 8 + struct.unpack("<Q", raw[:8])[0]
        at = (start + len(raw)) // 2
    else:
        with zipfile.ZipFile(path) as z:
            info = max((i for i in z.infolist() if "/data/" in i.filename),
                       key=lambda i: i.file_size)  # fmt: skip
        name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 :][:4])
        at = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    raw[at] ^= 0x40
    path.write_bytes(bytes(raw))


def one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


# ---- a flipped byte ----


@pytest.mark.slow
def test_a_flipped_checkpoint_is_refused_on_resume_naming_the_file(reference, tmp_path, capsys):
    run = shutil.copytree(reference, tmp_path / "run")
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["epoch"] = 1  # a run with an epoch left to train, so that only the damage stops it
    torch.save(checksum.sealed({k: v for k, v in ckpt.items() if k != checksum.KEY}),
               run / "checkpoint.pt")  # fmt: skip
    flip(run / "checkpoint.pt")
    assert main(["train", "--resume", str(run)]) == 2
    err = one_sentence(capsys)
    assert err == (
        f"ninlab: error: {run}/checkpoint.pt is damaged: its content does not match the checksum "
        f"written with it; delete it, and `ninlab train --resume {run}` trains the run anew."
    )
    assert check_run(run)["checkpoint.pt"].startswith(f"NinlabError: {run}/checkpoint.pt is dam")


@pytest.mark.parametrize("verb", ["eval", "predict", "export", "convert"])
def test_flipped_best_weights_are_refused_by_every_verb(reference, tmp_path, capsys, verb):
    run = shutil.copytree(reference, tmp_path / "run")
    flip(run / "best.safetensors")
    extra = {"predict": ["--index", "0"], "export": ["--out", str(tmp_path / "m.onnx")],
             "convert": ["--out", str(tmp_path / "c.safetensors")]}  # fmt: skip
    assert main([verb, str(run), *extra.get(verb, [])]) == 2
    assert one_sentence(capsys) == (
        f"ninlab: error: {run}/best.safetensors is damaged: its content does not match the "
        "checksum written with it; use the run's final.safetensors (--weights final) or train "
        "the run again."
    )
    assert not list(tmp_path.glob("[mc].*"))  # nothing written from damaged weights
    if verb == "eval":  # the advice works
        assert main(["eval", str(run), "--weights", "final"]) == 0


@pytest.mark.parametrize("verb", ["eval", "predict", "export"])
def test_a_flipped_converted_file_is_refused(reference, tmp_path, capsys, verb):
    conv = Path(shutil.copy(reference.parent / "conv.safetensors", tmp_path / "conv.safetensors"))
    flip(conv)
    extra = {"predict": ["--index", "0"], "export": ["--out", str(tmp_path / "m.onnx")]}
    assert main([verb, str(conv), *extra.get(verb, [])]) == 2
    assert one_sentence(capsys) == (
        f"ninlab: error: {conv} is damaged: its content does not match the checksum written "
        "with it; convert the run again."
    )


def test_whole_files_load_without_a_word_and_old_ones_with_a_warning(reference, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checked file says nothing
        assert set(check_run(reference).values()) == {"ok"}
        load_run(reference)
        load_converted(reference.parent / "conv.safetensors")
        assert checksum.KEY not in read_checkpoint(reference)  # what TrainState.load gets
    # files written before checksums (the key taken out) still load, with a warning
    run = shutil.copytree(reference, tmp_path / "run")
    tensors = load_file(run / "best.safetensors")
    with safe_open(str(run / "best.safetensors"), "pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != checksum.KEY}
    save_file(tensors, str(run / "best.safetensors"), metadata=meta)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    del ckpt[checksum.KEY]
    torch.save(ckpt, run / "checkpoint.pt")
    with pytest.warns(checksum.Unchecked, match="best.safetensors carries no checksum"):
        load_run(run)
    with pytest.warns(checksum.Unchecked, match="checkpoint.pt carries no checksum"):
        assert read_checkpoint(run)["epoch"] == 2


def test_the_digest_is_of_the_content_and_sees_each_part():
    t = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    base = {"a": t, "b": [1, 2.0, (True, None)], 3: "x"}
    d = checksum.digest(base)
    assert checksum.digest(dict(reversed(base.items()))) == d  # dict order does not matter
    assert checksum.digest({**base, "a": t.t().contiguous().t()}) == d  # nor memory layout
    changed = [{**base, "a": t.float()}, {**base, "a": t.reshape(3, 2)},
               {**base, "b": [1, 2, (True, None)]}, {**base, "b": [1, 2.0, [True, None]]},
               {**base, "3": "x"}]  # fmt: skip
    changed.append({**base, "a": t.clone()})
    changed[-1]["a"][1, 2] = 7
    assert all(checksum.digest(c) != d for c in changed)


# ---- a full disk, at any free size ----


def _raises(error: BaseException, during: BaseException | None = None):
    def write(tmp):
        Path(tmp).write_bytes(b"half")
        if during is None:
            raise error
        try:
            raise during
        except BaseException:
            raise error  # noqa: B904  (the chain as a C++ writer leaves it: __context__ only)

    return write


ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
# what the writers say (safetensors wraps the errno in words; torch.save to a Python file says
# "unexpected pos", the OSError in the chain; other torch versions name the error code)
SAFETENSORS_FULL = "Error while serializing: I/O error: No space left on device (os error 28)"
SAFETENSORS_QUOTA = "I/O error: Disk quota exceeded (os error 122)"
TORCH_POS = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
TORCH_CODE = "PytorchStreamWriter failed writing file data/0: file write failed, error code: 28"


@pytest.mark.parametrize(
    "error, during, code",
    [
        (OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), None, errno.EDQUOT),
        (SafetensorError(SAFETENSORS_FULL), None, errno.ENOSPC),
        (SafetensorError(SAFETENSORS_QUOTA), None, errno.EDQUOT),
        (RuntimeError(TORCH_POS), ENOSPC, errno.ENOSPC),
        (RuntimeError(TORCH_CODE), None, errno.ENOSPC),
    ],
)
def test_a_full_disk_is_known_by_its_errno_anywhere(tmp_path, monkeypatch, error, during, code):
    monkeypatch.setattr(files, "_full", lambda folder: False)  # this disk has room
    path = files.write_text(tmp_path / "checkpoint.pt", "old")
    with pytest.raises(files.CannotWrite) as e:
        files.atomic_write(path, _raises(error, during))
    assert e.value.errno == code and "the previous checkpoint.pt is kept" in str(e.value)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [path.name]
    # raised from a cause (`raise ... from`) just as well
    cause = RuntimeError("wrapped")
    cause.__cause__ = OSError(code, os.strerror(code))
    assert files.disk_full(cause) == code


def test_an_error_that_is_no_full_disk_is_raised_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_full", lambda folder: False)
    for error in (RuntimeError("unexpected pos 704 vs 598"), RuntimeError("os error 280")):
        with pytest.raises(RuntimeError, match=str(error)):
            files.atomic_write(tmp_path / "x", _raises(error))
    assert not list(tmp_path.iterdir())


def test_real_writers_on_a_real_full_disk_with_room_left(tmpfs, monkeypatch):
    """torch.save (the checkpoint writer) and safetensors on a 2 MB tmpfs: 4 MB refused with
    2 MB still free, and known without asking the disk."""
    monkeypatch.setattr(files, "_full", lambda folder: False)
    disk = tmpfs("2m")
    st = os.statvfs(disk)
    assert st.f_bavail * st.f_frsize > 2**20  # more than the old 1 MiB test knew
    big = {"w": torch.zeros(2**20)}
    files.write_text(disk / "checkpoint.pt", "old")
    state = SimpleNamespace(checkpoint=lambda: dict(big), history=[])
    with pytest.raises(files.CannotWrite, match="checkpoint.pt: no space left on device; the p"):
        RunWriter(disk).on_interrupt(state)
    with pytest.raises(files.CannotWrite, match="w.safetensors: no space left on device"):
        files.atomic_write(disk / "w.safetensors", lambda tmp: save_file(big, tmp))
    assert sorted(p.name for p in disk.iterdir()) == ["checkpoint.pt"]


def test_convert_onto_a_disk_with_1_3_mb_free_is_one_sentence(reference, tmpfs, capsys):
    disk = tmpfs("1400k")
    (disk / "old.safetensors").write_bytes(b"old weights")
    assert main(["convert", str(reference), "--out", str(disk / "old.safetensors"),
                 "--batch-size", "2"]) == 2  # fmt: skip
    assert one_sentence(capsys) == (
        f"ninlab: error: cannot write {disk}/old.safetensors: no space left on device; the "
        "previous old.safetensors is kept; free some space there, or write somewhere else."
    )
    assert (disk / "old.safetensors").read_bytes() == b"old weights"


def test_files_written_together_are_renamed_together(tmp_path, monkeypatch):
    a, b = files.write_text(tmp_path / "a", "old a"), files.write_text(tmp_path / "b", "old b")
    seen = {}

    def written(path):  # bench/faults.py kills here: the new content is on disk, not renamed
        if path.name in ("a", "b"):
            (tmp,) = files.leftovers(tmp_path, [path.name])
            seen[path.name] = (tmp.read_text(), path.read_text())

    monkeypatch.setattr(files, "on_written", [written])
    with files.together():
        files.write_text(a, "new a")
        files.write_text(b, "new b")
        assert (a.read_text(), b.read_text()) == ("old a", "old b")
        # a writer that itself writes atomically fills its temporary at once (folders' caches)
        files.atomic_write(tmp_path / "n", lambda tmp: files.write_text(tmp, "inner"))
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert seen == {"a": ("new a", "old a"), "b": ("new b", "old b")}
    assert (tmp_path / "n").read_text() == "inner"
    (tmp_path / "n").unlink()
    with pytest.raises(files.CannotWrite, match="cannot write .*/c: no space left"):
        with files.together():
            files.write_text(a, "newer a")
            files.atomic_write(tmp_path / "c", _raises(OSError(errno.ENOSPC, "No space")))
    assert a.read_text() == "new a" and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


@pytest.mark.slow
def test_training_into_3_mb_keeps_nothing_and_says_so(data_dir, tmpfs, capsys):
    out = tmpfs("3m") / "run"
    argv = ["train", "--out", str(out), "--epochs", "2", "--limit-train", "600",
            "--data-dir", str(data_dir), "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = one_sentence(capsys)
    assert err.startswith(f"ninlab: error: cannot write {out}/")
    assert err.endswith(
        "no space left on device; not even the files of the first epoch fit, so nothing of the "
        f"training could be kept ({out} holds only config.json, facts.json): free some space "
        f"and train it anew with `ninlab train --resume {out}`."
    )
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "facts.json"]


@pytest.mark.slow
def test_a_disk_full_in_epoch_2_keeps_epoch_1_whole_and_resumes_bit_identical(
    reference, data_dir, tmpfs, capsys
):
    """8 MB: room for one epoch's files (6.2 MB), not for a second set beside them."""
    disk = tmpfs("8m")
    out = disk / "run"
    assert main(["train", *TRAIN, "--data-dir", str(data_dir), "--out", str(out)]) == 2
    err = one_sentence(capsys)
    assert "no space left on device; the run keeps its checkpoint of epoch 1, so free some " \
        f"space and resume it with `ninlab train --resume {out}`." in err  # fmt: skip
    assert set(check_run(out).values()) == {"ok"}  # whole, no temporaries, no lock
    assert len(read_metrics(out)) == 1 and read_checkpoint(out)["epoch"] == 1
    assert json.loads((out / "facts.json").read_text())["sessions"][0]["last_epoch"] == 1
    subprocess.run(["mount", "-o", "remount,size=32m", str(disk)], check=True)
    assert main(["train", "--resume", str(out)]) == 0
    ref, got = load_file(reference / "final.safetensors"), load_file(out / "final.safetensors")
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)


# ---- hints that say what is true ----


class StopAt(Callback):
    def on_batch_end(self, state):
        state.request_stop("test stop")


def test_resume_hints_quote_a_path_with_spaces(data_dir, tmp_path, capsys):
    out = tmp_path / "my run"
    cfg = resolve("fast", data_dir=str(data_dir), epochs=2, limit_train=100, batch_size=25,
                  threads=1)  # fmt: skip
    with pytest.raises(Interrupted) as stop:
        train_run(cfg, out, progress=False, log=None, callbacks=[StopAt()])
    hint = str(stop.value).split("Resume with: ")[1]
    assert shlex.split(hint) == ["ninlab", "train", "--resume", str(out)]
    argv = ["train", "--data-dir", str(data_dir), "--out", str(out)]
    assert main(argv) == 2  # already a run: continue it
    assert f"`ninlab train --resume '{out}'`" in one_sentence(capsys)
    (out / "checkpoint.pt").unlink()
    assert main(["eval", str(out)]) == 2  # no weights, nobody training it
    assert one_sentence(capsys).endswith(f"resume it with `ninlab train --resume '{out}'`.")


def test_a_run_in_its_first_epoch_says_to_wait_not_to_resume(tmp_path, capsys):
    run = tmp_path / "run"
    make_run_dir(run)
    for w in run.glob("*.safetensors"):
        w.unlink()
    with DirLock(run):  # held by a live process (this one), as by `ninlab train`
        assert main(["eval", str(run)]) == 2
        err = one_sentence(capsys)
    assert f"{run} has no weights yet: it is training its first epoch now (process " \
        f"{os.getpid()} on " in err and err.endswith("); wait for that epoch to end.")  # fmt: skip
    assert "--resume" not in err


@pytest.mark.parametrize(
    "row, damaged",
    [
        ({"epoch": 1, "train_loss": -0.5}, "has a train_loss of -0.5, which is negative"),
        ({"epoch": 1, "test_loss": -1e308}, "has a test_loss of -1e+308, which is negative"),
        ({"epoch": 1, "test_acc": 1.5}, "has a test_acc of 1.5, which lies outside 0 to 1"),
        ({"epoch": 1, "train_acc": -0.01}, "has a train_acc of -0.01, which lies outside 0 to 1"),
        ({"epoch": 1, "train_loss": 0.0, "test_acc": 1}, None),  # the bounds, fields missing
        ({"epoch": 1}, None),
    ],
)
def test_metrics_out_of_bounds_are_damaged(tmp_path, row, damaged):
    first = {"epoch": 0, "train_loss": 2.3, "test_acc": 0.1}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(row) + "\n")
    if damaged is None:
        assert read_metrics(tmp_path)[1] == row
        return
    with pytest.raises(NinlabError) as e:
        read_metrics(tmp_path)
    assert str(e.value) == f"{tmp_path}/metrics.jsonl line 2 {damaged}; the run is damaged."
