"""Writing files so that no reader ever sees half of one, and a full disk costs no old file.

Every file ninlab writes goes through `atomic_write`: the content goes to a temporary file
`.NAME.XXXXXXXX.tmp` in the same folder (mode 0600 while it is written), is flushed to disk, then
renamed over NAME. A reader, or a process killed at any moment, sees the old file or the new one,
never a mix; a write that fails (a full disk, a read-only folder) leaves the old file as it was
and raises CannotWrite, one sentence that says what to do. A full disk or quota is known by its
errno (ENOSPC, EDQUOT) wherever it surfaces: on the OSError, down the exception chain, or in the
words of torch.save and safetensors, which wrap it (`disk_full`).

Files that belong together (one epoch of a run) are written inside `together()`: each goes to
its temporary, and only when all are written are they renamed, so a full disk halfway leaves
the previous set whole. Functions in `on_written` are called at the moment between the two
steps, the new content on disk and not yet renamed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path

from ninlab.errors import NinlabError

TMP_SUFFIX = ".tmp"

# Each is called as hook(path) when the new content of `path` is written and synced to its
# temporary, before the rename makes it `path` (inside `together()`, before the block's end):
# to log or audit writes, or to stop the process at that moment, as bench/faults.py does to
# show that a reader then still sees the old file whole.
on_written: list[Callable[[Path], None]] = []


class CannotWrite(NinlabError):
    """A file or folder could not be written; what was there before is unchanged."""

    def __init__(self, path: str | Path, error: OSError, kept: bool = False):
        path = Path(path)
        reason = (error.strerror or str(error)).rstrip(".").lower()
        self.path, self.errno, self.reason = path, error.errno, reason
        kept_text = f"; the previous {path.name} is kept" if kept else ""
        super().__init__(f"cannot write {path}: {reason}{kept_text}; {_remedy(error.errno)}.")


def _remedy(code: int | None) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free some space there, or write somewhere else"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a place you can write to"
    if code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return "a file stands where a folder is needed (or the other way round); pick another path"
    return "check the path and the disk"


def make_dir(path: str | Path) -> Path:
    """Create folder `path` (and its parents); one sentence when it cannot be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NinlabError(f"{path} is a file, not a folder; pass a folder path.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CannotWrite(path, e) from None
    return path


def writable_file(path: str | Path) -> Path:
    """A file to be written after some work, checked before it: not a folder, in a folder that
    exists (created here) and that this user may write in; else one sentence."""
    path = Path(path)
    if path.is_dir():
        raise NinlabError(f"{path} is a folder; pass a file name.")
    make_dir(path.parent)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise CannotWrite(path, PermissionError(errno.EACCES, os.strerror(errno.EACCES)))
    return path


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call write(tmp) on a temporary file in the same folder (created if need be), fsync it,
    then rename it over `path`: readers see the old file or the new one, never a partial one.
    Inside a `together()` block the rename waits for the block's end. Returns the path; raises
    CannotWrite (the old file intact, the temporary file gone) when the disk refuses."""
    path = Path(path)
    if path.is_dir():
        raise NinlabError(f"{path} is a folder; pass a file name.")
    make_dir(path.parent)
    kept = path.exists()
    tmp = _temporary(path, write, kept)
    staged = _staged.get()
    if staged is not None:
        staged.append((tmp, path, kept))
    else:
        _rename(tmp, path, kept)
    return path


# the temporaries written inside the innermost open `together()` block: (tmp, path, kept)
_staged: ContextVar[list[tuple[str, Path, bool]] | None] = ContextVar("staged", default=None)


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Files written by `atomic_write` in this block are renamed into place together at its end:
    an error in the block (a full disk) leaves every one of them as it was, temporaries removed.
    The renames take no space, so a full disk stops the block before any file changes; only a
    kill between two renames leaves some new and some old. A block inside another joins it."""
    if _staged.get() is not None:
        yield
        return
    staged: list[tuple[str, Path, bool]] = []
    token = _staged.set(staged)
    try:
        yield
    except BaseException:
        for tmp, _, _ in staged:
            _discard(tmp)
        raise
    finally:
        _staged.reset(token)
    for i, (tmp, path, kept) in enumerate(staged):
        try:
            _rename(tmp, path, kept)
        except CannotWrite:
            for later, _, _ in staged[i + 1 :]:
                _discard(later)
            raise


def _temporary(path: Path, write: Callable[[str], object], kept: bool) -> str:
    """write(tmp) on a new temporary beside `path` (0600 while written), synced to disk, with the
    mode open() would give; its name. On any failure the temporary is gone."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as e:
        raise CannotWrite(path, e, kept) from None
    os.close(fd)
    done = False
    try:
        token = _staged.set(None)  # a write(tmp) that itself writes atomically fills tmp now
        try:
            write(tmp)
        finally:
            _staged.reset(token)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        for hook in on_written:
            hook(path)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        done = True
    except Exception as e:
        refused = _refusal(path, e, kept)
        if refused is None:
            raise
        raise refused from None
    finally:
        if not done:
            _discard(tmp)
    return tmp


def _rename(tmp: str, path: Path, kept: bool) -> None:
    try:
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise CannotWrite(path, e, kept) from None


def _discard(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _refusal(path: Path, error: Exception, kept: bool) -> CannotWrite | None:
    """The CannotWrite that `error`, raised while writing `path`, stands for; None when it is no
    refusal of the disk (a bug, to be raised as it is)."""
    code = disk_full(error)
    if code is None and isinstance(error, OSError):
        return CannotWrite(path, error, kept)
    if code is None and _full(path.parent):  # a writer that names no errno, as torch.save to a
        code = errno.ENOSPC  # path: "unexpected pos 576 vs 534"
    if code is None:
        return None
    return CannotWrite(path, OSError(code, os.strerror(code)), kept)


# how the writers ninlab calls report a full disk or quota when they do not raise an OSError:
# safetensors "I/O error: No space left on device (os error 28)", torch "error code: 28"
_SAID = {
    code: re.compile(rf"{re.escape(os.strerror(code))}|\b(?:os error|error code:?) {code}\b", re.I)
    for code in (errno.ENOSPC, errno.EDQUOT)
}


def disk_full(error: BaseException) -> int | None:
    """ENOSPC or EDQUOT when `error`, or an error it was raised from or during (__cause__,
    __context__, followed all the way), says the disk or the quota is full: by its errno, or in
    the words of a writer that wraps it; else None."""
    seen, todo = set(), [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _SAID:
            return e.errno
        for code, said in _SAID.items():
            if said.search(str(e)):
                return code
        todo += [e.__cause__, e.__context__]
    return None


def write_text(path: str | Path, text: str) -> Path:
    """atomic_write of a UTF-8 text."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """atomic_write of bytes."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def leftovers(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """The temporary files that killed writers of `names` left in `folder`."""
    return [tmp for name in names for tmp in Path(folder).glob(f".{name}.*{TMP_SUFFIX}")]


def remove_leftovers(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Delete leftovers(folder, names) (call it only while no one else writes those names
    there); returns what was deleted."""
    gone = leftovers(folder, names)
    for tmp in gone:
        tmp.unlink(missing_ok=True)
    return gone


def _full(folder: Path) -> bool:
    """Whether the file system of `folder` has (almost) no room left, 1 MiB or less: the last
    resort for an error that names no errno."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize <= 2**20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def wrote(path: str | Path, existed: bool) -> str:
    """The line a verb prints after writing `path`: "wrote PATH", or "replaced PATH" when a file
    was there before (nothing is overwritten without saying so)."""
    return f"{'replaced' if existed else 'wrote'} {path}"
