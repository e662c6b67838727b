"""Training configuration: TrainConfig, made of four parts by concern, and the named recipes.

A run's config answers four questions, one dataclass each with a comment on every field: what
learns and how (Recipe), where and how it runs (Placement), on which data (DataChoice), and what
the run fills in from that data (Prepared). TrainConfig is the four as one flat set of fields
(`cfg.lr`, `cfg.device`), as config.json records them.

Recipes are data: recipes/NAME.toml sets the fields of recipe NAME (the others keep the
defaults below, which are the fast recipe), and its comment header states the evidence for it.
Adding a recipe is adding a file.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from difflib import get_close_matches
from importlib import resources
from typing import get_args, get_origin, get_type_hints

from ninlab.data import Dataset
from ninlab.data.folders import FolderOptions
from ninlab.data.transforms import channel_stats
from ninlab.errors import NinlabError
from ninlab.models import create_model, list_models


@dataclass
class Recipe:
    """What learns, and how: the model, its optimisation, augmentation and seed. The defaults
    are the fast recipe (recipes/fast.toml holds its evidence)."""

    recipe: str = "fast"  # the named recipe these values started from (see RECIPES)
    model: str = "nin_fast"  # a name from ninlab.list_models()
    epochs: int = 10  # passes over the training set
    batch_size: int = 128  # training images per step (over all processes together)
    lr: float = 0.05  # peak learning rate
    optimizer: str = "sgd"  # "sgd" (with momentum below) or "adamw"
    momentum: float = 0.9  # SGD momentum (0 = plain SGD)
    nesterov: bool = True  # Nesterov momentum (SGD with momentum > 0 only)
    weight_decay: float = 5e-4  # L2 penalty (decoupled for AdamW), on conv/linear weights only
    schedule: str = "onecycle"  # "constant", or "onecycle": linear warm-up then linear decay to 0
    warmup: float = 0.15  # fraction of all steps spent warming up (onecycle)
    label_smoothing: float = 0.1  # cross-entropy label smoothing for training
    translate: int = 0  # random shift of up to this many pixels per image (0 = off)
    flip: bool = False  # random horizontal flip
    cutout: int = 0  # zero a random square of this side in each training image (0 = off)
    tta_flip: bool = False  # test-time augmentation: average logits of image and its mirror
    # test-time: average the probabilities of the image (twice) and of its four 1-px shifts;
    # during training only the last epoch's evaluation (the others are watched with one pass)
    tta_shift: bool = False
    init: str = "default"  # "default" (PyTorch's) or "xavier" (uniform, biases 0)
    seed: int = 0  # fixes initialisation, batch order, augmentation and dropout

    def augmentation(self) -> str:
        """The training augmentation in words ("" for none)."""
        parts = [f"shifts of up to {self.translate} px" if self.translate else "",
                 "mirror flips" if self.flip else "",
                 f"{self.cutout} px cut-outs" if self.cutout else ""]  # fmt: skip
        return ", ".join(p for p in parts if p)


@dataclass
class Placement:
    """Where and how the run computes: the device and its arithmetic, processes, threads and
    memory layout."""

    device: str = "auto"  # "auto" (cuda when present), "cpu" or "cuda"
    precision: str = "auto"  # "fp32", "bf16" or "fp16" autocast; auto = bf16 where native
    compile: bool = False  # torch.compile the model (slower than eager on a 2-core CPU)
    deterministic: bool = False  # CUDA: no cudnn.benchmark, deterministic kernels
    sync_bn: bool = True  # several CUDA processes: batch-norm statistics over the global batch
    dist_timeout: float = 300.0  # seconds a process waits for the others before it gives up
    threads: int | None = None  # torch CPU threads; None = torch's default (one per core)
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU (oneDNN)
    eval_batch_size: int = 200  # test images per forward pass


@dataclass
class DataChoice:
    """Which data the run reads, and how a folder of images is read (see ninlab.data.folders;
    the run records the values the folder's census chose)."""

    dataset: str = "fashion-mnist"  # a name from ninlab.data.DATASETS, or a folder of images
    data_dir: str | None = None  # where to look for data files first (else the usual places)
    limit_train: int | None = None  # train on the first N images only (quick runs and tests)
    limit_test: int | None = None  # test on the first N test images only (quick runs and tests)
    image_size: int | None = None  # a folder: side the images are decoded at; None = census's
    image_mode: str | None = None  # a folder: "L" or "RGB"; None = the mode of most images
    fit: str = "pad"  # non-square images (files too): "pad" to a square, or "crop" its centre
    val_split: float = 0.1  # a folder without test/: the share of every class held out (seeded)


@dataclass
class Prepared:
    """What the run fills in from the data and the model (prepare_config); a recipe may fix the
    input size and normalisation instead (seed: 224 px, 0.5/0.5)."""

    input_size: int | None = None  # side of the model's input; None = the model's default
    mean: list[float] | None = None  # normalisation mean per channel; None = measured on train
    std: list[float] | None = None  # normalisation std per channel; None = measured on train
    classes: list[str] = field(default_factory=list)  # class names, in label order
    in_chans: int | None = None  # input channels; None = the model's default


@dataclass(init=False)
class TrainConfig(Prepared, DataChoice, Placement, Recipe):
    """How a run trains: its Recipe, Placement, DataChoice and what is Prepared from the data,
    as one flat set of fields (each field's comment is in its part, ninlab/train/config.py).

    `TrainConfig(epochs=1, ...)` is the fast recipe with changes, and
    `TrainConfig(recipe="seed", epochs=1, ...)` the recipe seed (RECIPES) with changes: the
    recipe's values, then the arguments, then the defaults. `TrainConfig.from_recipe` does the
    same, treats an argument of None as not given and validates the result. A config given
    every field (`from_dict` reading what a run recorded, `dataclasses.replace`) is taken as it
    is, under any recipe name, one from a later ninlab too.

    The run fills in classes, in_chans, input_size and mean/std from the data
    (ninlab.train.prepare_config; `fit` calls it when any is missing).
    """

    def __init__(self, recipe: str = "fast", **values):
        names = [f.name for f in fields(self)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            near = get_close_matches(unknown[0], names, n=1)
            hint = f"did you mean {near[0]!r}?" if near else "help(ninlab.TrainConfig) lists them."
            raise NinlabError(f"TrainConfig has no field {unknown[0]!r}; {hint}")
        complete = len(values) == len(names) - 1  # all but `recipe`: nothing left to the recipe
        given = {**({} if complete else _recipe_values(recipe)), **values, "recipe": recipe}
        for f in fields(self):
            setattr(self, f.name, given[f.name] if f.name in given else _default(f))

    @classmethod
    def from_recipe(cls, name: str = "fast", **overrides) -> TrainConfig:
        """The recipe `name`'s config (see RECIPES) with `overrides` replacing its fields, checked
        by `validate`. An override of None keeps the recipe's value, so options a user left
        unset change nothing; e.g. `TrainConfig.from_recipe("seed", epochs=1, limit_train=256)`."""
        cfg = cls(name, **{k: v for k, v in overrides.items() if v is not None})
        validate(cfg)
        return cfg

    def to_dict(self) -> dict:
        """The fields as JSON-ready data (what config.json holds; `from_dict` reads it back), in
        the order config.json has always had."""
        d = asdict(self)
        return {k: d[k] for k in sorted(d, key=lambda k: JSON_ORDER.get(k, len(JSON_ORDER)))}

    def folder_options(self) -> FolderOptions:
        """How a folder data set is read for this run."""
        return FolderOptions(self.image_size, self.image_mode, self.fit, self.val_split, self.seed)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A config from JSON-like data (config.json, a checkpoint, weights' metadata) as it was
        recorded: missing fields keep their defaults and unknown ones are ignored (a later ninlab
        may add some); a value of the wrong type, or one that `validate` refuses, raises one
        NinlabError that names the field. The types come from the annotations (see `conform`)."""
        if not isinstance(d, dict):
            raise NinlabError(f"a config must be a JSON object, not {type(d).__name__}.")
        hints = get_type_hints(cls)
        cfg = cls(**{f.name: conform(f.name, d[f.name], hints[f.name]) if f.name in d
                     else _default(f) for f in fields(cls)})  # fmt: skip
        validate(cfg)
        return cfg


def _default(f: Field):
    return f.default_factory() if f.default is MISSING else f.default


# config.json's keys in the order of the fields before they were grouped into parts, so that a
# run's files stay the same byte for byte; a field not named here comes after these
JSON_ORDER = {name: i for i, name in enumerate((
    "recipe", "model", "dataset", "data_dir", "epochs", "batch_size", "lr", "optimizer",
    "momentum", "nesterov", "weight_decay", "schedule", "warmup", "label_smoothing", "translate",
    "flip", "cutout", "tta_flip", "input_size", "mean", "std", "init", "channels_last", "seed",
    "device", "precision", "compile", "deterministic", "sync_bn", "dist_timeout", "threads",
    "limit_train", "limit_test", "image_size", "image_mode", "fit", "val_split",
    "eval_batch_size", "classes", "in_chans", "tta_shift",
))}  # fmt: skip


# what a JSON value must be for each annotated type (ranges are validate's business; ints fit
# in 64 bits, as torch.manual_seed needs)
JSON_TYPES = {bool: "true or false", int: "a whole number of at most 64 bits",
         float: "a finite number", str: "a string"}  # fmt: skip


def conform(name: str, value, hint):
    """`value` as the annotated type `hint` (int, float, bool, str, list[X], X | None; a whole
    number serves as a float), or one NinlabError: "config field 'epochs' must be ..."."""
    optional = type(None) in get_args(hint)
    if optional:
        if value is None:
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
    if get_origin(hint) is list:
        item = get_args(hint)[0]
        if isinstance(value, list) and all(_fits(v, item) for v in value):
            return [float(v) if item is float else v for v in value]
        want = f"a list whose items are each {JSON_TYPES[item]}"
    elif _fits(value, hint):
        return float(value) if hint is float else value
    else:
        want = JSON_TYPES[hint]
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise NinlabError(f"config field {name!r} must be {'null or ' * optional}{want}, not {shown}.")


def _fits(value, kind) -> bool:
    if kind is float:  # a whole number serves too
        whole = type(value) is int and abs(value) < 2**63
        return whole or type(value) is float and math.isfinite(value)
    return type(value) is kind and (kind is not int or -(2**63) <= value < 2**63)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _read_recipes() -> dict[str, dict]:
    """Each recipes/NAME.toml as {field: value}, typed as the field (see `conform`): "fast"
    first, then the others by name."""
    found, hints = {}, get_type_hints(TrainConfig)
    files = sorted(resources.files(__package__).joinpath("recipes").iterdir(),
                   key=lambda f: (f.name != "fast.toml", f.name))  # fmt: skip
    for file in (f for f in files if f.name.endswith(".toml")):
        values = tomllib.loads(file.read_text(encoding="utf-8"))
        wrong = [k for k in values if k not in hints or k == "recipe"]
        if wrong:
            raise NinlabError(
                f"recipe file {file.name} sets {wrong[0]!r}, which is no field a recipe can set."
            )
        found[file.name.removesuffix(".toml")] = {
            k: conform(k, v, hints[k]) for k, v in values.items()
        }
    return found


# name -> the fields that recipe sets (the others keep their defaults), from recipes/NAME.toml
RECIPES: dict[str, dict] = _read_recipes()


def _recipe_values(name: str) -> dict:
    """A fresh copy of the fields recipe `name` sets; one NinlabError for an unknown name."""
    if name not in RECIPES:
        raise NinlabError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}.")
    return copy.deepcopy(RECIPES[name])


def resolve(recipe: str = "fast", **overrides) -> TrainConfig:
    """`TrainConfig.from_recipe(recipe, **overrides)`, under the name the CLI and bench use."""
    return TrainConfig.from_recipe(recipe, **overrides)


def is_prepared(cfg: TrainConfig) -> bool:
    """Whether the run has filled in what comes from the data (see `prepare_config`)."""
    return bool(cfg.classes) and None not in (cfg.in_chans, cfg.input_size, cfg.mean, cfg.std)


def prepare_config(cfg: TrainConfig, data: Dataset) -> TrainConfig:
    """Fill in what comes from the data and the model: classes, channels, input size, mean/std.

    The input size is the model's default, except on a folder of images decoded at S px that
    is larger: a model with a pooling head (GAP) then trains at S itself. A folder run also
    records the size and mode the folder was decoded at, so that later reads match."""
    c, side = data.image_shape[0], data.image_shape[-1]
    model = create_model(cfg.model, num_classes=data.num_classes, in_chans=c)
    mean, std = cfg.mean, cfg.std
    if mean is None or std is None:
        n = min(cfg.limit_train or len(data.train_images), len(data.train_images))
        mean, std = channel_stats(data.train_images[:n])
    size = model.default_input_size[-1]
    if data.root is not None:
        cfg = replace(cfg, dataset=data.root, image_size=side, image_mode="L" if c == 1 else "RGB")
        size = max(size, side) if model.any_input_size else size
    return replace(
        cfg,
        classes=list(data.classes),
        in_chans=model.default_input_size[0] if cfg.in_chans is None else cfg.in_chans,
        input_size=cfg.input_size or size,
        mean=list(mean),
        std=list(std),
    )


def validate(cfg: TrainConfig) -> None:
    """Reject values that cannot work, each with one sentence saying what to pass instead."""
    checks = [
        (
            cfg.model in list_models(),
            f"unknown model {cfg.model!r}; choose one of {', '.join(list_models())}.",
        ),
        (cfg.epochs >= 1, f"--epochs must be at least 1 (got {cfg.epochs})."),
        (cfg.batch_size >= 1, f"--batch-size must be at least 1 (got {cfg.batch_size})."),
        (cfg.lr > 0, f"--lr must be positive (got {cfg.lr})."),
        (
            cfg.optimizer in ("sgd", "adamw"),
            f"unknown optimizer {cfg.optimizer!r}; choose sgd or adamw.",
        ),
        (
            cfg.schedule in ("constant", "onecycle"),
            f"unknown schedule {cfg.schedule!r}; choose constant or onecycle.",
        ),
        (
            cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
            f"unknown device {cfg.device!r}; choose auto, cpu or cuda.",
        ),
        (
            cfg.limit_train is None or cfg.limit_train >= 1,
            f"--limit-train must be at least 1 (got {cfg.limit_train}).",
        ),
        (
            cfg.limit_test is None or cfg.limit_test >= 1,
            f"--limit-test must be at least 1 (got {cfg.limit_test}).",
        ),
        (
            cfg.init in ("default", "xavier"),
            f"unknown init {cfg.init!r}; choose default or xavier.",
        ),
        (
            cfg.precision in PRECISIONS,
            f"unknown precision {cfg.precision!r}; choose {', '.join(PRECISIONS)}.",
        ),
        (cfg.cutout >= 0, f"--cutout must be 0 or more (got {cfg.cutout})."),
        *(
            (
                getattr(cfg, name) is None or getattr(cfg, name) >= 1,
                f"{name} must be at least 1 (got {getattr(cfg, name)}).",
            )
            for name in ("input_size", "in_chans", "eval_batch_size", "threads")
        ),
        (cfg.dist_timeout > 0, f"--timeout must be positive (got {cfg.dist_timeout})."),
    ]
    for ok, message in checks:
        if not ok:
            raise NinlabError(message)
    cfg.folder_options().check()
