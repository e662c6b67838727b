"""The cache of folders read as data sets: a size cap with least-recently-used eviction.

The cache (ninlab.data.folders.cache_root, ~/.cache/ninlab/folders unless XDG_CACHE_HOME is set)
holds entries, each the files that share the name's first part: a census (KEY.census.json) or a
decoded tensor with its list of skipped files (KEY.safetensors, KEY.skipped.txt). Reading an
entry marks it used (its modification time is set to now); after a folder is read, the entries
least recently used are deleted until the cache holds at most NINLAB_CACHE_MAX bytes (a number
of bytes or one with a unit: 500M, 2G; 0 keeps only what is in use; default 2G). The entries the
read uses are never deleted. Two processes may share the cache: every file is written whole by
ninlab.files.atomic_write, a reader that lost an entry to another's eviction reads the folder
again, and a file deleted by someone else first is passed over. `ninlab data --clear-cache`
empties it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ninlab.errors import NinlabError

ENV = "NINLAB_CACHE_MAX"
DEFAULT_MAX = 2 * 2**30  # bytes: about a thousand folders of 2 MiB
UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
STALE_S = 24 * 3600  # a temporary file this old was left by a killed writer


@dataclass
class Entry:
    """The files of one cache entry, their bytes, and when it was last used."""

    key: str
    files: list[Path]
    bytes: int
    used: float  # the latest modification time of its files


def cache_max() -> int:
    """The cap in bytes: NINLAB_CACHE_MAX (e.g. 2G, 500M, 0), else DEFAULT_MAX."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", text, re.IGNORECASE)
    if not m:
        raise NinlabError(
            f"{ENV}={text!r} is not a size; give bytes or a number with K, M, G or T (2G, 500M, "
            "0 to keep only the entries in use)."
        )
    return int(float(m[1]) * UNITS[m[2].upper()])


def key_of(path: Path) -> str:
    """The entry a cache file belongs to: its name up to the first dot."""
    return path.name.lstrip(".").split(".")[0]


def entries(folder: Path) -> list[Entry]:
    """The entries in `folder`, least recently used first (temporary files of writers are not
    entries)."""
    found: dict[str, Entry] = {}
    for path in _files(folder):
        if path.name.startswith("."):
            continue
        try:
            st = path.stat()
        except FileNotFoundError:  # deleted by another process since the listing
            continue
        e = found.setdefault(key_of(path), Entry(key_of(path), [], 0, 0.0))
        e.files.append(path)
        e.bytes += st.st_size
        e.used = max(e.used, st.st_mtime)
    return sorted(found.values(), key=lambda e: (e.used, e.key))


def _files(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_file()]
    except OSError:  # no cache yet, or not a folder
        return []


def touch(path: Path) -> None:
    """Mark the entry of `path` used now; a cache that cannot be written costs nothing."""
    try:
        os.utime(path)
    except OSError:
        pass


def evict(folder: Path, keep: set[str], cap: int | None = None) -> list[Entry]:
    """Delete the least recently used entries of `folder` (never those whose key is in `keep`)
    until it holds at most `cap` bytes (default `cache_max()`), and temporary files older than
    STALE_S; returns the entries deleted."""
    cap = cache_max() if cap is None else cap
    now = time.time()
    for path in _files(folder):
        if path.name.startswith("."):
            try:
                if now - path.stat().st_mtime > STALE_S:
                    path.unlink()
            except OSError:
                pass
    found = entries(folder)
    total = sum(e.bytes for e in found)
    gone = []
    for e in found:
        if total <= cap:
            break
        if e.key in keep:
            continue
        for path in e.files:
            try:
                path.unlink()
            except FileNotFoundError:  # another process evicted it first
                pass
            except OSError:
                continue
        total -= e.bytes
        gone.append(e)
    return gone


def clear(folder: Path) -> tuple[int, int, int]:
    """Delete every file in `folder`, temporary ones too; (entries, files, bytes) deleted."""
    keys, files, size = set(), 0, 0
    for path in _files(folder):
        try:
            n = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise NinlabError(
                f"cannot delete {path} ({e.strerror or e}); delete {folder} yourself."
            ) from None
        files, size = files + 1, size + n
        if not path.name.startswith("."):
            keys.add(key_of(path))
    return len(keys), files, size
