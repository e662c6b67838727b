"""Finding objects in scenes larger than the training images, with a classifier alone.

scenes.py     Box, iou, score, and scenes of test items on a larger canvas, in kinds (KINDS:
              black, grey, gradient and noise backdrops, mirrored and scaled items)
proposals.py  where to look: the scene made like a training picture (ground), a square window
              around each object at its own scale (square)
locator.py    locate: the windows classified, each detection with its CAM and strongest-unit
              boxes; strongest_unit_hits (claim 25's measurement)
Drawing the detections is `ninlab.viz.locate`'s.
"""

from ninlab.locate.locator import (
    METHODS,
    MIN_SCORE,
    SCORINGS,
    Detection,
    Located,
    UnitHits,
    locate,
    strongest_unit_hits,
)
from ninlab.locate.proposals import Ground, ground
from ninlab.locate.scenes import KINDS, Box, Kind, iou, make_scene, score

__all__ = [
    "KINDS",
    "METHODS",
    "MIN_SCORE",
    "SCORINGS",
    "Box",
    "Detection",
    "Ground",
    "Kind",
    "Located",
    "UnitHits",
    "ground",
    "iou",
    "locate",
    "make_scene",
    "score",
    "strongest_unit_hits",
]
