"""The layers of a model in the order they run, for models built from nn.Sequential.

A model is read as one chain when it is an nn.Sequential, has a `layers` Sequential (a
DenseClassifier) or a `dense` DenseClassifier (a ConvertedClassifier), or has `features` and
`head` Sequentials with forward(x) = head(features(x)) (every ninlab classifier). Nested
Sequentials are opened up; any other module is one opaque step of the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass
class Slot:
    """One step of a chain: `parent.<attr>` is `module`; `name` is its dotted path in the model."""

    name: str
    parent: nn.Module
    attr: str
    module: nn.Module

    def replace(self, new: nn.Module) -> None:
        setattr(self.parent, self.attr, new)
        self.module = new

    def remove(self) -> None:
        delattr(self.parent, self.attr)


def roots(model: nn.Module) -> list[tuple[str, nn.Sequential]]:
    if isinstance(model, nn.Sequential):
        return [("", model)]
    if isinstance(getattr(model, "layers", None), nn.Sequential):  # a DenseClassifier
        return [("layers.", model.layers)]
    if isinstance(getattr(getattr(model, "dense", None), "layers", None), nn.Sequential):
        return [("dense.layers.", model.dense.layers)]  # a ConvertedClassifier
    feats, head = getattr(model, "features", None), getattr(model, "head", None)
    if isinstance(feats, nn.Sequential) and isinstance(head, nn.Sequential):
        return [("features.", feats), ("head.", head)]
    raise ValueError(
        f"{type(model).__name__} is neither an nn.Sequential nor a model with `features` and "
        f"`head` Sequentials, so the order its layers run in is unknown."
    )


def chain(
    model: nn.Module,
    descend: Callable[[nn.Sequential], bool] = lambda s: True,
    opened: set[int] | None = None,
) -> list[Slot]:
    """The model's steps in execution order, opening the Sequentials for which `descend` holds
    (their ids are added to `opened`)."""
    out: list[Slot] = []
    opened = set() if opened is None else opened
    for prefix, seq in roots(model):
        _expand(seq, prefix, out, descend, opened)
    return out


def all_chains(model: nn.Module) -> list[list[Slot]]:
    """The model's chain, then the chains of Sequentials hidden inside opaque steps of it (an
    Inception's branches, say), each Sequential opened once."""
    opened: set[int] = set()
    chains = [chain(model, opened=opened)]
    for name, m in model.named_modules():
        if isinstance(m, nn.Sequential) and id(m) not in opened:
            c: list[Slot] = []
            _expand(m, f"{name}.", c, lambda s: True, opened)
            chains.append(c)
    return chains


def _expand(seq: nn.Sequential, prefix: str, out: list[Slot], descend, opened: set[int]) -> None:
    opened.add(id(seq))
    for attr, child in seq.named_children():
        if isinstance(child, nn.Sequential) and descend(child):
            _expand(child, f"{prefix}{attr}.", out, descend, opened)
        else:
            out.append(Slot(f"{prefix}{attr}", seq, attr, child))
