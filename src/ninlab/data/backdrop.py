"""The backdrop of a picture: what lies behind its objects, estimated from the picture's border.

A training image of Fashion-MNIST is an item on pure black. A photo or a scene a person brings is
an item on a backdrop: white, mid-grey, a gradient from a lamp, a cloth's texture, sensor noise.
Everything ninlab does to make such a picture look like the training images (cut to its object,
invert, scale its contrast; find items in a scene) starts from one estimate of that backdrop, made
here, from the pixels alone (never from the file's format or size):

- a plane per channel, v(r, c) = a + b r/(H-1) + c c/(W-1), fitted by least squares to the
  picture's frame (a band of BAND of its shorter side, at least one pixel), refitted twice
  without the frame pixels that lie over 3 robust deviations from it (an object touching the
  edge, a corner of a shadow). A flat backdrop is the plane b = c = 0: the border's median
  colour, as before; a lamp's straight gradient is the plane itself;
- a curved backdrop (a gradient that levels off, a vignette) leaves the frame off the plane
  along its edges: the four edges' departures (a running median along each, objects on the edge
  left out) are blended inwards as a Coons patch, and kept when they leave less than CURVED of
  the plane's deviation in the frame (noise does not: its running median is noise again);
- its noise: 1.4826 x the median absolute residual of the frame (a robust standard deviation),
  after the residual is smoothed by a k x k box when the raw noise is above NOISY (texture and
  sensor noise average out over a box; an object, larger than the box, does not);
- foreground: the pixels whose smoothed difference from the plane passes `threshold` (the
  larger of TOLERANCE and SIGMAS deviations of the smoothed frame) in some channel, then only
  the connected regions (8-connected) of at least SPECK of the largest one's pixels: noise and
  texture leave specks, an object leaves one or a few large regions (a sandal's straps).

`lift` then makes the picture like a training image: backdrop removed, the object's polarity
and contrast those of the training images' items (`ninlab.data.images.Look`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

BAND = 1 / 32  # width of the frame fitted, as a share of the shorter side (at least one pixel)
TOLERANCE = 12.75  # 5% of 255: the least difference from the backdrop that counts as an object
SIGMAS = 4.0  # a pixel is foreground beyond this many robust deviations of the frame's residual
NOISY = 3.0  # a frame noisier than this (robust deviation, 0-255) is smoothed before thresholding
SPECK = 0.05  # foreground regions under this share of the largest region's pixels are dropped
CURVED = 0.7  # the edges are kept when they leave less than this share of the plane's deviation
MAD_TO_STD = 1.4826  # median absolute deviation x this = standard deviation, for normal noise


@dataclass(frozen=True)
class Backdrop:
    """A picture's backdrop: a plane per channel and the noise around it."""

    coef: torch.Tensor  # C x 3: the plane of each channel, a + b r/(H-1) + c c/(W-1)
    size: tuple[int, int]  # (H, W) of the picture
    noise: float  # robust deviation of the frame's residual, after smoothing by `box`, 0-255
    box: int  # side of the smoothing box (1: none)
    edges: tuple[torch.Tensor, ...] | None = None  # the frame off the plane: top, bottom (C x W),
    # left, right (C x H); None: on the plane

    def image(self) -> torch.Tensor:
        """The backdrop as a float (C, H, W) picture (see `_image`), made once: foreground,
        object_sign and lift each subtract it, from one photo of millions of pixels."""
        return self._image

    @cached_property
    def _image(self) -> torch.Tensor:
        """The plane, plus the edges' departures from
        it blended inwards (a Coons patch: each point the mix of the four edges that a
        bilinear surface through them gives)."""
        h, w = self.size
        u = torch.linspace(0, 1, h)[:, None].expand(h, w)
        v = torch.linspace(0, 1, w)[None, :].expand(h, w)
        plane = torch.einsum("ck,khw->chw", self.coef, torch.stack([torch.ones(h, w), u, v]))
        if self.edges is None:
            return plane
        top, bottom, left, right = (e[:, None, :] if i < 2 else e[:, :, None]
                                    for i, e in enumerate(self.edges))  # fmt: skip
        c00 = ((top[:, :, 0] + left[:, 0]) / 2)[:, :, None]  # the corners, C x 1 x 1
        c01 = ((top[:, :, -1] + right[:, 0]) / 2)[:, :, None]
        c10 = ((bottom[:, :, 0] + left[:, -1]) / 2)[:, :, None]
        c11 = ((bottom[:, :, -1] + right[:, -1]) / 2)[:, :, None]
        ruled = (1 - u) * top + u * bottom + (1 - v) * left + v * right
        corners = (1 - u) * (1 - v) * c00 + (1 - u) * v * c01 + u * (1 - v) * c10 + u * v * c11
        blend = ruled - corners
        return plane + blend

    @property
    def colour(self) -> torch.Tensor:
        """The backdrop's colour at the picture's centre, per channel (C,)."""
        return self.coef[:, 0] + self.coef[:, 1] / 2 + self.coef[:, 2] / 2

    @property
    def level(self) -> float:
        """The brightness of the backdrop at the centre, 0-255: the mean of `colour`."""
        return self.colour.mean().item()

    def threshold(self) -> float:
        """The least smoothed difference from the plane that counts as foreground."""
        return max(TOLERANCE, SIGMAS * self.noise)


