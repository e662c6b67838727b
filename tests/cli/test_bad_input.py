"""Every verb x every bad input a user can give it: exit status 2, one line `ninlab: error: ...`
on stderr, no traceback, and every file that was there before left as it was.

The commands run in-process (`ninlab.cli.main`) on one small world: a run directory with
untrained nin_fast weights, a run without weights, an 8-image IDX test set, broken images and
destinations that refuse a write. Three cases run `python -m ninlab` to see the real exit status.
Read-only folders refuse only a user without CAP_DAC_OVERRIDE; for root they are also bind-mounted
read-only on themselves where root may mount. Their cases are skipped where a probe shows the
write would still succeed, and their twins, a file standing where a folder is needed (or a folder
where a file is), fail for root too.
"""

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import ninlab.data.catalog
import ninlab.runs
from ninlab.cli import VERBS, main

from ..conftest import make_idx_dataset, make_run_dir

# what each verb writes into its run directory (or --out DIR) by default, for the cases below
DEFAULT_OUTPUT = {
    "eval": "confusion.png",
    "features": "features-0.png",
    "cam": "cam-0.png",
    "sparsity": "sparsity-4.png",  # with GOOD's --limit 4
    "locate": "locate-scene.png",
    "report": "report.html",
}
# the inputs besides RUN_DIR that make each run-reading verb do its work (kept small)
GOOD = {
    "eval": "",
    "predict": "--index 0",
    "features": "--index 0",
    "cam": "--index 0",
    "locate": "--image {scene}",
    "sparsity": "--limit 4",
    "report": "--limit 4 --gallery 1",
    "convert": "--batch-size 2 --out {outs}/c.safetensors",
    "export": "--out {outs}/m.onnx",
}
FILE_OUT = {"sparsity": "x.png", "report": "x.html", "convert": "x.safetensors", "export": "x.onnx"}
DIR_OUT = ("features", "cam", "locate")  # --out is a folder
# either sentence is right for a path below a file (make_dir and atomic_write say it their ways)
UNDER_A_FILE = "afile is a file|a file stands where a folder is needed"
READ_ONLY = "permission denied|read-only file system"  # by its mode, or (root) a read-only mount
BAD_IMAGES = [  # (name, placeholder, the message's words, marks)
    ("missing-image", "{nofile}", "does not exist", ()),
    (
        "text-as-png",
        "{text_png}",
        "is not a readable image: not an image in a format ninlab reads",
        (),
    ),
    ("truncated-png", "{truncated_png}", "is not a readable image: corrupt or truncated", ()),
    ("folder-as-image", "{folder_png}", "is a folder", ()),
]


