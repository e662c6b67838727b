"""A self-contained HTML page that reads on any screen: the pieces `ninlab.viz.report` lays a
run out with.

Every image is a PNG inside the file (a base64 data URI); nothing loads from the network, and
there is no external CSS or JavaScript. The page reads at a phone's 420 px as at 1400 px: a
viewport tag, tables and wide text in boxes that scroll sideways, and figures that never shrink
below the width at which their smallest text is MIN_TEXT_PX high (each <img> carries that text's
height in the PNG, `data-text-px`, from `ninlab.plotting.smallest_text_px`).

A tiny inline script checks, on load, that every image decoded, that no script error happened,
that the page does not overflow sideways and how small its text is drawn, and writes the result
into the hidden #report-status element (data-images, data-broken, data-errors, data-viewport,
data-overflow, data-figure-text, data-html-text, data-loaded), which the browser test reads.
"""

from __future__ import annotations

import base64
import html
import io

import torch
from matplotlib.figure import Figure
from PIL import Image

from ninlab.plotting import png_bytes, smallest_text_px

MIN_TEXT_PX = 9  # the smallest text the page may draw, in CSS pixels at 100% zoom
THUMB = 84  # side of a thumbnail, px

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px;
       padding: 0 12px; color: #222; }
h1 { font-size: 1.45em; overflow-wrap: anywhere; } h2 { border-bottom: 1px solid #ccc;
  margin-top: 2em; } code { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 14px; }
td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.key { font-weight: 600; white-space: nowrap; }
table.matrix td { text-align: right; min-width: 2.6em; }
table.matrix th { font-size: 12px; font-weight: 600; }
td.diag { background: #e4e4e4; font-weight: 600; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
img { max-width: 100%; height: auto; } .panels { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figcaption { font-size: 13px; max-width: 520px; }
.thumbs figure { width: 190px; } .thumbs figcaption { font-size: 12px; }
.wrong figcaption b { color: #b00; } nav a { margin-right: 1em; white-space: nowrap; }
.legend { display: inline-block; width: 160px; height: 12px; vertical-align: middle;
  background: linear-gradient(to right, #fff, #b00); border: 1px solid #ccc; }
.verdict { font-weight: 600; }
"""

# Runs before anything else: records script errors and console.error; on load checks the images,
# sideways overflow and the smallest text drawn (HTML text, and figures' text as scaled).
CHECK_SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message || e)); });
  var consoleError = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
    var figureText = Infinity;
    images.forEach(function (i) {
      var px = parseFloat(i.getAttribute("data-text-px"));
      if (px > 0 && i.naturalWidth > 0) {
        figureText = Math.min(figureText, px * i.getBoundingClientRect().width / i.naturalWidth);
      }
    });
    var htmlText = Infinity;
    Array.prototype.forEach.call(document.body.querySelectorAll("*"), function (el) {
      var own = Array.prototype.some.call(el.childNodes, function (n) {
        return n.nodeType === 3 && n.textContent.trim();
      });
      if (own && el.offsetParent !== null) {
        htmlText = Math.min(htmlText, parseFloat(getComputedStyle(el).fontSize));
      }
    });
    var root = document.documentElement;
    var s = document.getElementById("report-status");
    s.setAttribute("data-images", String(images.length));
    s.setAttribute("data-broken", String(broken.length));
    s.setAttribute("data-errors", String(errors.length));
    s.setAttribute("data-viewport", String(root.clientWidth));
    s.setAttribute("data-overflow", String(Math.max(0, root.scrollWidth - root.clientWidth)));
    s.setAttribute("data-figure-text", figureText.toFixed(1));
    s.setAttribute("data-html-text", htmlText.toFixed(1));
    s.textContent = errors.join("\\n");
    s.setAttribute("data-loaded", "yes");
  });
})();
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def esc(value) -> str:
    return html.escape(str(value))


def image(png: bytes, alt: str, text_px: float | None = None) -> str:
    """An image at most its natural width; one with text never narrower than the width at which
    that text is MIN_TEXT_PX high (a narrow screen scrolls its box sideways instead)."""
    with Image.open(io.BytesIO(png)) as im:
        width = im.width
    attrs = f'width="{width}"'
    if text_px:
        least = min(width, int(width * MIN_TEXT_PX / text_px + 1))
        attrs += f' data-text-px="{text_px:.1f}" style="min-width: {least}px"'
    return f'<img src="{data_uri(png)}" alt="{esc(alt)}" {attrs}>'


def picture(fig: Figure, alt: str) -> str:
    """A matplotlib figure as a scrollable image."""
    return f'<div class="scroll">{image(png_bytes(fig), alt, smallest_text_px(fig))}</div>'


def table(rows: list[tuple], header: tuple, numeric=frozenset(), keys: bool = False) -> str:
    """A table in a box that scrolls sideways; keys: the first column names each row."""

    def cell(k, v, tag="td"):
        if keys and k == 0 and tag == "td":
            return f'<th class="key">{esc(v)}</th>'
        cls = ' class="num"' if k in numeric and tag == "td" else ""
        return f"<{tag}{cls}>{esc(v)}</{tag}>"

    head = "".join(cell(k, h, "th") for k, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell(k, v) for k, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def matrix(classes: list[str], text, tint) -> str:
    """An HTML confusion table: text(i, j) in each cell, tinted tint(i, j) in [0, 1] (None: the
    diagonal, grey)."""
    head = "<th>true \u2193 / predicted \u2192</th>" + "".join(
        f"<th>{esc(c)}</th>" for c in classes
    )
    rows = []
    for i, name in enumerate(classes):
        cells = []
        for j in range(len(classes)):
            t = tint(i, j)
            if t is None:
                cells.append(f'<td class="diag">{text(i, j)}</td>')
            else:
                a = f"{0.85 * t:.2f}"
                fg = "#fff" if t > 0.55 else "#222"
                cells.append(
                    f'<td style="background: rgba(187,0,0,{a}); color: {fg}">{text(i, j)}</td>'
                )
        rows.append(f"<tr><th>{esc(name)}</th>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table class="matrix"><tr>{head}</tr>{"".join(rows)}</table></div>'


def thumbnail(display) -> str:
    """The image as the model sees it (size and channels), enlarged to THUMB px without
    smoothing."""
    pixels = (torch.as_tensor(display) * 255).round().to(torch.uint8).numpy()
    im = Image.fromarray(pixels).resize((THUMB, THUMB), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return image(buf.getvalue(), "test image")


def page(title: str, heading: str, lead: str, sections: dict[str, tuple[str, str]]) -> str:
    """The whole page: `heading` (text), `lead` (HTML), a menu, and sections {id: (title,
    HTML)} in order."""
    nav = "".join(f'<a href="#{k}">{esc(t)}</a> ' for k, (t, _) in sections.items())
    body = "".join(
        f'<section id="{k}"><h2>{esc(t)}</h2>{part}</section>' for k, (t, part) in sections.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{STYLE}</style>
<script>{CHECK_SCRIPT}</script>
</head><body>
<div id="report-status" hidden></div>
<h1>{esc(heading)}</h1>
<p>{lead}</p>
<nav>{nav}</nav>
{body}
</body></html>
"""
