"""The live page's server: the JSON API through Starlette's test client, and `ninlab explore`
itself as a process (its address, the warning for other hosts, a port in use, Ctrl-C)."""

import io
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from ninlab.errors import NinlabError
from ninlab.explore import app as app_module
from ninlab.explore import explorer_for, serve
from ninlab.explore.app import make_app


@pytest.fixture(scope="module")
def run_dir(small_run):
    return small_run / "run"


@pytest.fixture(scope="module")
def served(run_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    return TestClient(make_app(explorer_for(run_dir, log=None), folder)), folder


def png_bytes(size=(28, 28), colour=0) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_page_and_its_files_are_served(served):
    client, _ = served
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/explore.js"' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: every file is local
    for name in ("explore.js", "explore.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and "https://" not in r.text
    assert client.get("/api/about").json()["model"] == "nin_fast"


def test_an_upload_is_read_then_removed(served):
    client, folder = served
    r = client.post("/api/picture", content=png_bytes(), headers={"X-Filename": "black%20shoe.png"})
    assert r.status_code == 200, r.text
    assert r.json()["line"].startswith("black shoe.png: 28x28 L -> 28x28 L")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    "content, status, needle",
    [
        (b"", 400, "shoe.png is not a readable image: the file is empty."),
        (b"GIF89a nonsense", 400, "shoe.png is not a readable image"),
        (png_bytes((1, 1)), 400, "shoe.png is 1x1 px, too small to show anything"),
    ],
    ids=["0-bytes", "corrupt", "1x1"],
)
def test_a_bad_upload_gets_one_sentence(served, content, status, needle):
    client, folder = served
    r = client.post("/api/picture", content=content, headers={"X-Filename": "shoe.png"})
    assert r.status_code == status and needle in r.json()["error"]
    assert list(folder.iterdir()) == []


def test_an_upload_over_the_limit_is_refused_unread(served, monkeypatch):
    client, folder = served
    monkeypatch.setattr(app_module, "UPLOAD_LIMIT", 1000)
    r = client.post("/api/picture", content=bytes(5000), headers={"X-Filename": "big.png"})
    assert r.status_code == 413
    assert r.json()["error"].startswith("big.png is over 0 MB (0.0 MB or more), the most")
    assert list(folder.iterdir()) == []


def test_two_tabs_do_not_mix_their_pictures(served):
    client, _ = served
    a = client.post("/api/test-picture", json={"index": 3}).json()
    b = client.post("/api/test-picture", json={"index": 4}).json()
    for pic, index in ((a, 3), (b, 4), (a, 3)):  # interleaved, as two tabs would
        assert pic["name"] == f"test image {index}"
        m = client.get(f"/api/picture/{pic['id']}/class/{pic['predicted']}").json()
        assert m["prob"] == pytest.approx(pic["top"][0]["prob"])
    unit = client.get(
        f"/api/picture/{a['id']}/unit",
        params={"layer": "features.pool1", "channel": 0, "i": 1, "j": 2},
    ).json()
    assert unit["box"] == [0, 2, 6, 8]  # field 6, jump 2, start -2: rows -2+2..3, columns -2+4..7


def test_bad_requests_are_json_sentences(served):
    client, _ = served
    pid = client.post("/api/test-picture", json={"index": 0}).json()["id"]
    r = client.get(f"/api/picture/{pid}/unit", params={"layer": "features.pool1", "i": "x"})
    assert r.status_code == 400 and r.json()["error"] == "channel must be a whole number, not None."
    r = client.post("/api/test-picture", content=b"{", headers={"content-type": "application/json"})
    assert r.json()["error"] == "the request's body is not JSON."
    r = client.post("/api/test-picture", json={"class": "Unicorn"})
    assert "'Unicorn' is not a class of this run" in r.json()["error"]


def test_without_the_extra_explore_says_how_to_install_it(run_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed
    with pytest.raises(NinlabError, match=r'needs uvicorn, .*pip install -e "\.\[explore\]"'):
        serve(run_dir, port=0)


def start(run_dir, *args):
    """`ninlab explore RUN_DIR --port 0 ARGS` until it prints its address; (process, url)."""
    proc = subprocess.Popen([sys.executable, "-m", "ninlab", "explore", str(run_dir), "--port",
                             "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    line = proc.stdout.readline()
    found = re.search(r"(http://\S+/) .*uploads in (\S+) until", line)
    assert found, line + proc.stderr.read() if proc.poll() is not None else line
    return proc, found.group(1), Path(found.group(2))


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_explore_serves_until_stopped_and_removes_its_folder(run_dir, stop):
    proc, url, folder = start(run_dir)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert folder.is_dir() and oct(folder.stat().st_mode)[-3:] == "700"
        with urllib.request.urlopen(url + "api/about", timeout=30) as r:
            assert b'"nin_fast"' in r.read()
    finally:
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped; the uploads folder is removed" in out and err == ""
    assert not folder.exists()


@pytest.mark.slow
def test_another_host_is_warned_and_a_busy_port_is_one_sentence(run_dir):
    proc, url, _ = start(run_dir, "--host", "0.0.0.0")
    try:
        port = url.rsplit(":", 1)[1].strip("/")
        busy = subprocess.run([sys.executable, "-m", "ninlab", "explore", str(run_dir), "--host",
                               "0.0.0.0", "--port", port], capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert busy.returncode == 2
        assert busy.stderr.splitlines()[-1] == (f"ninlab: error: port {port} on 0.0.0.0 is in "
                                                "use; pass another --port, or --port 0 for any "
                                                "free one.")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert "warning: --host 0.0.0.0 lets other machines reach the page" in err
    assert os.linesep.join(err.splitlines()).count("\n") == 0  # the warning, one line