def _cases():
    """pytest params (argv template, words the one-line message holds, what the world must do
    to refuse: None, "read-only" or "disk-full"), one per verb x bad input."""
    c = []

    def add(id_, words, command, needs=None, marks=()):
        argv = command.split()
        if argv[0] not in (
            "models",
            "summary",
            "compare",
            "profile",
        ):  # the tiny data set, never a download
            argv += ["--data-dir", "{data}"]
        c.append(pytest.param(argv, words, needs, id=id_, marks=marks))

    # --- the run directory ---
    for verb, good in GOOD.items():
        add(f"{verb}-missing-run", "does not exist", f"{verb} {{missing}} {good}")
        add(f"{verb}-run-without-weights", "has no weights", f"{verb} {{noweights}} {good}")
    add("claims-missing-run", "does not exist", "claims --run {missing} --limit 4")
    add("explore-missing-run", "does not exist", "explore {missing} --port 0")
    add("explore-run-without-weights", "has no weights", "explore {noweights} --port 0")
    add("explore-port-over-65535", "--port 70000 is not a TCP port", "explore {run} --port 70000")
    add(
        "explore-host-not-here",
        "cannot listen on 192.0.2.1:0 (Cannot assign requested address)",
        "explore {run} --host 192.0.2.1 --port 0",
    )  # TEST-NET-1: an address of no machine here
    add("train-resume-missing-run", "does not exist", "train --resume {missing}")
    add("train-out-is-a-run", "already holds a run", "train --out {run} --epochs 1")

    # --- images ---
    for verb in ("predict", "features", "cam", "locate"):
        for name, image, words, marks in BAD_IMAGES:
            source = image if verb == "predict" else f"--image {image}"
            add(f"{verb}-{name}", words, f"{verb} {{run}} {source}", marks=marks)
    for verb in ("predict", "features", "cam"):
        for index in ("1000000", "-1"):
            words = f"--index {index} is out of range; the fashion-mnist test set has 8 images"
            add(f"{verb}-index-{index}", words, f"{verb} {{run}} --index {index}")

    # --- names: models, data sets, classes ---
    add("train-unknown-model", "unknown model 'nope'", "train --model nope")
    add("train-unknown-dataset", "unknown data set 'nope'", "train --dataset nope")
    add("train-missing-folder", "does not exist", "train --dataset {missing}")
    add("eval-unknown-dataset", "unknown data set 'nope'", "eval {run} --dataset nope")
    add("eval-missing-folder", "does not exist", "eval {run} --dataset {missing}")
    add("data-unknown-dataset", "unknown data set 'nope'", "data nope")
    add("data-missing-folder", "does not exist", "data {missing}")
    add("summary-unknown-model", "unknown model 'nope'", "summary nope")
    add("summary-missing-file", "is not a file", "summary {missing}/net.py:f")
    add("summary-num-classes-below-one", "at least 1 (got -3)", "summary nin_fast --num-classes -3")
    add("profile-unknown-model", "unknown model 'nope'", "profile nope")
    add("profile-missing-run", "does not exist", "profile {missing}")
    add("profile-run-without-weights", "has no weights", "profile {noweights}")
    add("profile-num-classes-below-one", "at least 1 (got 0)", "profile nin_fast --num-classes 0")
    add("models-num-classes-below-one", "at least 1 (got 0)", "models --num-classes 0")
    add("convert-unknown-model", "unknown model 'nope'", "convert --model nope --out {outs}/c.st")
    add("cam-unknown-class", "--class 'Shoe' is not a class", "cam {run} --index 0 --class Shoe")

    # --- destinations: a file where a folder is needed, a folder where a file is, no rights ---
    for verb, name in FILE_OUT.items():
        good = GOOD[verb].split(" --out ")[0]  # convert's and export's own --out replaced
        cmd = f"{verb} {{run}} {good} --out"
        add(f"{verb}-out-is-a-folder", "is a folder", f"{cmd} {{adir}}")
        add(f"{verb}-out-under-a-file", UNDER_A_FILE, f"{cmd} {{afile}}/{name}")
        add(
            f"{verb}-out-in-read-only-folder",
            READ_ONLY,
            f"{cmd} {{ro}}/{name}",
            needs="read-only",
        )
    for verb in DIR_OUT:
        cmd = f"{verb} {{run}} {GOOD[verb]} --out"
        add(f"{verb}-out-is-a-file", "afile is a file, not a folder", f"{cmd} {{afile}}")
        add(f"{verb}-out-under-a-file", UNDER_A_FILE, f"{cmd} {{afile}}/d")
        add(
            f"{verb}-out-name-is-a-folder",
            f"{DEFAULT_OUTPUT[verb]} is a folder",
            f"{cmd} {{taken}}",
        )
        add(f"{verb}-out-is-read-only", READ_ONLY, f"{cmd} {{ro}}", needs="read-only")
        add(f"{verb}-out-under-read-only", READ_ONLY, f"{cmd} {{ro}}/d", needs="read-only")
    for verb, name in DEFAULT_OUTPUT.items():  # the run directory as the destination
        add(
            f"{verb}-run-output-name-is-a-folder",
            f"{name} is a folder",
            f"{verb} {{blocked}} {GOOD[verb]}",
        )
        add(
            f"{verb}-read-only-run",
            READ_ONLY,
            f"{verb} {{rorun}} {GOOD[verb]}",
            needs="read-only",
        )
        add(
            f"{verb}-disk-full",
            f"no space left on device; the previous {name} is kept",
            f"{verb} {{full}} {GOOD[verb]}",
            needs="disk-full",
        )
    add(
        "convert-disk-full",
        "the previous old.safetensors is kept",
        "convert {run} --out {full}/old.safetensors --batch-size 2",
        needs="disk-full",
    )
    add("train-out-is-a-file", "afile is a file", "train --out {afile}")
    add("train-out-under-a-file", UNDER_A_FILE, "train --out {afile}/run")
    add("train-out-under-read-only", READ_ONLY, "train --out {ro}/run", needs="read-only")
    return c


CASES = _cases()


