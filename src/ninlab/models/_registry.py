"""One registry for every model: `@register_model`, `create_model(name, ...)`, `list_models()`."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from ninlab.errors import NinlabError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model factory under its function name; its docstring's first line describes it."""
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
