"""The library as a notebook user meets it: fit fills in its own config, a recipe (a data file)
is applied by naming it, a model says which input sizes it takes, every public name has a
docstring, and help(ninlab) is a page, not thousands of lines of inherited torch documentation."""

import importlib
import inspect
import json
import math
import pydoc
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

import ninlab
from ninlab import NinlabError, TrainConfig
from ninlab.data import load_dataset
from ninlab.models import list_models
from ninlab.runs import read_config
from ninlab.train import RECIPES, resolve, validate

from .conftest import make_idx_dataset, make_run_dir

PUBLIC = ("ninlab", "ninlab.models", "ninlab.train", "ninlab.data", "ninlab.analysis",
          "ninlab.convert", "ninlab.viz", "ninlab.runs")  # fmt: skip
FIXTURES = Path(__file__).parent / "fixtures"
HELP_LINES = 600  # help(ninlab) was 6,006 lines: 5,600 for five nn.Module classes' inherited docs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_idx_dataset(root / "fashion-mnist", n_train=40, n_test=20)
    return load_dataset("fashion-mnist", data_dir=root, progress=False)


def test_fit_fills_in_a_fresh_config(tiny):
    said = []
    model = ninlab.create_model("nin_fast")
    cfg = TrainConfig(epochs=1, limit_train=16, batch_size=8, threads=1)  # nothing filled in
    history = ninlab.fit(model, tiny, cfg, progress=False, log=said.append)
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"])
    filled = next(line for line in said if line.startswith("prepare_config filled in:"))
    assert "nin_fast 1x28x28, 10 classes, mean " in filled


def test_fit_fills_in_for_the_model_it_is_given(tiny):
    """A config that names nin_fast, with lenet_fc passed: sizes come from the model trained."""
    said = []
    model = ninlab.create_model("lenet_fc")
    ninlab.fit(model, tiny, TrainConfig(epochs=1, limit_train=8, batch_size=8, threads=1),
               progress=False, log=said.append)  # fmt: skip
    assert any(line.startswith("prepare_config filled in: lenet_fc 1x28x28") for line in said)


def test_from_recipe_applies_the_recipe_and_the_overrides():
    cfg = TrainConfig.from_recipe("seed", epochs=1, batch_size=None)  # None keeps the recipe's
    assert (cfg.recipe, cfg.model, cfg.lr, cfg.batch_size, cfg.epochs) == ("seed", "nin_seed",
                                                                          0.1, 64, 1)  # fmt: skip
    assert resolve("d2l", lr=0.01) == TrainConfig.from_recipe("d2l", lr=0.01)
    assert TrainConfig.from_recipe("fast") == TrainConfig()
    with pytest.raises(NinlabError, match=r"^unknown recipe 'sed'; choose one of fast, best, "):
        TrainConfig.from_recipe("sed")
    with pytest.raises(NinlabError, match=r"no field 'epoch'; did you mean 'epochs'\?"):
        TrainConfig.from_recipe("seed", epoch=1)
    with pytest.raises(NinlabError, match=r"--epochs must be at least 1"):  # validated
        TrainConfig.from_recipe("long", epochs=0)


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("kw", [{}, {"epochs": 1, "limit_train": 256}])
def test_a_recipe_named_in_the_constructor_is_applied(recipe, kw):
    cfg = TrainConfig(recipe=recipe, **kw)
    assert cfg == TrainConfig.from_recipe(recipe, **kw)
    assert all(getattr(cfg, k) == kw.get(k, v) for k, v in RECIPES[recipe].items())
    assert all(getattr(cfg, k) == v for k, v in kw.items())


def test_an_argument_wins_over_the_recipe_even_with_the_fast_value():
    cfg = TrainConfig(recipe="seed", lr=0.05, batch_size=128)  # both are fast's defaults
    assert (cfg.model, cfg.lr, cfg.batch_size, cfg.momentum) == ("nin_seed", 0.05, 128, 0.0)
    assert TrainConfig() == TrainConfig(recipe="fast") and TrainConfig().model == "nin_fast"
    cfg.mean.append(1.0)  # each config has its own lists, not the recipe's
    assert TrainConfig(recipe="seed").mean == [0.5]


def test_each_recipe_is_a_file_that_states_its_evidence():
    folder = Path(ninlab.train.__file__).parent / "recipes"
    names = sorted(p.stem for p in folder.glob("*.toml"))
    assert list(RECIPES) == ["fast", *(n for n in names if n != "fast")]  # fast, then by name
    for name in names:
        text = (folder / f"{name}.toml").read_text()
        assert text.startswith("# ") and "\n# Evidence: " in text, name
        validate(TrainConfig.from_recipe(name))


