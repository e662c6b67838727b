"""`ninlab explore` in a real browser: Debian's Chromium driven by Playwright (its own browser
download cannot be reached here, so `executable_path` points at /usr/bin/chromium). The page's
top class must be `ninlab predict`'s for the same file, and a clicked unit's box the window
`ninlab summary --json` gives for that layer and unit."""

import json
import re
import shutil
import signal
import subprocess
import sys

import pytest
from PIL import Image

from ninlab.data import load_dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# as root in a closed network: no sandbox, no GPU, no background connections
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--disable-quic"]  # fmt: skip
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: apt-get "
                                 "install chromium")]  # fmt: skip


def ninlab(*argv) -> str:
    done = subprocess.run([sys.executable, "-m", "ninlab", *map(str, argv)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def served(small_run):
    """`ninlab explore` on a small run (untrained nin_fast, 20 random test images): its URL and
    the folder of the run and its data; stopped with Ctrl-C at the end."""
    root = small_run
    proc = subprocess.Popen([sys.executable, "-m", "ninlab", "explore", str(root / "run"),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    line = proc.stdout.readline()
    url = re.search(r"http://\S+/", line)
    assert url, line + (proc.stderr.read() if proc.poll() is not None else "")
    yield url.group(0), root
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == "", err


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def open_page(browser, url, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready=yes]")
    return page


def settle(page):
    page.wait_for_selector("body[data-busy='0']")


def upload(page, selector, path=None, name=None, data=None):
    files = path if path is not None else {"name": name, "mimeType": "image/png", "buffer": data}
    page.set_input_files(selector, files)
    settle(page)


def test_the_top_class_is_predicts_and_a_units_box_is_the_summarys(served, browser, tmp_path):
    url, root = served
    pixels, _ = load_dataset("fashion-mnist", data_dir=str(root / "data")).test_item(7)
    png = tmp_path / "item.png"
    Image.fromarray(pixels[0, 0].numpy()).save(png)

    page = open_page(browser, url, 1400)
    upload(page, "#picture-file", path=str(png))
    assert page.text_content("#picture-line").startswith("item.png: 28x28 L -> 28x28 L")
    top = page.get_attribute("#top5 li:first-child button", "data-class")
    predicted = ninlab("predict", root / "run", png).splitlines()[1].split()[0]
    assert top == predicted

    # unit (2, 3) of the first tile of features.pool2: 7 x 7 tiles with a 1 px gap
    page.click("nav button[data-view=units]")
    page.select_option("#layer", "features.pool2")
    settle(page)
    grid = page.locator("#grid")
    scale = grid.evaluate("g => g.clientWidth / g.naturalWidth")
    grid.click(position={"x": (3 + 0.5) * scale, "y": (2 + 0.5) * scale})
    settle(page)
    info = page.locator("#unit-info")
    assert info.get_attribute("data-unit") == "2,3"
    channel = int(info.get_attribute("data-channel"))
    assert f"channel {channel}, unit (2, 3)" in info.text_content()

    rows = json.loads(ninlab("summary", "nin_fast", "--json"))["layers"]
    field = next(r for r in rows if r["name"] == "features.pool2")["field"]
    (size, _), (jump, _), (start, _) = field["size"], field["jump"], field["start"]
    top_, left = start + 2 * jump, start + 3 * jump
    want = [max(top_, 0), max(left, 0), min(top_ + size, 28), min(left + size, 28)]
    box = page.locator("#unit-box")
    assert box.get_attribute("data-box") == ",".join(map(str, want)) == "4,8,16,20"
    assert f"rows {want[0]}–{want[2] - 1}, columns {want[1]}–{want[3] - 1}" in info.text_content()
    # the box drawn where it says: 12 CSS px per input pixel on a 336 px stage
    stage = page.locator("#units-stage").bounding_box()
    drawn = box.bounding_box()
    px = stage["width"] / 28
    assert drawn["y"] - stage["y"] == pytest.approx(want[0] * px, abs=1)
    assert drawn["x"] - stage["x"] == pytest.approx(want[1] * px, abs=1)
    assert drawn["height"] == pytest.approx((want[2] - want[0]) * px, abs=1)
    assert drawn["width"] == pytest.approx((want[3] - want[1]) * px, abs=1)
    assert page.errors == []


def test_an_empty_file_gets_its_message(served, browser, tmp_path):
    url, _ = served
    page = open_page(browser, url, 1400)
    upload(page, "#picture-file", name="empty.png", data=b"")
    message = page.locator("#picture-message")
    assert message.is_visible()
    assert message.text_content() == "empty.png is not a readable image: the file is empty."
    assert page.errors == ["Failed to load resource: the server responded with a status of 400 "
                           "(Bad Request)"]  # the refusal itself, and no script error  # fmt: skip
    # over the upload limit (32 MB): refused by the page itself, before a byte is sent
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as f:
        f.truncate(33 * 2**20)  # sparse: read by the browser from disk, not sent through
    upload(page, "#picture-file", path=str(huge))
    assert message.text_content() == ("huge.png is 33.0 MB, over the 32.0 MB the page takes; make "
                                      "it smaller first.")  # fmt: skip
    assert len(page.errors) == 1


def test_two_tabs_keep_their_own_pictures(served, browser):
    url, _ = served
    one, two = open_page(browser, url, 1400), open_page(browser, url, 1400)
    one.fill("#test-index", "5")
    one.click("#by-index button")
    settle(one)
    two.fill("#test-index", "6")
    two.click("#by-index button")
    settle(two)
    one.click("#top5 li:nth-child(3) button")  # another class's map in tab one
    settle(one)
    assert one.text_content("#picture-line").startswith("test image 5 ")
    assert two.text_content("#picture-line").startswith("test image 6 ")
    assert "map of" in one.text_content("#map-lines")


@pytest.mark.parametrize("width", [420, 1400])
def test_every_view_fits_the_screen(served, browser, tmp_path, width):
    url, _ = served
    page = open_page(browser, url, width)
    for view in ("picture", "units", "scene", "model"):
        page.click(f"nav button[data-view={view}]")
        if view == "units":
            page.locator("#grid").click(position={"x": 2, "y": 2})
        if view == "scene":
            page.click("#sample-scene")
        settle(page)
        page.screenshot(path=tmp_path / f"{view}-{width}.png", full_page=True)
        assert (tmp_path / f"{view}-{width}.png").stat().st_size > 5000
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{view} at {width} px is {wide} px wide"
    assert page.locator("#summary tr").count() == 25  # a header and nin_fast's 24 rows
    assert page.errors == []
