"""Real photos: an image file is made like the training images, and a line says how.

The run is a lenet_fc whose weights are set by hand, not trained: a template matcher that sees
only the bright parts of its input at 5x5 resolution (conv1 copies the image, ReLU keeps what is
brighter than mid-grey, conv2 averages, fc1 and fc2 pass the 25 values on, fc3 scores each class
by the distance to its template). Its training set is four shapes, light on black, each spanning
the frame as a Fashion-MNIST item does: so a dark-on-light photo gets its class back only when
it is inverted, and a padded one only when it is cut to its object again.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from ninlab.cli import main
from ninlab.data.images import (
    Look,
    Preparation,
    look_from_mean,
    measure_look,
    object_box,
    read_file,
)
from ninlab.models import create_model
from ninlab.runs import load_run, save_weights
from ninlab.runs.inputs import pick_images, training_look
from ninlab.train import TrainConfig

from ..conftest import make_run_dir, write_idx

SHAPES = 4  # classes 0-3 of the ten: a tall bar, a wide bar, a plus sign, a disc


def shape(label: int, brightness: int = 255) -> torch.Tensor:
    """A 28x28 uint8 item of class `label`, light on black, spanning the frame."""
    x = torch.zeros(28, 28, dtype=torch.uint8)
    r = torch.arange(28)
    if label in (0, 2):
        x[:, 10:18] = brightness
    if label in (1, 2):
        x[10:18, :] = brightness
    if label == 3:
        x[((r[:, None] - 13.5) ** 2 + (r[None, :] - 13.5) ** 2) <= 14**2] = brightness
    return x


def template_matcher(mean: float = 0.5, std: float = 0.5) -> torch.nn.Module:
    """lenet_fc scoring class k by f . t_k / |t_k|, where f is the 5x5 map of the bright parts of
    the input and t_k that of shape k: the shape whose map f is most nearly parallel to wins,
    however bright; classes 4-9 never do."""
    model = create_model("lenet_fc", num_classes=10)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.features.conv1.weight[0, 0, 2, 2] = 1.0  # a copy of the input, padded
        model.features.conv2.weight[0, 0] = 1 / 25  # the 5x5 mean of channel 0
        model.head.fc1.weight[:25, :25] = torch.eye(25)  # channel 0's 5x5 values
        model.head.fc2.weight[:25, :25] = torch.eye(25)
        x = torch.stack([shape(k) for k in range(SHAPES)])[:, None].float() / 255
        f = model.head[:-1](model.features((x - mean) / std))  # SHAPES x 84
        model.head.fc3.weight[:SHAPES] = f / f.norm(dim=1, keepdim=True)
        model.head.fc3.bias[SHAPES:] = -1e4
    return model.eval()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(run directory, test images (N, 28, 28), labels): the template matcher on a data set of
    the four shapes, of brightness 200-255, laid out as Fashion-MNIST's files."""
    root = tmp_path_factory.mktemp("photos")
    data = root / "data" / "fashion-mnist"
    data.mkdir(parents=True)
    tensors = {}
    for prefix, n in (("train", 40), ("t10k", 8)):
        labels = torch.arange(n) % SHAPES
        images = torch.stack([shape(int(k), 200 + 7 * i % 56) for i, k in enumerate(labels)])
        write_idx(data / f"{prefix}-images-idx3-ubyte", images)
        write_idx(data / f"{prefix}-labels-idx1-ubyte", labels.to(torch.uint8))
        tensors[prefix] = (images, labels)
    run = root / "run"
    _, cfg = make_run_dir(run, "lenet_fc", data_dir=str(root / "data"))
    model = template_matcher()
    for name in ("best.safetensors", "final.safetensors"):
        save_weights(model, run / name, TrainConfig.from_dict(cfg))
    return run, *tensors["t10k"]


def ninlab(capsys, *argv):
    """Run the CLI in-process: (exit status, stdout lines, stderr)."""
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out.splitlines(), out.err


