"""The strongest unit of a class map chosen on the object (`ninlab cam --native`), checked by hand.

The field is nin_fast's class map's on an 84 px canvas: size 40, jump 8, start -16, so unit i's
field covers rows -16 + 8i .. 8i + 23 and its centre lies at 3.5 + 8i (3.5, 11.5, ..., 83.5).
The item is a 28x28 patch at rows 30-57, columns 56-83 (top 30, left 56): the centres on it are
rows 35.5, 43.5, 51.5 (units 4-6) and columns 59.5 (its pixel 60 is on the patch), 67.5, 75.5,
83.5 (units 7-10).
"""

import pytest
import torch

from ninlab.analysis import Field
from ninlab.analysis.cam import CAM, class_activation_map, units_on
from ninlab.data.backdrop import foreground, mask_box
from ninlab.errors import NinlabError
from ninlab.locate.scenes import iou
from ninlab.models import create_model

FIELD = Field(size=(40, 40), jump=(8, 8), start=(-16, -16))
PATCH = (30, 56, 58, 84)  # top, left, bottom, right (exclusive)


def item_mask() -> torch.Tensor:
    on = torch.zeros(84, 84, dtype=torch.bool)
    on[30:58, 56:84] = True
    return on


def hand_cam(allowed=None, reach=0) -> CAM:
    """An 11x11 map whose maximum 9 lies on the empty corner (unit (0, 0)) and whose value 5 at
    unit (5, 8) lies on the item; every other unit is 0."""
    m = torch.zeros(11, 11)
    m[0, 0], m[5, 8] = 9.0, 5.0
    return CAM("class map", "head", 0, m, 14 / 121, 0.5, 0, FIELD, (84, 84),
               allowed=allowed, reach=reach)  # fmt: skip


def test_units_on_the_item_by_hand():
    allowed, reach = units_on(item_mask(), FIELD, (11, 11))
    expected = torch.zeros(11, 11, dtype=torch.bool)
    expected[4:7, 7:11] = True  # rows 35.5, 43.5, 51.5; columns 59.5, 67.5, 75.5, 83.5
    assert reach == 0 and torch.equal(allowed, expected)


def test_the_strongest_unit_on_the_item_wins_over_the_empty_corner():
    free = hand_cam()
    assert free.cell == free.peak == (0, 0) and free.box == (0, 0, 24, 24)  # field clipped
    assert iou(free.box, PATCH) == 0.0
    chosen = hand_cam(*units_on(item_mask(), FIELD, (11, 11)))
    assert chosen.peak == (0, 0) and chosen.cell == (5, 8)
    # unit (5, 8): rows -16 + 40 = 24 .. 64, columns -16 + 64 = 48 .. 88, clipped to 84
    assert chosen.box == (24, 48, 64, 84) and chosen.center == (43.5, 67.5)
    # the patch lies inside the box: IoU = 28 x 28 / (40 x 36) = 784 / 1440
    assert iou(chosen.box, PATCH) == pytest.approx(784 / 1440)
    text = "\n".join(chosen.lines(["a"]))
    assert "chosen among the 12 of 121 units whose field centre is on the object" in text
    assert "the map's own maximum, unit (0, 0) = 9, lies off it" in text


def test_a_thin_object_between_centres_takes_the_nearest_units():
    on = torch.zeros(84, 84, dtype=torch.bool)
    on[30:58, 63] = True  # one column between the centres 59.5 (pixels 59, 60) and 67.5 (67, 68)
    allowed, reach = units_on(on, FIELD, (11, 11))
    expected = torch.zeros(11, 11, dtype=torch.bool)
    # pixel 60 is 3 px from column 63 (pixel 67 is 4); 3 px from rows 30-57 are rows 27-60, so
    # the centres 27.5 (pixels 27, 28) and 59.5 (59, 60) are within reach too: rows 3-7
    expected[3:8, 7] = True
    assert reach == 3 and torch.equal(allowed, expected)
    assert "whose field centre is 3 px from the object" in "\n".join(
        hand_cam(allowed, reach).lines(["a"])
    )


def test_an_empty_mask_allows_every_unit():
    allowed, reach = units_on(torch.zeros(84, 84, dtype=torch.bool), FIELD, (11, 11))
    assert allowed.all() and reach == 0
    assert hand_cam(allowed).cell == (0, 0)


@pytest.mark.slow  # two forwards of nin_fast on 84 px: 0.3 s idle, 1-3 s on a busy shared CPU
def test_a_canvas_with_a_known_item_place():
    canvas = torch.zeros(1, 84, 84, dtype=torch.uint8)
    canvas[0, 30:58, 56:84] = 200  # a bright square item where PATCH says, on black
    on = foreground(canvas)
    assert mask_box(on) == PATCH and torch.equal(on, item_mask())
    model = create_model("nin_fast", num_classes=10).eval()
    x = (canvas[None].float() / 255 - 0.286) / 0.353
    free = class_activation_map(model, x, 3)
    chosen = class_activation_map(model, x, 3, on)
    assert chosen.field == FIELD and chosen.map.shape == (11, 11)
    assert torch.equal(free.map, chosen.map) and chosen.exact  # the map and its mean untouched
    assert chosen.allowed[chosen.cell] and chosen.reach == 0
    r, c = chosen.center
    assert 30 <= r < 58 and 56 <= c < 84  # its field's centre lies on the item
    assert free.allowed is None and free.cell == free.peak


def test_masks_that_do_not_fit_the_input_are_one_sentence():
    model = create_model("nin_fast", num_classes=10).eval()
    with pytest.raises(NinlabError, match=r"not one 84x84 mask per image of the input"):
        class_activation_map(model, torch.zeros(1, 1, 84, 84), 0, torch.ones(28, 28).bool())
