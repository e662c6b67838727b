"""A SHA-256 of what a checkpoint or a weights file holds, stored in the file and checked on every
read, so that a byte flipped on disk or in a copy ends in one sentence, not in other weights.

The digest is taken over the content in a canonical walk, not over the file's bytes (the file
holds the digest itself, and the layout of torch.save's zip is not ninlab's to fix):
  a tensor     its dtype, shape and raw bytes (bf16 included: read as uint8)
  a dict       its items in the order of str(key), each key with its type
  a list/tuple its items in order
  anything else, its type and repr
A weights file is hashed as {"metadata": its metadata but the checksum, "tensors": its tensors},
a checkpoint as its dict without the checksum. Every token goes in with its length first, so no
two contents give the same stream.

`save_sealed` and `read_safetensors` write and read every weights file ninlab makes (a run's best
and final, a converted model), so that each carries its checksum the same way.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from ninlab.errors import NinlabError
from ninlab.files import atomic_write

KEY = "ninlab_sha256"  # the metadata key (safetensors) or dict key (checkpoint.pt) of the digest


class Unchecked(UserWarning):
    """A file written before ninlab stored checksums: it is read, but damage in it goes unseen."""


def digest(content) -> str:
    """The SHA-256 (hex) of `content` in the canonical walk of the module docstring."""
    h = hashlib.sha256()
    _feed(h, content)
    return h.hexdigest()


def _feed(h, x) -> None:
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous()
        _token(h, f"tensor {t.dtype} {tuple(t.shape)}")
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(x, Mapping):
        _token(h, f"dict {len(x)}")
        for k in sorted(x, key=lambda k: (str(k), type(k).__name__)):
            _token(h, f"{type(k).__name__} {k}")
            _feed(h, x[k])
    elif isinstance(x, list | tuple):
        _token(h, f"{type(x).__name__} {len(x)}")
        for v in x:
            _feed(h, v)
    else:
        _token(h, f"{type(x).__name__} {x!r}")


def _token(h, text: str) -> None:
    b = text.encode("utf-8", "surrogatepass")
    h.update(len(b).to_bytes(8, "little"))
    h.update(b)


def sealed_metadata(metadata: dict[str, str], tensors: Mapping[str, torch.Tensor]) -> dict:
    """The metadata of a weights file with the digest of it and its tensors added."""
    plain = {k: v for k, v in metadata.items() if k != KEY}
    return {**plain, KEY: digest({"metadata": plain, "tensors": tensors})}


def save_sealed(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: dict) -> None:
    """Write `tensors` as safetensors, atomically, with `metadata` and their checksum (read back
    by `read_safetensors`, checked by `check_weights`)."""
    state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = sealed_metadata(metadata, state)
    atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata=meta))


def read_safetensors(path: str | Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file, from one read of its bytes; one sentence when
    it is not one. The checksum is the caller's to check (`check_weights`), with its own remedy.

    One read, because `safe_open` is two: it parses the header from the file it opened, then
    maps the tensors from whatever file the path names a moment later, so a reader beside a
    training run that replaces the file (atomically) could pair one epoch's header with the
    next epoch's tensors. The file's layout: an 8-byte little-endian header length, the JSON
    header ("__metadata__" holds the metadata), then the tensors' bytes."""
    try:
        data = Path(path).read_bytes()
        tensors = load(data)  # checks the header and every tensor's place
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
    except (SafetensorError, OSError, ValueError) as e:
        raise NinlabError(f"{path} cannot be read as safetensors ({e}).") from None
    return header.get("__metadata__") or {}, tensors


def sealed(checkpoint: dict) -> dict:
    """A checkpoint dict with its digest added (a new dict; the tensors are not copied)."""
    plain = {k: v for k, v in checkpoint.items() if k != KEY}
    return {**plain, KEY: digest(plain)}


def matches(stored, content) -> bool | None:
    """Whether `content` still has the digest `stored` with it; None when there is none (a file
    from before checksums). Content that cannot be walked (a damaged file) does not match."""
    if stored is None:
        return None
    try:
        return digest(content) == stored
    except (RuntimeError, TypeError, ValueError, RecursionError):
        return False


def check_weights(path: str | Path, metadata: dict, tensors: dict, remedy: str) -> None:
    """NinlabError naming `path` and saying `remedy` when the metadata and tensors read from it
    differ from its checksum; a warning (Unchecked) when it has none."""
    plain = {k: v for k, v in metadata.items() if k != KEY}
    if not _verdict(path, matches(metadata.get(KEY), {"metadata": plain, "tensors": tensors}),
                    remedy):  # fmt: skip
        unchecked(path)


def check_checkpoint(path: str | Path, checkpoint: dict, remedy: str) -> dict:
    """The checkpoint without its digest; NinlabError naming `path` and saying `remedy` when the
    rest differs from it, a warning (Unchecked) when there is none."""
    plain = {k: v for k, v in checkpoint.items() if k != KEY}
    if not _verdict(path, matches(checkpoint.get(KEY), plain), remedy):
        unchecked(path)
    return plain


def _verdict(path, same: bool | None, remedy: str) -> bool:
    if same is False:
        raise NinlabError(
            f"{path} is damaged: its content does not match the checksum written with it; {remedy}."
        )
    return bool(same)


def unchecked(path: str | Path) -> None:
    """Warn (once per file) that `path` carries no checksum and is read unchecked."""
    warnings.warn(
        f"{path} carries no checksum (an older ninlab wrote it), so it is read unchecked",
        Unchecked,
        stacklevel=3,
    )
