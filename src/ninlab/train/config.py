"""Training configuration: one dataclass with a comment on every field, and named recipes.

Evidence for the defaults (recipe "fast"): on 2 CPU cores (AMD EPYC with AVX512-BF16), torch
2.13.0+cpu, `python bench/time_to_accuracy.py --seeds 0 1 2` gave 93.38%, 93.49% and 93.37% test
accuracy on Fashion-MNIST after 10 epochs in bf16 autocast, 169-186 s of wall time each; 93.0% was
first reached at 152-180 s, a cost of 27-34 (wall s x R / 1000, R = 180-188 GFLOP/s fp32 matmul).
`python bench/recipe_ablation.py` measures what each part is worth (README, "Training").
Recipe "long", same machine, `--recipe long --seeds 0 1 2`: 93.97%, 94.16% and 93.98% after 32
epochs, 1,259-1,284 s each (cost 237-247); short of its 94.5% goal.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, InitVar, asdict, dataclass, field, fields, replace
from difflib import get_close_matches
from typing import get_args, get_origin, get_type_hints

from ninlab.data import Dataset
from ninlab.data.folders import FolderOptions
from ninlab.data.transforms import channel_stats
from ninlab.errors import NinlabError
from ninlab.models import create_model, list_models


@dataclass
class TrainConfig:
    """How a run trains. The defaults are the "fast" recipe; each field's comment in
    ninlab/train/config.py says what it means.

    Two constructors: `TrainConfig(epochs=1, ...)` is the fast recipe with changes, and
    `TrainConfig.from_recipe("seed", epochs=1, ...)` is another recipe (RECIPES) with changes.
    `recipe` itself applies nothing: it records which recipe the values came from. So a config
    made directly whose recipe is another one but whose values carry none of those that recipe
    sets apart from the defaults (seed: model nin_seed, lr 0.1, batch 64, ...) is refused, as
    `TrainConfig(recipe="seed", epochs=1)` would train nin_fast under seed's name; an unknown
    recipe is refused too. Configs made by `from_recipe` and read back by `from_dict`
    (config.json, checkpoints: what ran, whatever it was called) are taken as they are, and so
    are their copies (`dataclasses.replace` carries that).

    The run fills in classes, in_chans, input_size and mean/std from the data
    (ninlab.train.prepare_config; `fit` calls it when any is missing).
    """

    recipe: str = "fast"  # the named recipe these values started from (see RECIPES)
    model: str = "nin_fast"  # a name from ninlab.list_models()
    dataset: str = "fashion-mnist"  # a name from ninlab.data.DATASETS, or a folder of images
    data_dir: str | None = None  # where to look for data files first (else the usual places)
    epochs: int = 10  # passes over the training set
    batch_size: int = 128  # training images per step
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
    input_size: int | None = None  # side of the model's input; None = the model's default
    mean: list[float] | None = None  # normalisation mean per channel; None = measured on train
    std: list[float] | None = None  # normalisation std per channel; None = measured on train
    init: str = "default"  # "default" (PyTorch's) or "xavier" (uniform, biases 0)
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU (oneDNN)
    seed: int = 0  # fixes initialisation, batch order, augmentation and dropout
    device: str = "auto"  # "auto" (cuda when present), "cpu" or "cuda"
    precision: str = "auto"  # "fp32", "bf16" or "fp16" autocast; auto = bf16 where native
    compile: bool = False  # torch.compile the model (slower than eager on a 2-core CPU)
    deterministic: bool = False  # CUDA: no cudnn.benchmark, deterministic kernels
    sync_bn: bool = True  # several CUDA processes: batch-norm statistics over the global batch
    dist_timeout: float = 300.0  # seconds a process waits for the others before it gives up
    threads: int | None = None  # torch CPU threads; None = torch's default (one per core)
    limit_train: int | None = None  # train on the first N images only (quick runs and tests)
    limit_test: int | None = None  # test on the first N test images only (quick runs and tests)
    # a folder of images (see ninlab.data.folders); the run records the values the census chose
    image_size: int | None = None  # side the images are decoded at; None = from the census
    image_mode: str | None = None  # "L" or "RGB"; None = the mode of most images
    fit: str = "pad"  # non-square images (files too): "pad" to a square, or "crop" its centre
    val_split: float = 0.1  # no test/ folder: the share of every class held out (seeded)
    eval_batch_size: int = 200  # test images per forward pass
    # filled in by the run: class names, input channels
    classes: list[str] = field(default_factory=list)
    in_chans: int | None = None
    # True from from_recipe and from_dict: the values are the recipe's or what a run recorded, so
    # `recipe` is not checked against them. Not a field (no JSON, no ==); replace() copies it.
    _vouched: InitVar[bool] = False

    def __post_init__(self, _vouched: bool):
        self._vouched = _vouched
        if _vouched or self.recipe == "fast":
            return
        if self.recipe not in RECIPES:
            raise NinlabError(
                f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}."
            )
        own = {k: v for k, v in RECIPES[self.recipe].items() if v != DEFAULTS[k]}
        if own and all(getattr(self, k) != v for k, v in own.items()):
            telling = [k for k in ("model", "lr", "batch_size", "epochs") if k in own]
            shown = ", ".join(f"{k} {own[k]}" for k in telling or list(own)[:3])
            raise NinlabError(
                f"TrainConfig(recipe={self.recipe!r}) only names the recipe and keeps the fast "
                f"values, not its {shown}, ...; make it with "
                f"TrainConfig.from_recipe({self.recipe!r}, ...) instead."
            )

    @classmethod
    def from_recipe(cls, name: str = "fast", **overrides) -> TrainConfig:
        """The recipe `name`'s config (see RECIPES) with `overrides` replacing its fields, checked
        by `validate`. An override of None keeps the recipe's value, so options a user left
        unset change nothing; e.g. `TrainConfig.from_recipe("seed", epochs=1, limit_train=256)`."""
        if name not in RECIPES:
            raise NinlabError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}.")
        unknown = sorted(set(overrides) - set(DEFAULTS) - {"classes"})
        if unknown:
            near = get_close_matches(unknown[0], DEFAULTS, n=1)
            hint = f"did you mean {near[0]!r}?" if near else "help(ninlab.TrainConfig) lists them."
            raise NinlabError(f"TrainConfig has no field {unknown[0]!r}; {hint}")
        given = {k: v for k, v in overrides.items() if v is not None}
        cfg = cls(**{**RECIPES[name], **given, "recipe": name}, _vouched=True)
        validate(cfg)
        return cfg

    def to_dict(self) -> dict:
        """The fields as JSON-ready data (what config.json holds; `from_dict` reads it back)."""
        return asdict(self)

    def augmentation(self) -> str:
        """The training augmentation in words ("" for none)."""
        parts = [f"shifts of up to {self.translate} px" if self.translate else "",
                 "mirror flips" if self.flip else "",
                 f"{self.cutout} px cut-outs" if self.cutout else ""]  # fmt: skip
        return ", ".join(p for p in parts if p)

    def folder_options(self) -> FolderOptions:
        """How a folder data set is read for this run."""
        return FolderOptions(self.image_size, self.image_mode, self.fit, self.val_split, self.seed)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A config from JSON-like data (config.json, a checkpoint, weights' metadata): missing
        fields keep their defaults and unknown ones are ignored (a later ninlab may add some);
        a value of the wrong type, or one that `validate` refuses, raises one NinlabError that
        names the field. The types come from the annotations (see `conform`)."""
        if not isinstance(d, dict):
            raise NinlabError(f"a config must be a JSON object, not {type(d).__name__}.")
        hints = get_type_hints(cls)
        cfg = cls(**{f.name: conform(f.name, d[f.name], hints[f.name])
                     for f in fields(cls) if f.name in d}, _vouched=True)  # fmt: skip
        validate(cfg)
        return cfg


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


# The classic recipe (Dive into Deep Learning ch. 8.3 as reproduced on Fashion-MNIST): 85.74%.
SEED = dict(
    model="nin_seed", input_size=224, mean=[0.5], std=[0.5], optimizer="sgd", lr=0.1,
    momentum=0.0, nesterov=False, weight_decay=0.0, batch_size=64, epochs=10,
    schedule="constant", label_smoothing=0.0, translate=0, flip=False, tta_flip=False,
    channels_last=False,
)  # fmt: skip

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# More epochs for the last half point: a wider NiN, and augmentation against over-fitting.
LONG = dict(model="nin_wide", epochs=32, translate=2, flip=True, cutout=8, tta_flip=True)

RECIPES: dict[str, dict] = {
    "fast": {},  # the TrainConfig defaults
    "long": LONG,
    "seed": SEED,
    "d2l": dict(SEED, model="nin_d2l", batch_size=128, init="xavier"),
}

# the fast recipe: each field's default (classes, whose default is a factory, is empty)
DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


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