def _snapshot(root: Path) -> dict:
    """Every path under root: its mode and, for a file, a hash of its bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        content = "dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
        out[str(p.relative_to(root))] = (st.st_mode, content)
    return out


def _old_outputs(run: Path) -> None:
    """Earlier results in a run directory, which a failed write must leave as they are."""
    for name in DEFAULT_OUTPUT.values():
        (run / name).write_bytes(b"old " + name.encode())


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def permissions_refuse(world) -> bool:
    """Whether this user is kept out of the read-only folders: by their mode 0500, or, for root
    (whom modes do not stop), by a read-only bind mount where root may mount."""
    for d in (world["ro"], world["rorun"]):
        try:
            (d / "probe").write_text("x")
        except OSError:
            continue
        (d / "probe").unlink()
        return False
    return True


def _read_only(folder: Path) -> bool:
    """Mode 0500, and for root a read-only bind mount of the folder on itself (True: mounted)."""
    folder.chmod(0o500)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    run = [["mount", "--bind", str(folder), str(folder)],
           ["mount", "-o", "remount,bind,ro", str(folder)]]  # fmt: skip
    for i, cmd in enumerate(run):
        if subprocess.run(cmd, capture_output=True).returncode:
            if i:
                subprocess.run(["umount", str(folder)], capture_output=True)
            return False
    return True


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Placeholder -> path for the case templates (the folder itself is "root")."""
    root = tmp_path_factory.mktemp("bad-input")
    make_idx_dataset(root / "data" / "fashion-mnist", n_train=10, n_test=8)
    run = root / "run"
    make_run_dir(run, "nin_fast", data_dir=str(root / "data"))
    noweights = _copy_run(run, root / "noweights")
    for w in noweights.glob("*.safetensors"):
        w.unlink()
    blocked = _copy_run(run, root / "blocked")  # every default output name taken by a folder
    for name in DEFAULT_OUTPUT.values():
        (blocked / name).mkdir()
    full = _copy_run(run, root / "full")  # its disk refuses (see `refuse_renames_under`)
    _old_outputs(full)
    (full / "old.safetensors").write_bytes(b"old weights")
    rorun = _copy_run(run, root / "rorun")
    _old_outputs(rorun)
    ro = root / "ro"
    ro.mkdir()
    (ro / "old.png").write_bytes(b"old")
    for d in ("outs", "adir", "folder.png"):
        (root / d).mkdir()
    taken = root / "taken"  # --out DIR where the file's name is a folder
    for name in DEFAULT_OUTPUT.values():
        (taken / name).mkdir(parents=True)
    (root / "afile").write_text("a file, not a folder")
    (root / "text.png").write_text("not an image")
    Image.new("L", (40, 36), 128).save(root / "good.png")
    (root / "truncated.png").write_bytes((root / "good.png").read_bytes()[:60])
    Image.new("L", (40, 40), 0).save(root / "scene.png")
    mounted = [d for d in (ro, rorun) if _read_only(d)]
    paths = {
        "root": root,
        "run": run,
        "noweights": noweights,
        "blocked": blocked,
        "full": full,
        "rorun": rorun,
        "ro": ro,
        "missing": root / "missing",
        "data": root / "data",
        "outs": root / "outs",
        "adir": root / "adir",
        "taken": taken,
        "afile": root / "afile",
        "nofile": root / "nofile.png",
        "text_png": root / "text.png",
        "truncated_png": root / "truncated.png",
        "folder_png": root / "folder.png",
        "scene": root / "scene.png",
    }
    yield paths
    for d in mounted:
        subprocess.run(["umount", str(d)], capture_output=True)
    for d in (ro, rorun):
        d.chmod(0o700)


@pytest.fixture(autouse=True)
def no_download_no_training(monkeypatch):
    """A bad input must be refused before any download, data read for training, or training."""

    def refuse(what):
        def fail(*a, **k):
            raise AssertionError(f"{what} before the bad input was refused")

        return fail

    monkeypatch.setattr(ninlab.data.catalog, "download", refuse("a download"))
    monkeypatch.setattr(ninlab.runs.session.Session, "fit", refuse("training"))


def refuse_renames_under(monkeypatch, folder: Path) -> None:
    """The disk under `folder` is full: the rename that finishes an atomic write fails."""
    replace = os.replace

    def full(src, dst, *a, **k):
        if Path(dst).is_relative_to(folder):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", full)


def _fill(argv: list[str], world: dict) -> list[str]:
    return [a.format(**world) for a in argv]


@pytest.mark.slow
@pytest.mark.parametrize("argv, words, needs", CASES)
def test_bad_input_is_one_sentence_and_nothing_is_lost(
    world, permissions_refuse, argv, words, needs, capsys, monkeypatch
):
    if needs == "read-only" and not permissions_refuse:
        pytest.skip(
            "this user writes into read-only folders (root); the file-in-the-way cases stand in"
        )
    if argv[0] == "train":  # no data is read for a run that is refused
        monkeypatch.setattr(ninlab.data.catalog, "_find_file", lambda *a: pytest.fail("read"))
    if needs == "disk-full":
        refuse_renames_under(monkeypatch, world["full"])
    before = _snapshot(world["root"])
    rc = main(_fill(argv, world))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("ninlab: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and any(w in err for w in words.split("|")), err
    assert _snapshot(world["root"]) == before


def test_every_verb_has_a_bad_input_case():
    verbs = {p.values[0][0] for p in CASES}
    assert verbs | {"compare"} == set(VERBS)  # compare takes only --json: see below


@pytest.mark.parametrize("verb", list(VERBS))
def test_an_unknown_option_is_refused_by_the_parser(verb, capsys):
    """What argparse refuses (compare's only input): its usage, then one line, status 2."""
    with pytest.raises(SystemExit) as stop:
        main([verb, "--no-such-option"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("unrecognized arguments: --no-such-option") or (
        "the following arguments are required" in err  # a required one is missing first
    )
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["eval", "{missing}"], "run directory {missing} does not exist"),
        (["convert", "{run}", "--out", "{afile}/x.safetensors"], UNDER_A_FILE),
        (["cam", "{run}", "--image", "{text_png}"], "is not a readable image"),
    ],
    ids=["missing-run", "out-under-a-file", "unreadable-image"],
)
@pytest.mark.slow
def test_python_m_ninlab_exits_2_with_one_line(world, argv, words):
    r = subprocess.run(
        [sys.executable, "-m", "ninlab", *_fill(argv, world)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.startswith("ninlab: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert any(w in r.stderr for w in _fill(words.split("|"), world))
