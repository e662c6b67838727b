"""What the live page computes: a run loaded once, pictures whose maps are computed once, and the
answer to each thing a person does on the page, as plain data (no HTTP here: `ninlab.explore.app`
serves it).

A picture (a test image, or a file made like a training image exactly as `ninlab predict` makes
it) has one forward pass with a hook on every layer that has a map, so that choosing a layer or
a unit later costs no forward. Its class maps (`ninlab.analysis.cam`, the report's method) are
computed per class on the first request and kept. A unit's window is the receptive field that
`ninlab summary` gives for its layer (`Field.box`), clipped to the image; where the layer's
field is no single window, the summary's note says why. For the layer whose units are the class
map's cells, a unit's share of the class's logit is its cell divided by the number of cells
(GAP: mean(map) = logit, exactly, for a NiN's class map and for CAM).

Pictures are kept newest first until their maps exceed BUDGET bytes; each has a random id, so
two browser tabs never see each other's.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ninlab.analysis.cam import CAM, cam_method, class_activation_map
from ninlab.analysis.stages import stage_outputs
from ninlab.analysis.summary import Summary, summary
from ninlab.data import Dataset
from ninlab.data.images import UnreadableImage
from ninlab.errors import NinlabError
from ninlab.locate import MIN_SCORE, locate
from ninlab.locate.scenes import make_scene
from ninlab.runs import Run
from ninlab.runs.inputs import Picked, class_index, display_image, file_image, training_look
from ninlab.runs.run import probabilities_note
from ninlab.viz.features import channel_grid, value_range
from ninlab.viz.page import data_uri
from ninlab.viz.raster import colour_png, colour_stops, display_png, pixels_png

MIN_SIDE = 8  # px: a picture with a shorter side shows nothing a model can classify
MAX_CHANNELS = 32  # channels of a layer shown, strongest first (as `ninlab features`)
BUDGET = 256 * 2**20  # bytes of maps kept for all pictures together
SCENE_SIDES = 4  # training images across a sample scene (112 px at 28, as bench/wild_scenes.py)


@dataclass
class Picture:
    """One image looked at, with everything computed on it once."""

    id: str
    name: str
    line: str  # how it was prepared (`Preparation.line`), or "test image 3, a Bag"
    image: torch.Tensor  # uint8 (1, C, H, W) at the model's input size
    label: int | None  # its true class, for a test image
    probs: torch.Tensor  # (classes,) as `ninlab predict` gives them
    outputs: dict[str, torch.Tensor]  # layer -> its map (C, h, w)
    cams: dict[int, CAM] = field(default_factory=dict)  # class -> its map, made when asked

    @property
    def predicted(self) -> int:
        return int(self.probs.argmax())

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.outputs.values())


class Explorer:
    """A run and its pictures. Every public method takes the lock: the page's requests arrive
    on several threads, and a forward with hooks is one at a time."""

    def __init__(self, run: Run, data: Dataset | None = None):
        self.run, self.data = run, data
        self.look = training_look(run, data)
        self.summary: Summary = summary(run.model, run.input_shape)
        self.method, self.map_layer = cam_method(run.model)
        modules = dict(run.model.named_modules())
        self.layers = {row.name: row for row in self.summary.layers
                       if row.name in modules and len(row.output_shape) == 3}  # fmt: skip
        self.pictures: OrderedDict[str, Picture] = OrderedDict()
        self._lock = threading.Lock()

    # --- the run ----------------------------------------------------------------------------
    def about(self) -> dict:
        """What the page needs before any picture: classes, layers, test set, map colours."""
        cfg = self.run.config
        n = 0 if self.data is None else len(self.data.test_images)
        return {
            "model": cfg.model,
            "run": str(self.run.path),
            "classes": self.run.classes,
            "input": list(self.run.input_shape),
            "layers": [self._layer_info(name) for name in self.layers],
            "map_layer": self.map_layer,
            "method": self.method,
            "test_images": n,
            "probabilities": probabilities_note(cfg),
            "colours": {"map": colour_stops("jet"), "features": colour_stops("viridis")},
        }

    def model(self) -> dict:
        """The summary's rows and totals, and the run's facts."""
        cfg, run = self.run.config, self.run
        facts = {
            "model": cfg.model,
            "data set": cfg.dataset,
            "classes": len(cfg.classes),
            "input": "x".join(map(str, run.input_shape)),
            "weights": run.weights.name,
            "recipe": cfg.recipe,
            "epochs": cfg.epochs,
            "batch size": cfg.batch_size,
            "precision": cfg.precision,
            "test-time flip": "yes" if cfg.tta_flip else "no",
            **({"test-time shifts": "yes"} if cfg.tta_shift else {}),
        }
        try:
            history = run.history()
        except NinlabError:
            history = []
        if history:
            best = max(history, key=lambda r: r["test_acc"])
            facts["epochs trained"] = history[-1]["epoch"]
            facts["final accuracy"] = f"{100 * history[-1]['test_acc']:.2f}%"
            facts["best accuracy"] = f"{100 * best['test_acc']:.2f}% (epoch {best['epoch']})"
            facts["training time"] = f"{history[-1]['elapsed']:.0f} s"
        try:
            sessions = run.facts()
        except NinlabError:
            sessions = []
        for k, session in enumerate(sessions, 1):  # each `ninlab train` (and --resume) of it
            where = (
                f"{session.get('device_name', session.get('device', '?'))}, "
                f"{session.get('threads', '?')} threads, torch {session.get('torch', '?')}"
            )
            facts[f"session {k}"] = f"{session.get('command', '?')} ({where}; " \
                                    f"{session.get('started', '?')})"  # fmt: skip
        return {"facts": facts, "summary": self.summary.to_dict(), "table": self.summary.table()}

    # --- pictures ---------------------------------------------------------------------------
    def test_picture(self, index: int | None = None, class_name: str | None = None,
                     nth: int = 0) -> dict:  # fmt: skip
        """Test image `index`, or the nth test image of a class (counting round)."""
        if self.data is None:
            raise NinlabError(f"the run's data set ({self.run.config.dataset}) cannot be read "
                              "here, so there are no test images; upload a picture.")  # fmt: skip
        if class_name is not None:
            c = class_index(class_name, self.run.classes)
            of_class = (self.data.test_labels == c).nonzero().flatten()
            if len(of_class) == 0:
                raise NinlabError(f"the test set has no image of class {self.run.classes[c]}.")
            index = int(of_class[nth % len(of_class)])
        if index is None:
            raise NinlabError("give a test image's index or a class.")
        image, label = self.data.test_item(index)
        line = f"test image {index} of {self.data.name}, as it is"
        with self._lock:
            return self._show(self._add(f"test image {index}", line, image, label))

    def file_picture(self, path: str | Path, name: str) -> dict:
        """An image file made like a training image, exactly as `ninlab predict` makes it; errors
        name the file as `name` (the upload's name), not the private path it was saved to."""
        picked = self._read(path, name, look=self.look)
        w, h = picked.prep.size
        if min(w, h) < MIN_SIDE:
            raise NinlabError(f"{name} is {w}x{h} px, too small to show anything; give a picture "
                              f"at least {MIN_SIDE} px on each side.")  # fmt: skip
        with self._lock:
            return self._show(self._add(name, picked.prep.line(name), picked.image, None))

    def _picture(self, pid: str) -> Picture:
        if pid not in self.pictures:
            raise NinlabError("that picture is no longer kept (the page was open a long time, or "
                              "the server restarted); choose it again.")  # fmt: skip
        self.pictures.move_to_end(pid)
        return self.pictures[pid]

    def class_map(self, pid: str, c: int) -> dict:
        """The map of class c on the report's colour scale: jet, from the lowest to the highest
        cell of this map and of the predicted class's map together."""
        with self._lock:
            pic = self._picture(pid)
            self._check_class(c)
            cam, shown = self._cam(pic, c), self._cam(pic, pic.predicted)
            lo = min(float(cam.map.min()), float(shown.map.min()))
            hi = max(float(cam.map.max()), float(shown.map.max()))
            f, (mh, mw) = cam.field, cam.map.shape
            (r0, c0), (jr, jc) = f.center(0, 0), f.jump
            return {
                "class": self.run.classes[c],
                "index": c,
                "method": cam.method,
                "layer": cam.layer,
                "png": data_uri(colour_png(cam.map, "jet", lo, hi)),
                # the cells' rectangle in input pixels from the image's corner (as viz.cam)
                "extent": {
                    "top": r0 - jr / 2 + 0.5,
                    "left": c0 - jc / 2 + 0.5,
                    "height": mh * jr,
                    "width": mw * jc,
                },  # fmt: skip
                "lo": lo,
                "hi": hi,
                "prob": float(pic.probs[c]),
                "logit": cam.logit,
                "mean": cam.map_mean,
                "exact": cam.exact,
                "cell": list(cam.cell),
                "box": list(cam.box),
                "lines": cam.lines(self.run.classes),
            }

    def layer(self, pid: str, name: str) -> dict:
        """A layer's maps as one grid of its strongest channels (one colour scale, viridis, as
        `ninlab features`), and where each tile sits, for the page to find a clicked unit."""
        with self._lock:
            pic, row = self._picture(pid), self._row(name)
            maps = pic.outputs[name]
            grid, order = channel_grid(maps, MAX_CHANNELS)
            lo, hi = value_range(grid)
            c, h, w = maps.shape
            return {
                **self._layer_info(name),
                "png": data_uri(colour_png(grid, "viridis", lo, hi)),
                "rows": (grid.shape[0] + 1) // (h + 1),  # tiles of h x w, 1 px apart
                "cols": (grid.shape[1] + 1) // (w + 1),
                "tile": [h, w],
                "order": order.tolist(),
                "channels": c,
                "lo": lo,
                "hi": hi,
                "class_maps": name == self.map_layer and self.method == "class map",
                "why": row.note if row.field is None else "",
            }

    def unit(self, pid: str, name: str, channel: int, i: int, j: int, c: int | None = None) -> dict:
        """Unit (i, j) of a layer's channel: its activation, its window in input pixels (the
        summary's field, clipped to the image) or why it has none, and on the class map's layer
        its share of the logit of class c (a NiN's class map: the channel's class; default the
        predicted one)."""
        with self._lock:
            pic, row = self._picture(pid), self._row(name)
            maps = pic.outputs[name]
            ch, h, w = maps.shape
            if not (0 <= channel < ch and 0 <= i < h and 0 <= j < w):
                raise NinlabError(f"{name} has {ch} channels of {h}x{w} units; unit ({i}, {j}) of "
                                  f"channel {channel} is not one of them.")  # fmt: skip
            out = {"layer": name, "channel": channel, "unit": [i, j],
                   "activation": float(maps[channel, i, j])}  # fmt: skip
            if row.field is None:
                out |= {"box": None, "why": row.note or "no single window"}
            else:
                top, left, bottom, right = row.field.box(i, j)
                hh, ww = self.run.input_shape[1:]
                out |= {
                    "field": {k: list(getattr(row.field, k)) for k in ("size", "jump", "start")},
                    "window": [top, left, bottom, right],
                    "box": [max(top, 0), max(left, 0), min(bottom, hh), min(right, ww)],
                }
            if name == self.map_layer:
                out["share"] = self._share(pic, channel if self.method == "class map" else c, i, j)
            return out

    def _share(self, pic: Picture, c: int | None, i: int, j: int) -> dict:
        c = pic.predicted if c is None else c
        self._check_class(c)
        cam = self._cam(pic, c)
        if cam.exact is None:
            return {"class": self.run.classes[c], "why": "Grad-CAM's mean is not the logit"}
        cells = cam.map.numel()
        part = float(cam.map[i, j]) / cells
        return {"class": self.run.classes[c], "cell": float(cam.map[i, j]), "cells": cells,
                "part": part, "logit": cam.logit,
                "share": part / cam.logit if cam.logit else None}  # fmt: skip

    # --- scenes -----------------------------------------------------------------------------
    def scene_file(self, path: str | Path, name: str) -> dict:
        """A scene file read at its own size as `ninlab locate` reads it, and its detections."""
        picked = self._read(path, name, native=True, invert="no", trim="no")
        prep = replace(picked.prep, why="the locator lifts it")
        with self._lock:
            return self._located(picked.image, name, prep.line(name))

    def sample_scene(self, seed: int) -> dict:
        """A scene SCENE_SIDES training images across, of three test images on black
        (`ninlab.locate.scenes.make_scene`), and its detections."""
        if self.data is None:
            raise NinlabError("the run's data set cannot be read here; upload a scene.")
        side = SCENE_SIDES * self.data.test_images.shape[-1]
        scene = make_scene(self.data.test_images, self.data.test_labels, 3, side,
                           random.Random(seed))  # fmt: skip
        truth = ", ".join(self.run.classes[self.data.test_labels[it.index]] for it in scene.items)
        with self._lock:
            return self._located(
                scene.image,
                f"sample scene {seed}",
                f"sample scene {seed}: test images of {truth} on black",
            )

    def _located(self, image: torch.Tensor, name: str, line: str) -> dict:
        found = locate(self.run, image, MIN_SCORE, look=self.look)
        h, w = image.shape[-2:]
        return {
            "name": name,
            "line": line,
            "png": data_uri(display_png(display_image(image[0], (h, w)))),
            "size": [h, w],
            **found.to_dict(self.run.classes),
        }

    # --- inside -----------------------------------------------------------------------------
    def _add(self, name: str, line: str, image: torch.Tensor, label: int | None) -> Picture:
        """Compute a picture's probabilities and every layer's map once, and keep it."""
        run = self.run
        outputs = {n: o[0] for n, o in stage_outputs(run.model, run.preprocess(image),
                                                      list(self.layers)).items()}  # fmt: skip
        probs = run.probabilities(image)[0]  # as predict: with the mirror under tta_flip
        pic = Picture(secrets.token_urlsafe(12), name, line, image, label, probs, outputs)
        self.pictures[pic.id] = pic
        while len(self.pictures) > 1 and sum(p.nbytes for p in self.pictures.values()) > BUDGET:
            self.pictures.popitem(last=False)
        return pic

    def _read(self, path: str | Path, name: str, **how) -> Picked:
        """`file_image(run, path, **how)`, its errors naming the file `name` (the upload's own
        name), not the private path it was saved to."""
        try:
            return file_image(self.run, path, **how)
        except UnreadableImage as e:
            raise NinlabError(f"{name} is not a readable image: {e.why}.") from None
        except NinlabError as e:
            raise NinlabError(str(e).replace(str(path), name)) from None

    def _show(self, pic: Picture) -> dict:
        top = pic.probs.topk(min(5, len(pic.probs)))
        return {
            "id": pic.id,
            "name": pic.name,
            "line": pic.line,
            "png": data_uri(pixels_png(pic.image)),
            "size": list(pic.image.shape[-2:]),
            "truth": None if pic.label is None else self.run.classes[pic.label],
            "predicted": pic.predicted,
            "top": [{"class": self.run.classes[c], "index": c, "prob": p}
                    for p, c in zip(top.values.tolist(), top.indices.tolist(), strict=True)],
        }  # fmt: skip

    def _cam(self, pic: Picture, c: int) -> CAM:
        if c not in pic.cams:
            x = self.run.preprocess(pic.image)
            row = self.layers.get(self.map_layer)  # its field known: no trace of the model
            field = row.field if row is not None else None
            pic.cams[c] = class_activation_map(self.run.model, x, c, field=field)
        return pic.cams[c]

    def _row(self, name: str):
        if name not in self.layers:
            raise NinlabError(f"{self.run.config.model} has no layer {name!r} with a map; choose "
                              "one from the list.")  # fmt: skip
        return self.layers[name]

    def _check_class(self, c: int) -> None:
        if not 0 <= c < len(self.run.classes):
            raise NinlabError(f"class {c} is not one of the run's {len(self.run.classes)}.")

    def _layer_info(self, name: str) -> dict:
        row = self.layers[name]
        f = row.field
        return {
            "name": name,
            "type": row.type,
            "shape": list(row.output_shape),
            "field": None if f is None else {k: list(getattr(f, k)) for k in ("size", "jump",
                                                                               "start")},
            "note": row.note,
        }  # fmt: skip
