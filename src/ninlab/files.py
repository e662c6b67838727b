"""Writing files so that no reader ever sees half of one, and a full disk costs no old file.

Every file ninlab writes goes through `atomic_write`: the content goes to a temporary file
`.NAME.XXXXXXXX.tmp` in the same folder (mode 0600 while it is written), is flushed to disk, then
renamed over NAME. A reader, or a process killed at any moment, sees the old file or the new one,
never a mix; a write that fails (a full disk, a read-only folder) leaves the old file as it was
and raises CannotWrite, one sentence that says what to do.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ninlab import faults
from ninlab.errors import NinlabError

TMP_SUFFIX = ".tmp"


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
    Returns the path; raises CannotWrite (the old file intact, the temporary file gone) when the
    disk refuses."""
    path = Path(path)
    if path.is_dir():
        raise NinlabError(f"{path} is a folder; pass a file name.")
    make_dir(path.parent)
    kept = path.exists()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as e:
        raise CannotWrite(path, e, kept) from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        faults.reached(f"write:{path.name}")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except OSError as e:
        raise CannotWrite(path, e, kept) from None
    except Exception:  # torch.save and safetensors say "disk full" in their own words
        if not _full(path.parent):
            raise
        raise CannotWrite(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), kept) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
    """Whether the file system of `folder` has (almost) no room left, 1 MiB or less."""
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