def frame_mask(h: int, w: int) -> torch.Tensor:
    """H x W booleans: the band of width max(1, BAND x the shorter side) along the edges."""
    band = max(1, round(BAND * min(h, w)))
    on = torch.ones(h, w, dtype=torch.bool)
    on[band : h - band, band : w - band] = False
    return on


def estimate_backdrop(x: torch.Tensor) -> Backdrop:
    """The backdrop of a (C, H, W) picture (uint8 or float, 0-255); see the module doc."""
    x = x.float()
    c, h, w = x.shape
    frame = frame_mask(h, w)
    rows, cols = frame.nonzero(as_tuple=True)
    basis = torch.stack([torch.ones(len(rows)), rows / max(h - 1, 1), cols / max(w - 1, 1)], 1)
    values = x[:, rows, cols].T  # n x C
    keep = torch.ones(len(rows), dtype=torch.bool)
    for _ in range(3):  # fit, then refit without the outliers of the last fit
        coef = torch.linalg.lstsq(basis[keep].double(), values[keep].double()).solution.float().T
        residual = (values - basis @ coef.T).abs().amax(1)  # n, the worst channel
        spread = MAD_TO_STD * residual[keep].median().item()
        keep = residual <= max(3 * spread, 1.0)
    backdrop = Backdrop(coef, (h, w), spread, 1)
    if spread > 1.0:  # off the plane: a curved backdrop, or noise; the edges decide which
        curved = Backdrop(coef, (h, w), spread, 1, _edges(x - backdrop.image(), 3 * spread))
        residual = (x - curved.image())[:, rows, cols].T.abs().amax(1)
        if MAD_TO_STD * residual.median().item() < CURVED * spread:
            backdrop = replace(curved, noise=MAD_TO_STD * residual.median().item())
    spread, edges = backdrop.noise, backdrop.edges
    if spread <= NOISY:
        return backdrop
    box = _box_side(spread, min(h, w))
    smooth = _smooth((x - backdrop.image()), box)[:, rows, cols].T.abs().amax(1)
    return Backdrop(coef, (h, w), MAD_TO_STD * smooth.median().item(), box, edges)


