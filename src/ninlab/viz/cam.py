"""Class activation maps drawn: the input with the box of the strongest unit's field, the map
over it, and the report's panels (the maps themselves are computed in `ninlab.analysis.cam`)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ninlab.analysis.cam import CAM, boxes_shown
from ninlab.plotting import figure, save_png


def draw_cam(ax, display, cam: CAM, alpha: float = 0.5, box: bool = True, scale=None):
    """Draw the image (H, W) or (H, W, 3) in [0, 1], the map over it (alpha 0: no map) and the box
    with the field centre of the strongest unit; returns the map's image (for a colour bar), or
    None. scale: (low, high) of the colour map (default: the map's own range).

    Each map cell is drawn centred on its unit's field centre, one jump wide, so the picture and
    the box agree with the field arithmetic (no resampling guesswork).
    """
    h, w = cam.input_size
    ax.imshow(display, cmap="gray", vmin=0, vmax=1, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    mh, mw = cam.map.shape
    (r0, c0), (r1, c1) = cam.field.center(0, 0), cam.field.center(mh - 1, mw - 1)
    jr, jc = cam.field.jump
    extent = (c0 - jc / 2, c1 + jc / 2, r1 + jr / 2, r0 - jr / 2)
    shown = None
    if alpha > 0:
        m = cam.map.float()
        lo, hi = scale or (float(m.min()), float(m.max()))
        shown = ax.imshow(
            m.numpy(),
            cmap="jet",
            alpha=alpha,
            extent=extent,
            interpolation="bilinear",
            vmin=lo,
            vmax=hi if hi > lo else lo + 1,
        )
    if box:
        top, left, bottom, right = cam.box
        corner = (left - 0.5, top - 0.5)
        edge = "white" if alpha > 0 else "red"
        ax.add_patch(
            Rectangle(corner, right - left, bottom - top, fill=False, edgecolor=edge, linewidth=2)
        )
        ax.plot([cam.center[1]], [cam.center[0]], "+", color=edge, markersize=10, mew=2)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    return shown


def cam_panels(display, cam: CAM, classes: list[str], true_cam: CAM | None = None):
    """The report's picture of one prediction: the input | the predicted class's map over it |
    for a mistake, the true class's map on the same colour scale; a colour bar (map units: the
    class's evidence, whose mean is the logit for a class map or CAM). The boxes and "+" (the
    strongest unit's field and its centre) are drawn unless a box covers more than BOX_MOST of
    the image (`boxes_shown`)."""
    cams = [cam] + ([true_cam] if true_cam is not None else [])
    lo = min(float(c.map.min()) for c in cams)
    hi = max(float(c.map.max()) for c in cams)
    box = boxes_shown(cams)
    fig = Figure(figsize=(1.45 * (1 + len(cams)) + 0.7, 2.2), layout="constrained")
    axes = fig.subplots(1, 1 + len(cams))
    axes[0].imshow(display, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("input", fontsize=9)
    axes[0].axis("off")
    for ax, c, what in zip(axes[1:], cams, ("predicted", "true"), strict=False):
        shown = draw_cam(ax, display, c, box=box, scale=(lo, hi))
        ax.set_title(f"{what}\n{classes[c.class_index]}", fontsize=9)
    bar = fig.colorbar(shown, ax=list(axes), fraction=0.05, pad=0.02)
    bar.ax.tick_params(labelsize=9)
    return fig


def cam_figure(display, cam: CAM, classes: list[str], title: str = "", native: bool = False):
    """Two panels: the input with the box, and the map over the input with the box. native: the
    picture at its own size, its class named elsewhere (`CAM.lines`), so the heading gives the
    class's probability at that size and what its one forward predicts."""
    fig, (ax1, ax2) = figure(1, 2, figsize=(8, 4.3))
    draw_cam(ax1, display, cam, alpha=0.0)
    where = " on the object" if cam.allowed is not None else ""
    ax1.set_title(f"input, box = field of the strongest unit{where}", fontsize=9)
    draw_cam(ax2, display, cam)
    exact = {True: ", mean = logit", False: ", mean != logit", None: ""}[cam.exact]
    ax2.set_title(f"{cam.method}: {classes[cam.class_index]}{exact}", fontsize=9)
    name, said = classes[cam.class_index], classes[cam.predicted]
    head = f"predicted {said}; map of {name} ({100 * cam.prob:.1f}%)"
    if native:
        head = f"map of {name} at its own size ({100 * cam.prob:.1f}%; its forward predicts {said})"
    fig.suptitle(f"{title}\n{head}" if title else head, fontsize=10)
    fig.tight_layout()
    return fig


def plot_cam(
    display, cam: CAM, classes: list[str], path: str | Path, title: str = "", native: bool = False
) -> Path:
    """Write the CAM figure as a PNG; returns the path."""
    return save_png(cam_figure(display, cam, classes, title, native), path)
