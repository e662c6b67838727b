"""The style check is part of the test suite: ruff lint and ruff format, configured in pyproject."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("ruff") is None, reason="ruff is not installed (pip install .[test])"
)
@pytest.mark.parametrize("cmd", [["ruff", "check", "."], ["ruff", "format", "--check", "."]])
def test_ruff(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
