"""Receptive fields: one window of input pixels per output unit, and when there is none.

Araujo, Norris, Sim, "Computing Receptive Fields of Convolutional Neural Networks" (Distill 2019),
per axis, for a layer with kernel k, stride s, padding p, dilation d:
  r_out = r_in + (d (k - 1)) j_in      field size in input pixels
  j_out = j_in s                       jump: input pixels between neighbouring output units
  start_out = start_in - p j_in        first input pixel seen by output unit 0
Output unit i sees input pixels start + i jump ... start + i jump + size - 1; `start` is negative
where the field hangs over the zero padding, and the field is not clipped to the image.

A merge (inception concatenation, residual addition) takes the union of its inputs' fields. As in
the Distill paper's library, the inputs must be aligned: the same jump and the same centre, else
there is no single window and `union` says why. A global input (a squeeze-excitation gate after
global pooling) sees the whole map and is broadcast over the other inputs' units.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ninlab.models.layers import pair


@dataclass(frozen=True)
class Field:
    """Receptive field of output unit (0, 0) in input pixels, per axis (height, width). A `whole`
    field is the same window for every unit: each one sees the whole map (after global pooling,
    a gate of squeeze-excitation, attention)."""

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]
    whole: bool = False

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """Input pixels seen by output unit (i, j): (top, left, bottom, right), end exclusive."""
        top = self.start[0] + (0 if self.whole else i * self.jump[0])
        left = self.start[1] + (0 if self.whole else j * self.jump[1])
        return top, left, top + self.size[0], left + self.size[1]

    def center(self, i: int, j: int) -> tuple[float, float]:
        """Centre of unit (i, j)'s field in input pixel coordinates (row, column)."""
        top, left, bottom, right = self.box(i, j)
        return (top + bottom - 1) / 2, (left + right - 1) / 2

    def after(self, k, s, p, d=(1, 1)) -> Field:
        """The field after a window of kernel k, stride s, padding p, dilation d (per axis)."""
        jump = tuple(j * s_ for j, s_ in zip(self.jump, s, strict=True))
        if self.whole:  # every unit below already sees the whole map
            return Field(self.size, jump, self.start, whole=True)
        return Field(
            size=tuple(
                r + d_ * (k_ - 1) * j
                for r, k_, d_, j in zip(self.size, k, d, self.jump, strict=True)
            ),
            jump=jump,
            start=tuple(st - p_ * j for st, p_, j in zip(self.start, p, self.jump, strict=True)),
        )

    def padded(self, top: int, left: int) -> Field:
        """The field after padding `top` rows and `left` columns before the map."""
        if self.whole:
            return self
        start = (self.start[0] - top * self.jump[0], self.start[1] - left * self.jump[1])
        return Field(self.size, self.jump, start)

    def text(self, which: str) -> str:
        h, w = getattr(self, which)
        return str(h) if h == w else f"{h}x{w}"


PIXEL = Field(size=(1, 1), jump=(1, 1), start=(0, 0))


def whole(f: Field, hw: tuple[int, int], keep_jump: bool = False) -> Field:
    """The field of units that see the whole h x w map: the union of its units' windows, the
    same for every unit. `keep_jump` keeps the map's jump (units of a map, as after attention)
    instead of the jump of one window as large as the map (a vector, as after global pooling)."""
    g = f.after(hw, hw, (0, 0))
    return Field(g.size, f.jump if keep_jump else g.jump, g.start, whole=True)


def union(local: list[Field], broadcast: list[Field] = ()) -> tuple[Field | None, str]:
    """The field of a merge: (field, "") or (None, why). `local` are the fields of inputs with the
    merge's own units; `broadcast` those of global inputs spread over every unit (a gate)."""
    if not local and not broadcast:
        return None, "nothing to merge"
    jumps = sorted({f.jump for f in local})
    if len(jumps) > 1:
        shown = " and ".join("x".join(map(str, j)) if j[0] != j[1] else str(j[0]) for j in jumps)
        return None, f"branches with different jumps ({shown} px): no single window"
    centres = sorted({f.center(0, 0) for f in local})
    if len(centres) > 1:
        (a, b), (c, d) = centres[0], centres[-1]
        return None, f"branches misaligned: their centres differ by ({c - a:g}, {d - b:g}) px"
    every = [*local, *broadcast]
    start = tuple(min(f.start[a] for f in every) for a in (0, 1))
    end = tuple(max(f.start[a] + f.size[a] for f in every) for a in (0, 1))
    size = tuple(e - s for e, s in zip(end, start, strict=True))
    return Field(size, every[0].jump, start, whole=bool(broadcast)), ""


def conv_window(kernel, stride, padding, dilation) -> tuple:
    """(k, s, p, d) per axis of a convolution, module or functional; padding may be "valid" or
    "same" (torch pads the extra row and column of an even kernel after: p is the top/left)."""
    k, s, d = pair(kernel), pair(stride), pair(dilation)
    if padding == "valid":
        p = (0, 0)
    elif padding == "same":
        p = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d, strict=True))
    else:
        p = pair(padding)
    return k, s, p, d


def window(m: nn.Module, in_hw: tuple[int, int]) -> tuple | None:
    """(k, s, p, d) of a windowed module, per axis; None when the window is not fixed."""
    if isinstance(m, nn.Conv2d):
        return conv_window(m.kernel_size, m.stride, m.padding, m.dilation)
    if isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
        k = pair(m.kernel_size)
        s = pair(m.stride if m.stride is not None else m.kernel_size)
        d = pair(getattr(m, "dilation", 1))
        return k, s, pair(m.padding), d
    if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        out = pair(m.output_size)
        out = tuple(i if o is None else o for o, i in zip(out, in_hw, strict=False))
        if any(i % o for i, o in zip(in_hw, out, strict=False)):
            return None  # windows of unequal size: no single field
        k = tuple(i // o for i, o in zip(in_hw, out, strict=False))
        return k, k, (0, 0), (1, 1)
    return None


def no_window(m: nn.Module) -> str:
    """Why a module with spatial reach has no single window ("" when it has one)."""
    if isinstance(m, nn.Conv2d) and m.padding_mode == "circular":
        return "circular padding wraps the field around the image"
    if isinstance(m, nn.ConvTranspose2d):
        return "a transposed convolution spreads each pixel over several units"
    if isinstance(m, nn.Upsample):
        return "interpolation: neighbouring units share input pixels unevenly"
    return ""