def top_class(lines: list[str]) -> str:
    """The first class of the first table of predict's output ("  Trouser        99.12%")."""
    return next(line for line in lines if line.startswith("  "))[2:16].strip()


def photo(item: torch.Tensor, path, size=(300, 200), background=255):
    """The item made dark on light (255 - x), enlarged to the photo's height and centred on a
    light canvas of `size`, as a PNG."""
    w, h = size
    dark = Image.fromarray((255 - item).numpy(), "L").resize((h, h), Image.BILINEAR)
    canvas = Image.new("L", size, background)
    canvas.paste(dark, ((w - h) // 2, 0))
    canvas.save(path)
    return path


def shown(path, scale: int = 10) -> torch.Tensor:
    """The pixels of a picture --show wrote, each `scale` x `scale` block checked to be one
    colour (no smoothing) and read back as one pixel."""
    x = torch.from_numpy(np.array(Image.open(path)))
    small = x[::scale, ::scale]
    assert torch.equal(small.repeat_interleave(scale, 0).repeat_interleave(scale, 1), x)
    return small


# ---- the Done-when of issue 17: a dark-on-light padded photo of a test item ----


@pytest.mark.parametrize("index", range(SHAPES))
def test_a_dark_on_light_padded_photo_gets_its_test_items_class(world, tmp_path, capsys, index):
    run, images, labels = world
    png = photo(images[index], tmp_path / "that.png")
    rc, by_index, err = ninlab(capsys, "predict", run, "--index", index)
    assert rc == 0, err
    assert by_index[0].startswith(f"test image {index} (true: ")  # no line on preparation
    rc, out, err = ninlab(capsys, "predict", run, png, "--show", tmp_path / "in.png")
    assert rc == 0, err
    assert out[0] == "that.png: 300x200 L -> 28x28 L, cut to its object, inverted (dark on light)"
    assert top_class(out) == top_class(by_index) == load_run(run).classes[int(labels[index])]
    assert out[-2] == f"wrote {tmp_path / 'in.png'}"
    assert out[-1] == "(probabilities of one forward pass, as ninlab eval makes them)"
    # what the model saw is the test item again, up to the resampling of its edges
    diff = (shown(tmp_path / "in.png").float() - images[index].float()).abs()
    assert diff.mean() < 8, diff.mean()


def test_without_the_inversion_or_the_trim_it_is_another_class(world, tmp_path, capsys):
    run, images, _ = world
    plus = photo(images[2], tmp_path / "plus.png")
    rc, out, err = ninlab(capsys, "predict", run, plus, "--invert", "no")
    assert out[0].endswith("not inverted (--invert no)") and top_class(out) != "Pullover"
    disc = photo(images[3], tmp_path / "disc.png")
    rc, out, err = ninlab(
        capsys, "predict", run, disc, "--trim", "no", "--show", tmp_path / "s.png"
    )
    assert rc == 0 and out[0].endswith("28x28 L, padded to a square, inverted (dark on light)")
    assert top_class(out) != "Dress"  # the disc at 2/3 of the frame: a plus to this model
    x = shown(tmp_path / "s.png")  # the 300 px wide photo padded to 300x300: rows 4-22 hold it
    assert (x[:4] == 0).all() and (x[-4:] == 0).all() and x[14, 14] > 200


# ---- --invert, --show ----


def test_invert_no_gives_the_uninverted_input_and_yes_inverts(world, tmp_path, capsys):
    run, images, _ = world
    png = photo(images[2], tmp_path / "plus.png")
    ninlab(capsys, "predict", run, png, "--show", tmp_path / "auto.png")
    rc, out, err = ninlab(
        capsys, "predict", run, png, "--invert", "no", "--show", tmp_path / "no.png"
    )
    assert rc == 0 and "not inverted (--invert no)" in out[0]
    assert torch.equal(shown(tmp_path / "no.png"), 255 - shown(tmp_path / "auto.png"))
    dark = tmp_path / "dark.png"  # the test item itself: light on a dark background
    Image.fromarray(images[2].numpy(), "L").save(dark)
    rc, out, err = ninlab(
        capsys, "predict", run, dark, "--invert", "yes", "--show", tmp_path / "y.png"
    )
    assert rc == 0 and out[0].endswith(", inverted (--invert yes)")
    assert torch.equal(shown(tmp_path / "y.png"), 255 - images[2])


def test_a_light_on_dark_image_is_not_inverted_under_auto(world, tmp_path, capsys):
    run, images, _ = world
    png = tmp_path / "item.png"  # test image 0 as a file: taken as it is
    Image.fromarray(images[0].numpy(), "L").save(png)
    rc, out, err = ninlab(capsys, "predict", run, png, "--show", tmp_path / "in.png")
    assert rc == 0, err
    assert out[0] == "item.png: 28x28 L -> 28x28 L, as is, not inverted (light on dark)"
    assert torch.equal(shown(tmp_path / "in.png"), images[0])
    rc, by_index, err = ninlab(capsys, "predict", run, "--index", 0)
    assert out[1:4] == by_index[1:4]  # the same classes and probabilities
    wide = photo(255 - images[0], tmp_path / "wide.png", (60, 40), background=0)  # light on dark
    rc, out, err = ninlab(capsys, "predict", run, wide)
    assert out[0] == "wide.png: 60x40 L -> 28x28 L, cut to its object, not inverted (light on dark)"
    assert top_class(out) == top_class(by_index)


def test_show_writes_the_prepared_input_of_each_image(world, tmp_path, capsys):
    run, images, _ = world
    png = photo(images[3], tmp_path / "disc.png")
    picked = pick_images(load_run(run), [1], [png])
    assert picked[0].prep is None and torch.equal(picked[0].image[0, 0], images[1])
    assert picked[1].prep.inverted and picked[1].prep.fit == "trim"
    rc, out, err = ninlab(capsys, "predict", run, png, "--index", 1, "--show", tmp_path / "x.png")
    assert rc == 0, err
    assert (
        out.count(f"wrote {tmp_path / 'x-disc.png'}") == 1
        and f"wrote {tmp_path / 'x-1.png'}" in out
    )
    assert torch.equal(shown(tmp_path / "x-disc.png"), picked[1].image[0, 0])
    assert torch.equal(shown(tmp_path / "x-1.png"), images[1])  # a test image, unchanged


def test_show_never_writes_one_file_for_two_images_of_one_stem(world, tmp_path, capsys):
    run, images, _ = world
    png = photo(images[3], tmp_path / "x.png")
    jpg = tmp_path / "x.jpg"
    Image.open(photo(images[0], tmp_path / "bar.png")).save(jpg, quality=95)
    rc, out, err = ninlab(capsys, "predict", run, png, jpg, "--show", tmp_path / "s.png")
    assert rc == 0, err
    assert f"wrote {tmp_path / 's-x-png.png'}" in out and f"wrote {tmp_path / 's-x-jpg.png'}" in out
    assert not torch.equal(shown(tmp_path / "s-x-png.png"), shown(tmp_path / "s-x-jpg.png"))


def test_cam_and_features_prepare_files_the_same_way(world, tmp_path, capsys):
    run, images, _ = world
    png = photo(images[1], tmp_path / "wide.png")
    want = "wide.png: 300x200 L -> 28x28 L, cut to its object, inverted (dark on light)"
    for verb in ("cam", "features"):
        argv = [verb, run, "--image", png, "--out", tmp_path, "--show", tmp_path / f"{verb}.png"]
        rc, out, err = ninlab(capsys, *argv)
        assert rc == 0 and out[0] == want and out[1] == f"wrote {tmp_path / verb}.png", err
    assert torch.equal(shown(tmp_path / "cam.png"), shown(tmp_path / "features.png"))
    rc, out, err = ninlab(capsys, "cam", run, "--index", 1, "--out", tmp_path)
    assert rc == 0 and out[0].startswith("test image 1, true class Trouser")


# ---- the library, by hand ----


def test_the_training_look_is_measured_or_guessed():
    items = torch.stack([shape(k % SHAPES) for k in range(20)])[:, None]
    assert measure_look(items) == Look("dark", 1.0, "training images", 0.0, 255.0)
    assert measure_look(255 - items).background == "light"
    half = torch.cat([items[:10], 255 - items[10:]])  # half dark, half light: natural photos
    assert measure_look(half).background is None
    small = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    small[:, :, 4:24, 9:19] = 255  # 20 px of 28, as MNIST's digits
    assert measure_look(small).share == pytest.approx(20 / 28)
    assert look_from_mean([0.286]) == Look("dark", None, "config mean")
    assert look_from_mean([0.47, 0.48, 0.45]).background is None  # CIFAR-10
    assert look_from_mean([0.8, 0.8, 0.8]).background == "light"


def test_a_run_whose_data_cannot_be_read_guesses_from_its_mean(tmp_path):
    """No download: mnist is in none of the places looked at, so the mean decides."""
    make_run_dir(tmp_path / "run", dataset="mnist", data_dir=str(tmp_path / "none"), mean=[0.13])
    assert training_look(load_run(tmp_path / "run")) == Look("dark", None, "config mean")


def test_object_box_and_rgb_photos_on_a_light_background(tmp_path):
    x = torch.full((3, 10, 12), 240, dtype=torch.uint8)
    x[:, 2:5, 3:9] = torch.tensor([120, 60, 20], dtype=torch.uint8)[:, None, None]  # brown
    assert object_box(x) == (3, 2, 9, 5)
    path = tmp_path / "shoe.png"
    Image.fromarray(x.permute(1, 2, 0).numpy(), "RGB").save(path)
    # a folder of product photos on a backdrop of 240
    light = Look("light", 1.0, "training images", 240.0, None)
    out, prep = read_file(path, "RGB", 6, invert="auto", trim="auto", look=light)
    assert not prep.inverted and prep.why == "dark on light" and prep.box == (3, 2, 9, 5)
    assert out[:, 2, 1].tolist() == [120, 60, 20] and out[:, 0, 0].tolist() == [240, 240, 240]
    # on white (255) instead, each channel keeps its difference from the backdrop
    out, _ = read_file(path, "RGB", 6, invert="auto", trim="auto", look=Look("light", 1.0))
    assert out[:, 2, 1].tolist() == [135, 75, 35] and out[:, 0, 0].tolist() == [255, 255, 255]
    # on training items light on black: the backdrop goes to 0, the shoe (grey 73) to 240 - 73
    dark = Look("dark", 1.0, "training images")
    out, prep = read_file(path, "L", 12, invert="auto", trim="no", look=dark)  # padded, not resized
    assert prep.inverted and prep.fit == "pad" and out[0, 0, 0] == 0 and out.max() == 240 - 73
    # at its own size an image is never trimmed
    out, prep = read_file(path, "RGB", None, invert="yes", trim="yes", look=dark)
    assert prep.fit == "own size" and out.shape == (3, 10, 12) and prep.box is None


def test_the_line_fits_80_columns():
    """The reason in brackets goes first, then the end of the name."""
    prep = Preparation((4000, 3000), "RGBA", (224, 224), "RGB", "trim", 250.0, True, "light border")
    assert (
        prep.line("shoe.jpg")
        == "shoe.jpg: 4000x3000 RGBA -> 224x224 RGB, cut to its object, inverted"
    )
    long = "/a/folder/" + "x" * 120 + ".png"
    assert (
        prep.line(long)
        == "x" * 19 + "…: 4000x3000 RGBA -> 224x224 RGB, cut to its object, inverted"
    )
    assert len(prep.line(long)) == 80
    prep = Preparation((300, 200), "RGB", (28, 28), "L", "pad", 250.0, True, "light border")
    assert prep.line("photos/shoe.jpg") == (
        "shoe.jpg: 300x200 RGB -> 28x28 L, padded to a square, inverted (light border)"
    )
