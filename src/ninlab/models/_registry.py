"""One registry for every model: `@register_model`, `create_model(name, ...)`, `list_models()`."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable

import torch
from torch import nn

from ninlab.errors import NinlabError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model factory under its function name; its docstring's first line describes it.
    A name registered already is replaced, with a warning naming both factories (as timm does)."""
    old = _MODELS.get(fn.__name__)
    if old is not None and old is not fn:
        warnings.warn(
            f"model {fn.__name__!r} of {old.__module__} is replaced by the one of {fn.__module__}",
            stacklevel=2,
        )
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """The names `create_model` accepts, sorted."""
    return sorted(_MODELS)


def model_description(name: str) -> str:
    """The first line of the model's docstring: what it is, at which input size."""
    return (inspect.getdoc(_get(name)) or "").splitlines()[0]


def default_in_chans(name: str) -> int:
    """The input channels the model is built with when none are given (1 or 3)."""
    return inspect.signature(_get(name)).parameters["in_chans"].default


def _get(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        raise NinlabError(f"unknown model {name!r}; choose one of {', '.join(list_models())}.")
    return _MODELS[name]


def create_model(
    name: str, num_classes: int = 10, in_chans: int | None = None, **kwargs
) -> nn.Module:
    """Build a registered model; `in_chans` defaults to the model's own (1 or 3)."""
    fn = _get(name)
    if in_chans is None:
        in_chans = default_in_chans(name)
    model = fn(num_classes=num_classes, in_chans=in_chans, **kwargs)
    model.model_name = name
    return model


MAX_BYTES_PER_SAVED = 16  # a model may take this many bytes for each byte of weights saved


def create_model_for(weights: dict[str, torch.Tensor], where, name: str, **kwargs) -> nn.Module:
    """create_model(name, **kwargs) for the saved `weights` read from `where`, built first on the
    meta device (no memory) to check that its size fits them: sizes read from a damaged or
    hostile file (a billion classes or channels) are refused in one sentence before anything is
    allocated."""
    with torch.device("meta"):
        shape_only = create_model(name, **kwargs)
    need = sum(t.numel() * t.element_size() for t in (*shape_only.parameters(),
                                                      *shape_only.buffers()))  # fmt: skip
    saved = sum(t.numel() * t.element_size() for t in weights.values())
    if need > MAX_BYTES_PER_SAVED * saved + 2**20:
        raise NinlabError(
            f"{where} describes a {name} of {need:,} bytes, but its weights hold {saved:,} bytes; "
            "it is damaged."
        )
    return create_model(name, **kwargs)
