import subprocess
import sys

import pytest


@pytest.mark.slow
def test_python_m_ninlab_models():
    out = subprocess.run(
        [sys.executable, "-m", "ninlab", "models"], capture_output=True, text=True, check=True
    ).stdout
    assert "nin_seed     1,769,112  1x224x224" in out
    assert "nin_cifar      966,986  3x32x32" in out


def _ninlab(*argv):
    return subprocess.run([sys.executable, "-m", "ninlab", *argv], capture_output=True, text=True)


@pytest.mark.slow
def test_unknown_model_is_one_sentence_and_exit_2():
    r = _ninlab("summary", "resnet")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("ninlab: error: unknown model 'resnet'")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.slow
def test_option_that_is_not_a_number_exits_2():
    r = _ninlab("models", "--num-classes", "x")
    assert r.returncode == 2 and "argument --num-classes: invalid int value: 'x'" in r.stderr


@pytest.mark.slow
def test_version_comes_from_one_place():
    from ninlab.version import __version__

    r = _ninlab("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"ninlab {__version__}"
