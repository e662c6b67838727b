"""The backdrop behind an object, estimated from the border: cases a person can check by hand."""

import torch
from PIL import Image

from ninlab.data.backdrop import (
    TOLERANCE,
    estimate_backdrop,
    foreground,
    frame_mask,
    lift,
    mask_box,
    object_sign,
    regions,
)
from ninlab.data.images import Look, read_file


def plane(h: int, w: int, a: float, b: float, c: float) -> torch.Tensor:
    """A (1, H, W) picture a + b r/(H-1) + c c/(W-1): a lamp's gradient."""
    r = torch.linspace(0, 1, h)[:, None]
    col = torch.linspace(0, 1, w)[None, :]
    return (a + b * r + c * col).expand(h, w)[None].clone()


def test_a_gradient_backdrop_is_found_exactly_and_the_square_on_it():
    x = plane(60, 80, 100, 50, 30)  # 100 at the top left, 180 at the bottom right
    x[0, 20:40, 30:50] += 80
    b = estimate_backdrop(x)
    assert torch.allclose(b.coef, torch.tensor([[100.0, 50.0, 30.0]]), atol=1e-3)
    assert b.noise == 0 and b.box == 1 and b.threshold() == TOLERANCE
    assert b.level == 100 + 25 + 15  # the backdrop at the centre
    assert mask_box(foreground(x, b)) == (20, 30, 40, 50)
    assert object_sign(x, foreground(x, b), b) == 1


def test_an_object_touching_the_edge_does_not_move_the_backdrop():
    x = torch.full((1, 64, 64), 200.0)
    x[0, 0:40, 20:44] = 40  # a dark item cut by the top edge: 24 of the frame's 252 pixels
    b = estimate_backdrop(x)
    assert torch.allclose(b.coef, torch.tensor([[200.0, 0.0, 0.0]]), atol=1e-3)
    on = foreground(x, b)
    assert mask_box(on) == (0, 20, 40, 44) and object_sign(x, on, b) == -1


def test_the_frame_is_a_band_of_a_32nd_of_the_shorter_side():
    assert frame_mask(28, 28).sum() == 28 * 28 - 26 * 26  # one pixel wide
    assert frame_mask(128, 256).sum() == 128 * 256 - 120 * 248  # four pixels wide


def test_noise_is_smoothed_away_and_the_item_kept():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 112, 112, generator=g) * 60  # uniform 0-60: deviation 17
    x[0, 40:68, 40:68] += 120
    b = estimate_backdrop(x)
    assert 28 < b.coef[0, 0] < 32 and b.box == 5 and b.noise < 6
    top, left, bottom, right = mask_box(foreground(x, b))
    assert abs(top - 40) <= 1 and abs(left - 40) <= 1 and abs(bottom - 68) <= 1
    assert abs(right - 68) <= 1
    assert regions(foreground(x, b)) == [(top, left, bottom, right)]  # no specks of noise


def test_regions_come_largest_first_and_specks_go():
    on = torch.zeros(20, 20, dtype=torch.bool)
    on[1:3, 1:3] = True  # 4 pixels
    on[10:18, 5:15] = True  # 80 pixels
    on[0, 19] = True  # 1 pixel: under 5% of the largest, dropped by foreground
    assert regions(on) == [(10, 5, 18, 15), (1, 1, 3, 3), (0, 19, 1, 20)]


def test_lift_keeps_a_clean_training_image_and_turns_a_photo_into_one():
    item = torch.zeros(1, 28, 28, dtype=torch.uint8)
    item[0, 4:24, 8:20] = torch.arange(20, dtype=torch.uint8)[:, None] * 12 + 27  # 27-255
    b = estimate_backdrop(item)
    assert torch.equal(lift(item, b, 1, 0.0, 255.0), item)
    # the same item dark on a mid-grey backdrop at a third of the contrast
    photo = (150 - item.float() * 100 / 255).round()
    b = estimate_backdrop(photo)
    on = foreground(photo, b)
    assert object_sign(photo, on, b) == -1
    lifted = lift(photo, b, -1, 0.0, 255.0, on)
    assert lifted[0, 0, 0] == 0 and lifted.max() == 255
    assert (lifted.float() - item.float()).abs().max() <= 3  # rounding, raised 2.55-fold


def test_the_same_pixels_as_png_and_jpeg_are_prepared_alike(tmp_path):
    """Decided from the pixels, not the format: a 224 x 224 dark square on white, as PNG and as
    JPEG (which decodes at a reduced scale), is cut to its object both times."""
    x = Image.new("L", (224, 224), 245)
    x.paste(40, (60, 40, 160, 190))
    x.save(tmp_path / "a.png")
    x.save(tmp_path / "a.jpg", quality=90)
    look = Look("dark", 1.0, "training images", 0.0, 255.0)
    png = read_file(tmp_path / "a.png", "L", 28, invert="auto", trim="auto", look=look)
    jpg = read_file(tmp_path / "a.jpg", "L", 28, invert="auto", trim="auto", look=look)
    for out, prep in (png, jpg):
        assert prep.fit == "trim" and prep.inverted and out[0, 0, 0] == 0
        left, top, right, bottom = prep.box
        assert abs(left - 60) <= 4 and abs(top - 40) <= 4
        assert abs(right - 160) <= 4 and abs(bottom - 190) <= 4
    assert (png[0].float() - jpg[0].float()).abs().mean() < 8


def test_a_gradient_that_levels_off_is_followed_by_the_edges():
    """250 at the left, falling by 2 a column from column 20 to 80, then flat at 130: no plane,
    but every row the same, so the top and bottom edges say it all."""
    cols = (250 - 2 * (torch.arange(100.0) - 20).clamp(0, 60))[None, None, :]
    x = cols.expand(1, 80, 100).clone()
    x[0, 30:50, 40:60] -= 90  # a dark square on the slope
    b = estimate_backdrop(x)
    assert b.edges is not None
    away = (b.image() - cols.expand(1, 80, 100)).abs()
    assert away.max() < 6  # the running median rounds the bends a little
    assert mask_box(foreground(x, b)) == (30, 40, 50, 60)
