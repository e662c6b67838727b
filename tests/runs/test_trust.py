"""Opening a file never runs code: a model name found in a file resolves through the registry
only; anything else is refused in one sentence unless the user opts in (`trust_code=True`).

Each planted file would write a canary file if any of its code ran; the canary must not appear.
"""

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ninlab.checksum import sealed_metadata
from ninlab.cli import main
from ninlab.errors import NinlabError
from ninlab.models import imported_by, load_model
from ninlab.runs import load_converted
from ninlab.runs.converted import FORMAT

from ..conftest import make_run_dir


def planted(path: Path, spec: str, kwargs: dict, config: dict | None = None) -> Path:
    """A file that claims to be `ninlab convert`'s output, built from `spec(**kwargs)`, with a
    valid checksum (anyone can compute one: it guards against damage, not against authors)."""
    meta = {"format": FORMAT, "conversion": json.dumps({"input_size": [1, 28, 28]})}
    if config is None:
        meta["source"] = json.dumps({"model": spec, "kwargs": kwargs})
    else:
        meta["config"] = json.dumps(config)
    tensors = {"w": torch.zeros(4)}
    save_file(tensors, str(path), metadata=sealed_metadata(meta, tensors))
    return path


def evil_module(tmp_path: Path, canary: Path) -> Path:
    """A model file whose import writes the canary."""
    code = f"from pathlib import Path\nPath({str(canary)!r}).write_text('ran')\ndef net(): pass\n"
    (tmp_path / "evil.py").write_text(code)
    return tmp_path / "evil.py"


def error_line(err: str) -> str:
    """stderr as its one line: an error."""
    assert err.startswith("ninlab: error: ") and err.count("\n") == 1
    return err


VERBS = [
    ["eval", "{f}"],
    ["predict", "{f}", "--index", "0"],
    ["export", "{f}", "--out", "{d}/m.onnx"],
    ["convert", "{f}", "--out", "{d}/c.safetensors"],
]


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v[0])
def test_planted_os_system_runs_nothing(tmp_path, capsys, monkeypatch, verb):
    """The issue's file: os:system with a command, opened by each verb that reads weights."""
    monkeypatch.chdir(tmp_path)
    canary = tmp_path / "PWNED"
    f = planted(tmp_path / "evil.safetensors", "os:system", {"command": f"id > {canary}"})
    assert main([a.format(f=f, d=tmp_path) for a in verb]) == 2
    err = error_line(capsys.readouterr().err)
    assert not canary.exists()
    assert "'os:system'" in err and "import and run 'os'" in err


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v[0])
def test_planted_file_spec_runs_nothing(tmp_path, capsys, verb):
    canary = tmp_path / "PWNED"
    evil = evil_module(tmp_path, canary)
    f = planted(tmp_path / "evil.safetensors", f"{evil}:net", {})
    assert main([a.format(f=f, d=tmp_path) for a in verb]) == 2
    err = error_line(capsys.readouterr().err)
    assert not canary.exists()
    assert f"import and run '{evil}'" in err


def test_library_refuses_then_trusts_when_asked(tmp_path):
    """load_converted names what it would import; trust_code=True is the user's yes."""
    canary = tmp_path / "PWNED"
    evil = evil_module(tmp_path, canary)
    f = planted(tmp_path / "evil.safetensors", f"{evil}:net", {})
    with pytest.raises(NinlabError, match=r"trust_code=True"):
        load_converted(f)
    assert not canary.exists()
    with pytest.raises(NinlabError):  # net() returns None: refused, but only after running it
        load_converted(f, trust_code=True)
    assert canary.read_text() == "ran"


