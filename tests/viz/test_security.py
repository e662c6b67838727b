"""Hostile names stay text in the report; temporary files are private while written. (The pickle
and tar checks are in test_fuzz.py, the download hash check in test_data.py.)"""

import os
import stat

import pytest

from ninlab import files
from ninlab.cli import main

from ..conftest import make_idx_dataset, make_run_dir

HOSTILE = "<script>alert(1)</script>"


@pytest.mark.slow
def test_a_hostile_class_name_and_run_path_stay_text_in_the_report(tmp_path):
    make_idx_dataset(tmp_path / "data" / "fashion-mnist", n_train=20, n_test=20)
    run = tmp_path / "<img src=x onerror=alert(2)>"
    classes = [HOSTILE] + [f"c{i}" for i in range(9)]
    make_run_dir(run, "nin_fast", classes=classes, data_dir=str(tmp_path / "data"))
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out), "--gallery", "1", "--limit", "20"]) == 0
    text = out.read_text()
    assert text.count("<script") == 1  # the report's own check, nothing injected
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(2)&gt;" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_file_being_written_is_private_whatever_the_umask(tmp_path):
    seen = []
    old = os.umask(0)  # the most permissive: what a final file gets is the user's choice
    try:
        files.write_text(tmp_path / "a.txt", "x")
        files.atomic_write(tmp_path / "b.txt", lambda tmp: seen.append(os.stat(tmp).st_mode))
    finally:
        os.umask(old)
    assert stat.S_IMODE(seen[0]) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(files.TMP_SUFFIX)]
