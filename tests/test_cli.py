import subprocess
import sys


def test_python_m_ninlab_models():
    out = subprocess.run(
        [sys.executable, "-m", "ninlab", "models"], capture_output=True, text=True, check=True
    ).stdout
    assert "nin_seed     1,769,112  1x224x224" in out
    assert "nin_cifar      966,986  3x32x32" in out


def test_unknown_model_exit_code():
    r = subprocess.run(
        [sys.executable, "-m", "ninlab", "models", "--num-classes", "x"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "invalid int value" in r.stderr
