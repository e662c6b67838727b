"""A lock file that says which process owns a folder, and notices when that process is gone.

`DirLock(folder).acquire()` creates folder/train.lock exclusively (O_CREAT | O_EXCL, so of two
processes starting at once exactly one gets it) holding the owner's host, process id and start
time. A process that finds the lock taken reads it: if the owner runs on this host and no process
with that id and start time exists any more (it was killed, `kill -9` included), the lock is stale
and is taken over; otherwise it refuses in one sentence. The start time (from /proc on Linux)
keeps a recycled process id from passing for the dead owner. `release()` removes the file.
The lock is never followed through a symbolic link (O_NOFOLLOW): anything but a regular file at
its place (a link, dangling or not, a folder, a pipe) is refused, as nobody's lock.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ninlab.errors import NinlabError
from ninlab.files import CannotWrite, make_dir

LOCK = "train.lock"
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # no link; no waiting pipe
UNFILLED_S = 2.0  # how long an unreadable lock may be a rival's still being filled in
KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFDIR: "a folder", stat.S_IFIFO: "a named pipe",
         stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}  # fmt: skip


class Locked(NinlabError):
    """Another live process holds the lock."""


class NotALock(NinlabError):
    """Something other than a regular file stands where the lock goes."""


@dataclass(frozen=True)
class Owner:
    """Who holds a lock."""

    host: str
    pid: int
    started: float | None  # the process's start time where the system tells it (Linux), else None
    since: str  # when it took the lock, for people
    command: str

    def alive(self) -> bool | None:
        """Whether the owner still runs: True, False, or None when it cannot be told (another
        host)."""
        if self.host != socket.gethostname():
            return None
        if self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, OverflowError):  # no such process (or no such id)
            return False
        except PermissionError:  # it exists, under another user
            pass
        return self.started is None or _start_time(self.pid) in (None, self.started)

    def describe(self) -> str:
        return f"process {self.pid} on {self.host} (since {self.since})"


class DirLock:
    """The lock of one folder; a context manager that releases it on the way out."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.held = False
        self.took_over: Owner | None = None  # the dead owner whose stale lock was replaced

    def acquire(self, remedy: str = "wait for it to finish") -> DirLock:
        """Take the lock (creating the folder), or raise Locked naming the live owner and
        saying `remedy`."""
        make_dir(self.folder)
        me = Owner(socket.gethostname(), os.getpid(), _start_time(os.getpid()),
                   time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(sys.argv)[:200])  # fmt: skip
        unfilled_since = None  # when this process first saw the lock unreadable
        for _ in range(100):  # released or replaced by a rival in between: look again
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW, 0o644)
            except FileExistsError:
                self._refuse_what_is_not_a_file()
                owner = self.owner()
                if owner is None:
                    continue  # released just now
                if owner.pid == 0:  # a rival may be filling it in: give it UNFILLED_S
                    unfilled_since = unfilled_since or time.monotonic()
                    if max(_age(self.path), time.monotonic() - unfilled_since) < UNFILLED_S:
                        time.sleep(0.05)
                        continue
                alive = owner.alive()
                if alive is not False:
                    raise Locked(f"{self._refusal(owner, alive)}; {remedy}.") from None
                self._remove_stale(owner)
                continue
            except OSError as e:
                raise CannotWrite(self.path, e) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me.__dict__, f)
            self.held = True
            return self
        raise Locked(f"{self.path} keeps changing hands; try again.")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def owner(self) -> Owner | None:
        """The recorded owner, or None when there is no lock. An unreadable lock file (a crash
        between creating and filling it) belongs to a dead owner: process id 0 on no host."""
        return self._read(self.path)

    def _refuse_what_is_not_a_file(self) -> None:
        """Raise NotALock when a link, folder or pipe stands where the lock goes: no process
        wrote it, and taking it over would follow or destroy what someone put there."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return  # released just now
        if not stat.S_ISREG(mode):
            kind = KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise NotALock(
                f"{self.path} is {kind}, not a ninlab lock; delete it if nothing trains in "
                f"{self.folder}."
            )

    @staticmethod
    def _read(path: Path) -> Owner | None:
        try:
            fd = os.open(path, os.O_RDONLY | NOFOLLOW)
        except FileNotFoundError:
            return None
        except PermissionError:  # another user's lock, written under a strict umask
            raise Locked(
                f"{path} cannot be read (permission denied), so another user may be training in "
                f"{path.parent}; ask them, or delete it if nothing trains there."
            ) from None
        except OSError:  # a link (ELOOP) or a socket put there since: nobody's lock
            return Owner(socket.gethostname(), 0, None, "?", "an unreadable lock file")
        try:
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise ValueError("not a regular file")
                d = json.loads(f.read(65536))  # a lock is a few hundred bytes
            return Owner(str(d["host"]), int(d["pid"]), d.get("started"), str(d["since"]),
                         str(d.get("command", "")))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, OverflowError):
            return Owner(socket.gethostname(), 0, None, "?", "an unreadable lock file")

    def _remove_stale(self, owner: Owner) -> None:
        """Replace the file of a dead owner; only one rival wins the rename."""
        grave = self.path.with_name(f".{LOCK}.{os.getpid()}.stale")
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return
        except OSError as e:  # not ours to remove (another user's lock in a shared folder)
            raise CannotWrite(self.path, e) from None
        if self._read(grave) != owner:  # a rival replaced it first: put its live lock back
            try:
                os.link(grave, self.path, follow_symlinks=False)
            except FileExistsError:
                pass
        else:
            self.took_over = owner
        grave.unlink(missing_ok=True)

    def _refusal(self, owner: Owner, alive: bool | None) -> str:
        where = "" if alive else (
            f"; ninlab cannot see that host, so if nothing runs there any more delete {self.path}"
        )  # fmt: skip
        return f"{self.folder} is in use by {owner.describe()}{where}"

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _age(path: Path) -> float:
    try:
        return time.time() - os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _start_time(pid: int) -> float | None:
    """The start time of a process in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return float(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name may hold spaces