def test_copies_and_configs_read_back_keep_working(tmp_path, tiny):
    seed = TrainConfig.from_recipe("seed", epochs=1)
    assert replace(seed, lr=0.05, batch_size=128).model == "nin_seed"  # dataclasses.replace
    assert replace(seed, model="nin_fast").lr == 0.1  # `--recipe seed --model nin_fast`
    assert TrainConfig.from_dict(seed.to_dict()) == seed
    prepared = ninlab.train.prepare_config(seed, tiny)
    assert TrainConfig.from_dict(prepared.to_dict()) == prepared
    # a run made under an old ninlab that let TrainConfig(recipe="seed") keep the fast values,
    # or named by a later ninlab's recipe, still reads back (it records what ran), and copies
    make_run_dir(tmp_path / "old", recipe="seed")
    assert replace(read_config(tmp_path / "old"), lr=0.2).recipe == "seed"
    make_run_dir(tmp_path / "later", recipe="tomorrow")
    assert read_config(tmp_path / "later").model == "nin_fast"
    assert replace(read_config(tmp_path / "later"), lr=0.2).recipe == "tomorrow"
    assert TrainConfig.from_dict({"recipe": "seed", "epochs": 2}).model == "nin_fast"
    with pytest.raises(NinlabError, match=r"^unknown recipe 'tomorrow'; choose one of fast, best"):
        TrainConfig(recipe="tomorrow")
    with pytest.raises(NinlabError, match=r"^TrainConfig has no field 'seeds'; did you mean"):
        TrainConfig(seeds=3)


def test_the_config_of_a_run_from_before_the_split_reads_back_as_written():
    """Its config.json, written when TrainConfig was one flat dataclass: the same keys, values
    and order come back, then the fields added since, at their defaults."""
    recorded = json.loads((FIXTURES / "run-before-the-move" / "config.json").read_text())
    cfg = TrainConfig.from_dict(recorded)
    added = {"tta_shift": False}
    assert cfg.to_dict() == {**recorded, **added} and list(cfg.to_dict()) == [*recorded, *added]
    assert (cfg.model, cfg.device, cfg.limit_train, cfg.in_chans) == ("vgg_gap", "auto", 512, 1)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_a_model_says_which_input_sizes_it_takes(name):
    model = ninlab.create_model(name).train()
    c, side = model.default_input_size[0], model.default_input_size[-1]
    lo, hi = model.input_sides()
    assert lo <= side and (hi is None or side <= hi)
    for ok in (lo, hi or 2 * side):
        assert model.eval()(torch.zeros(1, c, ok, ok)).shape == (1, 10)
    model.train()
    bn = next((m for m in model.modules() if isinstance(m, nn.BatchNorm2d)), None)
    stats = bn.running_mean.clone() if bn is not None else None
    for bad in [lo - 1] * (lo > 1) + ([] if hi is None else [hi + 1]):
        with pytest.raises(NinlabError, match=rf"^{name} cannot run on a {bad}x{bad} input: "):
            model(torch.zeros(2, c, bad, bad))
    assert model.training and all(m.training for m in model.modules())  # the probe restored it
    assert bn is None or torch.equal(bn.running_mean, stats)


def test_nin_seed_on_a_28_px_image():
    """The issue's case, through forward and through class_maps."""
    model = ninlab.create_model("nin_seed")
    want = ("nin_seed cannot run on a 28x28 input: it takes inputs of 67 px or more a side (224 "
            "by default); resize the images to 224 px first.")  # fmt: skip
    for call in (model, model.class_maps):
        with pytest.raises(NinlabError) as e:
            call(torch.zeros(1, 1, 28, 28))
        assert str(e.value) == want
    with pytest.raises(RuntimeError, match="channels"):  # not a size problem: torch's own error
        model(torch.zeros(1, 3, 224, 224))


def _public_names(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [
        n for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == module_name
    ]  # fmt: skip
    return [(n, getattr(module, n)) for n in names]


def _own_doc(obj) -> str | None:
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if inspect.isclass(obj) and doc and doc.startswith(obj.__name__ + "("):
        return None  # the signature @dataclass writes where a class has no docstring
    return doc


@pytest.mark.parametrize("module_name", PUBLIC)
def test_every_public_name_has_a_docstring(module_name):
    code = [(n, v) for n, v in _public_names(module_name) if callable(v)]
    assert [n for n, v in code if not _own_doc(v)] == []


def test_help_ninlab_is_a_page():
    lines = pydoc.render_doc(ninlab).splitlines()
    assert len(lines) < HELP_LINES
    assert not [n for n in ninlab.__all__ if isinstance(getattr(ninlab, n), type)
                and issubclass(getattr(ninlab, n), nn.Module)]  # fmt: skip


def test_the_package_docstring_lists_the_entry_points():
    doc = ninlab.__doc__
    for name in ("create_model", "list_models", "TrainConfig.from_recipe", "train_run", "fit",
                 "load_run", "evaluate_run", "summary", "convert_run", "export_run",
                 "class_activation_map", "run_sparsity", "build_report"):  # fmt: skip
        assert re.search(rf"^    {re.escape(name)}\(", doc, re.M), name
    for dotted in re.findall(r"^    ([\w.]+)\(", doc, re.M):  # each one exists, as written
        obj = ninlab
        for part in dotted.split("."):
            obj = getattr(obj, part)
        assert callable(obj)