def _edges(residual: torch.Tensor, outlier: float) -> tuple[torch.Tensor, ...]:
    """The four edges' departures from the plane, from a (C, H, W) residual: the median across
    the band of each edge, values beyond `outlier` (an object touching the edge) set to 0 (the
    plane), then a running median along the edge of a 16th of its length (texture and noise
    out, a lamp's curve kept)."""
    c, h, w = residual.shape
    band = max(1, round(BAND * min(h, w)))
    profiles = [residual[:, :band].median(1).values, residual[:, -band:].median(1).values,
                residual[:, :, :band].median(2).values,
                residual[:, :, -band:].median(2).values]  # fmt: skip
    out = []
    for p in profiles:  # C x L
        p = torch.where(p.abs().amax(0) > outlier, 0.0, p)
        k = max(3, p.shape[1] // 16) // 2 * 2 + 1
        padded = F.pad(p[None], (k // 2, k // 2), mode="replicate")[0]
        out.append(padded.unfold(1, k, 1).median(2).values)
    return tuple(out)


def _box_side(noise: float, side: int) -> int:
    """The smoothing box for a frame this noisy: averaging k x k pixels divides the deviation of
    independent noise by k; k brings it under 2 NOISY, within an eighth of the shorter side
    (a larger box blurs an object's edge over more pixels)."""
    return int(max(3, min(-(-noise // (2 * NOISY)), side // 8)) // 2 * 2 + 1)  # odd


def _smooth(d: torch.Tensor, box: int) -> torch.Tensor:
    """A (C, H, W) difference averaged over box x box pixels (edges replicated)."""
    if box <= 1:
        return d
    pad = box // 2
    return F.avg_pool2d(F.pad(d[None], (pad,) * 4, mode="replicate"), box, 1)[0]


def difference(x: torch.Tensor, backdrop: Backdrop | None = None) -> torch.Tensor:
    """(C, H, W) picture minus its backdrop, smoothed as the backdrop's noise asks (float)."""
    backdrop = backdrop or estimate_backdrop(x)
    return _smooth(x.float() - backdrop.image(), backdrop.box)


def foreground(x: torch.Tensor, backdrop: Backdrop | None = None) -> torch.Tensor:
    """H x W booleans: the pixels of a (C, H, W) picture's objects (see the module doc)."""
    backdrop = backdrop or estimate_backdrop(x)
    on = difference(x, backdrop).abs().amax(0) > backdrop.threshold()
    if backdrop.box >= 5:  # the box spread each edge outwards by up to box // 2 pixels
        on = ~(F.max_pool2d((~on).float()[None, None], 3, 1, 1)[0, 0].bool())
    return drop_specks(on)


def drop_specks(on: torch.Tensor, share: float = SPECK) -> torch.Tensor:
    """A boolean H x W mask without its 8-connected regions under `share` of the largest's
    pixels."""
    from scipy import ndimage  # here: 0.4 s to import, and most commands never do

    labels, n = ndimage.label(on.numpy(), structure=np.ones((3, 3)))
    if n <= 1:
        return on
    sizes = np.bincount(labels.ravel())[1:]
    big = np.concatenate([[False], sizes >= share * sizes.max()])
    return torch.from_numpy(big[labels])


def regions(on: torch.Tensor, diagonal: bool = True) -> list[tuple[int, int, int, int]]:
    """The boxes (top, left, bottom, right; bottom and right exclusive) of a boolean mask's
    regions, 8-connected (4-connected without `diagonal`), largest first (the first in raster
    order on a tie)."""
    from scipy import ndimage

    labels, n = ndimage.label(on.numpy(), structure=np.ones((3, 3)) if diagonal else None)
    if not n:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    found = ndimage.find_objects(labels)
    order = np.argsort(-sizes, kind="stable")
    return [(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in (found[i] for i in order)]


def mask_box(on: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of the true pixels of an H x W mask; None when none are."""
    rows, cols = on.any(1).nonzero()[:, 0], on.any(0).nonzero()[:, 0]
    if len(rows) == 0:
        return None
    return rows[0].item(), cols[0].item(), rows[-1].item() + 1, cols[-1].item() + 1


def object_sign(x: torch.Tensor, on: torch.Tensor, backdrop: Backdrop) -> int:
    """+1 when the objects (the mask `on`) are brighter than the backdrop, -1 when darker: the
    sign of the summed difference over their pixels (a shadow, fainter, does not outweigh
    the object); +1 for an empty mask."""
    d = difference(x, backdrop).mean(0)[on]
    return -1 if d.sum() < 0 else 1


def lift(
    x: torch.Tensor,
    backdrop: Backdrop,
    sign: int,
    background: float,
    contrast: float | None,
    on: torch.Tensor | None = None,
) -> torch.Tensor:
    """A (C, H, W) picture made like a training image: v = background + s (g max(0, sign d - t)),
    d the smoothed difference from the backdrop, t the backdrop's noise threshold less
    TOLERANCE (0 on a clean backdrop, so that a clean picture keeps its values), s +1 when the
    training background is dark (below 127.5) and -1 when light, and g the gain that brings the
    objects' 99th percentile (over the mask `on`) to `contrast` (None: g = 1), at most MAX_GAIN.
    Returns uint8."""
    d = (sign * difference(x, backdrop) - (backdrop.threshold() - TOLERANCE)).clamp_min(0)
    gain = 1.0
    if contrast is not None:
        on = foreground(x, backdrop) if on is None else on
        strong = d.amax(0)[on]
        if len(strong):
            top = strong.quantile(0.99).item() if len(strong) < 2**24 else strong.max().item()
            gain = min(max(contrast / max(top, 1e-6), 1.0), MAX_GAIN)
    s = 1.0 if background < 127.5 else -1.0
    return (background + s * gain * d).round().clamp(0, 255).to(torch.uint8)


MAX_GAIN = 8.0  # a faint object is raised at most this much: beyond it is noise made loud
