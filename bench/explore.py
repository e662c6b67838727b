"""Latency of each interaction of `ninlab explore`, over HTTP, against the 300 ms goal.

    python bench/explore.py RUN_DIR [--repeats 50] [--screenshots DIR]

Starts `ninlab explore RUN_DIR --port 0` as a user would (its own process, torch's threads), then
times each interaction as the page makes it, request after request on a fresh connection, from
the first byte sent to the last byte of the last answer:
  new test image   the picture, its predicted class's map and the chosen layer's grid
  upload           the same, for a 28x28 PNG sent as the request's body
  photo upload     the same, for a 640x480 JPEG of the item dark on white (cut to the object,
                   inverted: made like a training image as `ninlab predict` makes it)
  class click      the map of a class not asked for before on that picture (computed, not
                   cached: each repeat takes a fresh picture, untimed)
  layer choice     a layer's grid of feature maps (each repeat another layer)
  unit click       a unit's window, activation and share (each repeat another layer and unit)
  sample scene     a 112 px scene of three test images, located (no goal: a new scene)
Prints R and the bf16 rate (bench/machine.py), then the median and 95th percentile of each over
--repeats, their cost (median s x R / 1000), and whether the median meets the goal.
--screenshots DIR then writes explore-VIEW.png of each view at 1400 px (and explore-picture-420.png)
in Debian's Chromium through Playwright: the pictures of docs/explore.md.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from functools import partial
from pathlib import Path

from machine import describe, matmul_rate
from PIL import Image

GOAL_MS = 300


def call(url: str, path: str, body: bytes | None = None, headers: dict | None = None) -> dict:
    request = urllib.request.Request(url + path, data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=120) as r:
        return json.loads(r.read())


def post_json(url: str, path: str, body: dict) -> dict:
    return call(url, path, json.dumps(body).encode(), {"Content-Type": "application/json"})


def timed(fn, *args) -> float:
    """Milliseconds of fn(*args)."""
    t0 = time.perf_counter()
    fn(*args)
    return 1000 * (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--screenshots", metavar="DIR", help="write a screenshot of each view here")
    args = p.parse_args()
    rate = matmul_rate()
    print(describe(rate))
    command = [sys.executable, "-m", "ninlab", "explore", args.run_dir, "--port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://\S+/", line)
        if not found:
            sys.exit(f"ninlab explore did not start: {line}{proc.stderr.read()}")
        url = found.group(0)
        times = measure(url, args.repeats)
        if args.screenshots:
            shots = screenshots(url, Path(args.screenshots))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    print(f"\n{line.strip()}\n{args.repeats} repeats of each interaction over HTTP (ms)\n")
    print(f"{'interaction':<16} {'median':>8} {'p95':>8} {'cost':>10}  goal")
    for name, ms in times.items():
        median = statistics.median(ms)
        p95 = statistics.quantiles(ms, n=20)[-1]
        goal = "-" if name == "sample scene" else (
            f"{'meets' if median <= GOAL_MS else 'MISSES'} {GOAL_MS} ms"
            + ("" if p95 <= GOAL_MS else " (p95 over)"))  # fmt: skip
        print(f"{name:<16} {median:8.1f} {p95:8.1f} {median / 1000 * rate / 1000:10.5f}  {goal}")
    print("\ncost = median s x R / 1000 (TFLOP at this machine's fp32 peak)")
    if args.screenshots:
        print("\n".join(f"wrote {path}" for path in shots))


def measure(url: str, repeats: int) -> dict[str, list[float]]:
    about = call(url, "api/about")
    layers = [layer["name"] for layer in about["layers"]]
    n, classes = about["test_images"], len(about["classes"])
    if not n:
        sys.exit("the run's test images cannot be read here; the bench needs them.")
    rng = random.Random(0)
    names = ("new test image", "upload", "photo upload", "class click", "layer choice",
             "unit click", "sample scene")  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in names}
    shown = layers[0]

    def picture(make) -> dict:
        pic = make()  # then, as the page does: the predicted class's map and the layer's grid
        call(url, f"api/picture/{pic['id']}/class/{pic['predicted']}")
        call(url, f"api/picture/{pic['id']}/layer?name={shown}")
        return pic

    items = []  # the test images as a user would save them: 28x28 PNGs, and 640x480 photos
    for k in range(repeats):
        pic = post_json(url, "api/test-picture", {"index": k % n})
        items.append(Image.open(io.BytesIO(urllib.request.urlopen(pic["png"]).read())))
    pngs = [encoded(img, "PNG") for img in items]
    photos = [encoded(photo(img), "JPEG") for img in items]

    def send(data: bytes, name: str) -> dict:
        headers = {"X-Filename": name, "Content-Type": "application/octet-stream"}
        return picture(partial(call, url, "api/picture", data, headers))

    for k in range(repeats):
        index = rng.randrange(n)
        new = partial(post_json, url, "api/test-picture", {"index": index})
        times["new test image"].append(timed(picture, new))
        times["upload"].append(timed(send, pngs[k], f"item{k}.png"))
        times["photo upload"].append(timed(send, photos[k], f"photo{k}.jpg"))
        pic = picture(new)  # untimed: a picture none of whose other maps is made yet
        other = (pic["predicted"] + 1 + rng.randrange(classes - 1)) % classes
        at = f"{url}api/picture/{pic['id']}"
        times["class click"].append(timed(call, at, f"/class/{other}"))
        layer = layers[k % len(layers)]
        times["layer choice"].append(timed(call, at, f"/layer?name={layer}"))
        c, h, w = next(x["shape"] for x in about["layers"] if x["name"] == layer)
        q = f"layer={layer}&channel={rng.randrange(c)}&i={rng.randrange(h)}&j={rng.randrange(w)}"
        times["unit click"].append(timed(call, at, f"/unit?{q}"))
        times["sample scene"].append(timed(post_json, url, "api/sample-scene", {"seed": k}))
    return times


def screenshots(url: str, out: Path) -> list[Path]:
    """A screenshot of each view (Picture with another class's map, Units with a unit of the
    layer two thirds of the way down clicked, Scene with a sample scene, Model) at 1400 px, and
    Picture at 420."""
    from playwright.sync_api import sync_playwright  # only for --screenshots

    out.mkdir(parents=True, exist_ok=True)
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        for width in (1400, 420):
            page = browser.new_page(viewport={"width": width, "height": 760})
            page.goto(url)
            page.wait_for_selector("body[data-ready=yes]")
            page.fill("#test-index", "12")
            page.click("#by-index button")
            page.wait_for_selector("body[data-busy='0']")
            page.click("#top5 li:nth-child(2) button")
            page.wait_for_selector("body[data-busy='0']")
            views = ("picture", "units", "scene", "model") if width == 1400 else ("picture",)
            for view in views:
                page.click(f"nav button[data-view={view}]")
                if view == "units":
                    layers = [x["name"] for x in page.evaluate("state.about.layers")]
                    page.select_option("#layer", layers[2 * len(layers) // 3])  # a deep one
                    page.wait_for_selector("body[data-busy='0']")
                    grid = page.locator("#grid")
                    scale = grid.evaluate("g => g.clientWidth / g.naturalWidth")
                    grid.click(position={"x": 3.5 * scale, "y": 2.5 * scale})
                if view == "scene":
                    page.click("#sample-scene")
                page.wait_for_selector("body[data-busy='0']")
                name = f"explore-{view}{'' if width == 1400 else f'-{width}'}.png"
                page.screenshot(path=out / name, full_page=view != "model")
                written.append(out / name)
        browser.close()
    return written


def encoded(img: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def photo(item: Image.Image) -> Image.Image:
    """A product photo of a test item: dark on white, 336 px tall, on a 640x480 RGB canvas."""
    dark = Image.eval(item.convert("L"), lambda v: 255 - v).resize((336, 336), Image.BILINEAR)
    canvas = Image.new("RGB", (640, 480), (255, 255, 255))
    canvas.paste(dark.convert("RGB"), (152, 72))
    return canvas


if __name__ == "__main__":
    main()
