"""Finding objects in scenes larger than the training images, with a classifier alone.

scenes.py   Box, iou, and scenes made of test items placed on a larger canvas
locator.py  locate: windows scored by the classifier, each with its CAM and strongest-unit boxes;
            strongest_unit_hits (claim 25's measurement)
Drawing the detections is `ninlab.viz.locate`'s.
"""

from ninlab.locate.locator import (
    METHODS,
    SCORINGS,
    Detection,
    Located,
    UnitHits,
    locate,
    strongest_unit_hits,
)
from ninlab.locate.scenes import Box, iou, make_scene

__all__ = [
    "METHODS",
    "SCORINGS",
    "Box",
    "Detection",
    "Located",
    "UnitHits",
    "iou",
    "locate",
    "make_scene",
    "strongest_unit_hits",
]