def test_trusted_user_model_round_trips(tmp_path, capsys):
    """A model converted from the user's own file loads back with trust_code=True, and equals
    what was saved."""
    net = tmp_path / "net.py"
    net.write_text(
        "from torch import nn\n"
        "def net():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),\n"
        "                         nn.Flatten(), nn.Linear(4, 3))\n"
    )
    out = tmp_path / "net.safetensors"
    argv = ["convert", "--model", f"{net}:net", "--input", "1x8x8", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    with pytest.raises(NinlabError, match=r"import and run '.*net\.py'"):
        load_converted(out)
    dense, config = load_converted(out, trust_code=True)
    assert config is None and dense(torch.zeros(2, 1, 8, 8)).shape[:2] == (2, 3)


def test_registry_model_needs_no_trust(tmp_path, capsys):
    out = tmp_path / "lenet.safetensors"
    assert main(["convert", "--model", "lenet_fc", "--out", str(out), "--batch-size", "2"]) == 0
    dense, config = load_converted(out)
    assert config is None and imported_by("lenet_fc") is None


def test_sizes_from_a_file_are_checked_before_allocating(tmp_path):
    """A registry model with a billion classes (40 GB of weights) in a 16-byte file: refused on
    the meta device, in one sentence, before any memory is taken."""
    f = planted(tmp_path / "big.safetensors", "lenet_fc", {"num_classes": 10**9})
    with pytest.raises(NinlabError, match=r"describes a lenet_fc of [\d,]+ bytes, but its weights "
                       r"hold 16 bytes; it is damaged"):  # fmt: skip
        load_converted(f)


def test_a_config_with_a_million_channels_is_refused_before_allocating(tmp_path, capsys):
    """config.json's in_chans builds the stem: 16 x 10**6 x 5 x 5 floats (1.6 GB) for weights
    of 1.5 MB is refused before the model is built."""
    run = tmp_path / "run"
    make_run_dir(run, "nin_fast")
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(dict(cfg, in_chans=10**6)))
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert re.match(
        r"ninlab: error: \S+/config.json describes a nin_fast of 1,6\d\d,\d{3},\d{3} bytes, "
        r"but its weights hold [\d,]+ bytes; it is damaged\.$",
        err.strip(),
    ), err


def test_a_config_names_registry_models_only(tmp_path, capsys):
    """config.json's model is looked up in the registry: 'os:system' is an unknown name."""
    run = tmp_path / "run"
    make_run_dir(run, "nin_fast")
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(dict(cfg, model="os:system")))
    assert main(["eval", str(run)]) == 2
    assert "unknown model 'os:system'; choose one of" in capsys.readouterr().err


def test_imported_by_names_the_module_or_the_file():
    assert imported_by("nin_fast") is None
    assert imported_by("os:system") == "os"
    assert imported_by("a/b.py:net") == "a/b.py"
    assert imported_by("pkg.mod:make.sub") == "pkg.mod"
    assert imported_by("no_colon") == "no_colon"


def test_a_model_file_that_exits_is_one_sentence(tmp_path, capsys):
    (tmp_path / "quit.py").write_text("import sys\nsys.exit(7)\n")
    assert main(["summary", f"{tmp_path}/quit.py:net"]) == 2
    assert capsys.readouterr().err == f"ninlab: error: importing {tmp_path}/quit.py called " \
        "sys.exit(7).\n"  # fmt: skip
    (tmp_path / "quit2.py").write_text("import sys\ndef net():\n    sys.exit(7)\n")
    with pytest.raises(NinlabError, match=r"quit2\.py:net\(\) called sys\.exit\(7\)\.$"):
        load_model(f"{tmp_path}/quit2.py:net")


def test_articles_in_what_a_callable_returned(tmp_path):
    (tmp_path / "m.py").write_text("def one():\n    return 1\nx = 2.5\n")
    with pytest.raises(NinlabError, match=r"returned an int, not an nn\.Module"):
        load_model(f"{tmp_path}/m.py:one")
    with pytest.raises(NinlabError, match=r"m\.py:x is a float, not a callable"):
        load_model(f"{tmp_path}/m.py:x")


def test_an_eps_file_is_not_opened(tmp_path, capsys):
    """Pillow's EPS plugin hands the file to Ghostscript, a program outside Python: ninlab opens
    only formats of plain pixels, so an EPS is refused before any plugin reads it."""
    eps = tmp_path / "x.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    run = tmp_path / "run"
    make_run_dir(run, "nin_fast")
    assert main(["predict", str(run), str(eps)]) == 2
    assert capsys.readouterr().err == (
        f"ninlab: error: {eps} is not a readable image: not an image in a format ninlab reads "
        "(PNG, JPEG, BMP, GIF, TIFF, WEBP or PPM/PGM).\n"
    )
