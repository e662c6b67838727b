"""The live page's computing (ninlab.explore.explorer), without a server: the numbers each view
shows, checked by hand against the summary's fields, the class map's mean and predict."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from ninlab.data import load_dataset
from ninlab.errors import NinlabError
from ninlab.explore import Explorer, explorer
from ninlab.runs import Run, load_run
from ninlab.runs.inputs import pick_images

from ..data.test_bombs import png


@pytest.fixture(scope="module")
def world(small_run):
    """The small run, loaded, and an Explorer of it."""
    root = small_run
    run = load_run(root / "run")
    return root, run, Explorer(run, run.dataset())


def test_a_unit_sees_the_window_the_summary_gives(world):
    _, _, ex = world
    pid = ex.test_picture(index=3)["id"]
    # features.pool2: field 12, jump 4, start -4 (`ninlab summary nin_fast`); unit (2, 3) sees
    # rows -4 + 2*4 = 4 .. 15 and columns -4 + 3*4 = 8 .. 19
    u = ex.unit(pid, "features.pool2", 5, 2, 3)
    assert u["field"] == {"size": [12, 12], "jump": [4, 4], "start": [-4, -4]}
    assert u["box"] == [4, 8, 16, 20] and u["window"] == u["box"]
    corner = ex.unit(pid, "features.pool2", 5, 0, 0)  # rows -4..7: clipped to 0..7
    assert corner["window"] == [-4, -4, 8, 8] and corner["box"] == [0, 0, 8, 8]
    assert "share" not in u


def test_a_units_activation_is_its_layers_output(world):
    _, run, ex = world
    pid = ex.test_picture(index=1)["id"]
    image, _ = run.dataset().test_item(1)
    seen = {}
    layer = run.model.get_submodule("features.block2.cccp1")
    hook = layer.register_forward_hook(lambda m, i, o: seen.__setitem__("o", o))
    with torch.no_grad():
        run.model(run.preprocess(image))
    hook.remove()
    u = ex.unit(pid, "features.block2.cccp1", 7, 6, 9)
    assert u["activation"] == pytest.approx(float(seen["o"][0, 7, 6, 9]), abs=1e-6)


def test_the_class_map_cells_share_the_logit(world):
    _, _, ex = world
    pic = ex.test_picture(index=0)
    c = pic["predicted"]
    m = ex.class_map(pic["id"], c)
    assert m["exact"] and m["mean"] == pytest.approx(m["logit"], abs=1e-5)
    # nin_fast's class map is 4x4 cells of jump 8 whose first field centre is at 3.5 px:
    # the cells cover rows 3.5 - 4 + 0.5 = 0 .. 32 of the 28 px input, as viz.cam draws them
    assert m["extent"] == {"top": 0.0, "left": 0.0, "height": 32, "width": 32}
    parts = [ex.unit(pic["id"], ex.map_layer, c, i, j)["share"] for i in range(4) for j in range(4)]
    assert {p["class"] for p in parts} == {m["class"]} and parts[0]["cells"] == 16
    assert sum(p["part"] for p in parts) == pytest.approx(m["logit"], abs=1e-5)
    assert sum(p["share"] for p in parts) == pytest.approx(1.0, abs=1e-5)


def test_the_colour_scale_spans_this_map_and_the_predicted_ones(world):
    _, _, ex = world
    pic = ex.test_picture(index=2)
    other = (pic["predicted"] + 1) % 10
    a, b = ex.class_map(pic["id"], pic["predicted"]), ex.class_map(pic["id"], other)
    maps = [ex.pictures[pic["id"]].cams[k].map for k in (pic["predicted"], other)]
    assert b["lo"] == pytest.approx(min(float(m.min()) for m in maps))
    assert b["hi"] == pytest.approx(max(float(m.max()) for m in maps))
    assert a["lo"] >= b["lo"] and a["hi"] <= b["hi"]


def test_top5_is_what_predict_gives_for_the_file(world, tmp_path):
    _, run, ex = world
    image, _ = run.dataset().test_item(4)
    path = tmp_path / "item.png"
    Image.fromarray(image[0, 0].numpy()).save(path)
    shown = ex.file_picture(path, "item.png")
    picked = pick_images(run, paths=[path])[0]
    probs = run.probabilities(picked.image)[0]
    assert shown["line"] == picked.prep.line("item.png")
    assert [t["index"] for t in shown["top"]] == probs.topk(5).indices.tolist()
    assert [t["prob"] for t in shown["top"]] == pytest.approx(probs.topk(5).values.tolist())


def test_a_test_image_by_class_counts_round(world):
    _, run, ex = world
    labels = run.dataset().test_labels
    bags = (labels == 8).nonzero().flatten().tolist()  # 20 test images, classes 0..9 in turn
    assert bags == [8, 18]
    names = [ex.test_picture(class_name="bag", nth=k)["name"] for k in range(3)]
    assert names == ["test image 8", "test image 18", "test image 8"]
    assert ex.test_picture(index=8)["truth"] == "Bag"


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"", "empty.png is not a readable image: the file is empty."),
        (b"hello, world\n", "empty.png is not a readable image: not an image in a format"),
        (png(1, 1), "empty.png is 1x1 px, too small to show anything; give a picture at least 8"),
        (png(30_000, 2_000, idat=b""), "empty.png is not a readable image: 30,000 x 2,000 pixels "
         "claimed by a file of 57 bytes, refused as a decompression bomb."),
    ],
    ids=["0-bytes", "text", "1x1", "bomb"],
)  # fmt: skip
def test_a_bad_upload_is_one_sentence_with_its_own_name(world, tmp_path, data, needle):
    _, _, ex = world
    path = tmp_path / "a1b2c3.png"  # where the app saves an upload: a random name
    path.write_bytes(data)
    with pytest.raises(NinlabError) as e:
        ex.file_picture(path, "empty.png")
    assert needle in str(e.value) and "\n" not in str(e.value) and str(tmp_path) not in str(e.value)


def test_bad_requests_are_one_sentence(world):
    _, _, ex = world
    pid = ex.test_picture(index=0)["id"]
    with pytest.raises(NinlabError, match="has no layer 'features.nope' with a map"):
        ex.layer(pid, "features.nope")
    with pytest.raises(NinlabError, match=r"16 channels of 28x28 units; unit \(28, 0\)"):
        ex.unit(pid, "features.block1.conv", 0, 28, 0)
    with pytest.raises(NinlabError, match="no longer kept"):
        ex.class_map("not-an-id", 0)
    with pytest.raises(NinlabError, match="class 10 is not one of the run's 10"):
        ex.class_map(pid, 10)
    with pytest.raises(NinlabError, match="out of range"):
        ex.test_picture(index=20)


def test_pictures_are_kept_apart_and_the_oldest_go_first(world, monkeypatch):
    _, _, ex = world
    one, two = ex.test_picture(index=5), ex.test_picture(index=6)
    assert one["id"] != two["id"]
    assert ex.pictures[one["id"]].name == "test image 5"
    assert ex.pictures[two["id"]].name == "test image 6"
    size = ex.pictures[one["id"]].nbytes
    monkeypatch.setattr(explorer, "BUDGET", 2 * size)
    three = ex.test_picture(index=7)  # three pictures do not fit in two pictures' bytes
    assert one["id"] not in ex.pictures and {two["id"], three["id"]} <= set(ex.pictures)
    with pytest.raises(NinlabError, match="no longer kept"):
        ex.layer(one["id"], "features.pool1")


def test_a_layer_grid_places_the_strongest_channels(world):
    _, _, ex = world
    pid = ex.test_picture(index=9)["id"]
    g = ex.layer(pid, "features.block3.conv")  # 128 x 7 x 7: the 32 strongest, 8 a row
    assert (g["rows"], g["cols"], g["tile"], g["channels"]) == (4, 8, [7, 7], 128)
    maps = ex.pictures[pid].outputs["features.block3.conv"]
    means = maps.mean(dim=(1, 2))
    assert g["order"] == means.argsort(descending=True, stable=True)[:32].tolist()
    assert g["png"].startswith("data:image/png;base64,")


def test_a_layer_with_no_single_window_says_why(world, tmp_path):
    root, run, _ = world
    model = load_run(root / "run").model
    model.features.block2.conv.padding_mode = "circular"  # the field wraps round the image
    bent = Run(run.path, model, run.config, run.weights)
    ex = Explorer(bent, load_dataset("fashion-mnist", data_dir=str(root / "data")))
    pid = ex.test_picture(index=0)["id"]
    u = ex.unit(pid, "features.block2.conv", 0, 1, 1)  # the summary's notes, word for word
    assert u["box"] is None and u["why"] == "circular padding wraps the field around the image"
    later = ex.unit(pid, "features.block2.cccp1", 0, 1, 1)
    assert later["box"] is None and later["why"] == "field lost at features.block2.conv"
    assert ex.unit(pid, "features.block1.conv", 0, 1, 1)["box"] == [0, 0, 4, 4]
    assert ex.layer(pid, "features.pool3")["why"] == "field lost at features.block2.conv"


def test_a_sample_scene_is_located(world):
    _, run, ex = world
    s = ex.sample_scene(0)
    assert s["size"] == [112, 112] and s["line"].startswith("sample scene 0: test images of ")
    assert s["windows"] >= 1 and s["png"].startswith("data:image/png;base64,")
    for d in s["detections"]:
        assert d["class"] in run.classes and 0.4 <= d["prob"] <= 1


def test_a_scene_smaller_than_the_training_images_is_refused(world, tmp_path):
    _, _, ex = world
    path = tmp_path / "x.png"
    Image.new("L", (20, 20)).save(path)
    with pytest.raises(NinlabError, match="the image is 20x20 px, smaller than the 28x28"):
        ex.scene_file(path, "small.png")


def test_the_model_view_has_the_summary_and_the_facts(world):
    _, run, ex = world
    m = ex.model()
    assert m["summary"]["totals"]["params"] == 380_036  # `ninlab models`: nin_fast
    assert m["facts"]["model"] == "nin_fast" and m["facts"]["classes"] == 10
    assert [r["name"] for r in m["summary"]["layers"]][:2] == ["features.block1.conv",
                                                               "features.block1.bn"]  # fmt: skip


def test_the_page_lists_every_layer_with_a_map(world):
    _, _, ex = world
    a = ex.about()
    names = [layer["name"] for layer in a["layers"]]
    assert len(names) == 23 and names[-1] == "head.maps.block.bn1" == a["map_layer"]
    assert "head.gap" not in names  # (10,): no map
    assert a["test_images"] == 20 and len(a["colours"]["map"]) == 9
    assert Path(a["run"]).name == "run"
