"""What went wrong with the database file itself, said in one line with what to do about it.

SQLite reports a damaged, read-only, locked or full database with terse codes ("file is not a
database", "attempt to write a readonly database", "database is locked", "database or disk is
full") that surface as a 30-line traceback far from their cause. ``explain`` turns each into a
``DatabaseError`` (a ``TuneloopError``: one line, exit code 2) that names the file and the way
out: restore from a backup, fix the permissions, which process holds the lock, free disk space.

Errors that are the program's (a constraint, a bad query) are not translated: ``explain`` returns
``None`` for them and the caller re-raises the original, traceback and all.

Which process holds the lock is read from ``/proc/locks`` (the POSIX locks SQLite takes on the
database and its ``-shm`` file) and, failing that, from the processes that have the file open
(``/proc/*/fd``), the way ``fuser`` does; on systems without ``/proc`` the message says how to
find it instead.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from tuneloop.errors import TuneloopError


class DatabaseError(TuneloopError):
    """The project database cannot be used as it is: damaged, read-only, locked, full, or made by
    a newer tuneloop. ``kind`` says which (``corrupt``, ``readonly``, ``locked``, ``full``,
    ``io``, ``cannot_open``, ``newer``)."""

    def __init__(self, path: str | Path, kind: str, message: str):
        self.path = str(path)
        self.kind = kind
        super().__init__(f"{path}: {message}")


def kind_of(error: BaseException) -> str | None:
    """The class of an SQLite error that is about the file or its environment, else ``None``."""
    if isinstance(error, OSError) and not isinstance(error, sqlite3.Error):
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return "readonly"
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return "full"
        return None
    if not isinstance(error, (sqlite3.OperationalError, sqlite3.DatabaseError)):
        return None
    if isinstance(error, (sqlite3.IntegrityError, sqlite3.ProgrammingError,
                          sqlite3.InterfaceError, sqlite3.NotSupportedError)):
        return None
    text = str(error).lower()
    if "not a database" in text or "malformed" in text or "file is encrypted" in text:
        return "corrupt"
    if "readonly" in text or "read-only" in text:
        return "readonly"
    if "locked" in text or "database is busy" in text:
        return "locked"
    if "disk is full" in text or "database or disk is full" in text:
        return "full"
    if "disk i/o error" in text:
        return "io"
    if "unable to open database" in text:
        return "cannot_open"
    return None


def explain(path: str | Path, error: BaseException,
            busy_timeout_s: float | None = None) -> DatabaseError | None:
    """A one-line ``DatabaseError`` for ``error`` on the database at ``path``, or ``None`` when
    the error is not about the file (the caller re-raises it as it is)."""
    kind = kind_of(error)
    if kind is None:
        return None
    path = Path(path)
    if kind == "io" and _free_bytes(path) < LOW_SPACE_BYTES:
        kind = "full"  # SQLite says "disk I/O error" when it cannot even create its -shm file
    if kind == "corrupt":
        return DatabaseError(path, kind, f"not a usable SQLite database ({error}): restore it "
                             f"from a backup, or move it away to start a new one")
    if kind == "readonly":
        return DatabaseError(path, kind, f"cannot write ({_readonly_reason(path, error)}): fix the "
                             f"permissions so this user can write the file and its folder "
                             f"(SQLite also writes {path.name}-wal and {path.name}-shm there)")
    if kind == "locked":
        waited = f" for {busy_timeout_s:g} s" if busy_timeout_s is not None else ""
        return DatabaseError(path, kind, f"locked by another writer{waited} "
                             f"({holders_text(path)}): wait for it to finish or stop it, then "
                             f"run the command again")
    if kind == "full":
        return DatabaseError(path, kind, f"the disk is full ({free_text(path)}): free space "
                             f"or move the project to a larger disk; nothing was half-written")
    if kind == "io":
        return DatabaseError(path, kind, f"disk I/O error ({free_text(path)}): check the disk "
                             f"and free space, then restore the file from a backup if it is "
                             f"damaged")
    if path.is_dir():
        return DatabaseError(path, kind, "is a folder, not a database file: point `database:` "
                             "in the config at a file")
    return DatabaseError(path, kind, f"cannot open ({_readonly_reason(path, error)}): check that "
                         f"its folder exists and this user may read and write it")


def _readonly_reason(path: Path, error: BaseException) -> str:
    folder = path.parent if str(path.parent) else Path(".")
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only"
    if folder.exists() and not os.access(folder, os.W_OK):
        return "its folder is read-only"
    if isinstance(error, OSError) and error.errno == errno.EROFS:
        return "read-only file system"
    text = str(error)
    return text if text else "permission denied"


LOW_SPACE_BYTES = 1 << 20


def _free_bytes(path: Path) -> float:
    try:
        return shutil.disk_usage(path.parent if str(path.parent) else ".").free
    except OSError:
        return float("inf")


def free_text(path: Path) -> str:
    try:
        usage = shutil.disk_usage(path.parent if str(path.parent) else ".")
    except OSError:
        return "free space unknown"
    return f"{_size(usage.free)} free of {_size(usage.total)}"


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover


# ---- who holds the lock ------------------------------------------------------------------------


def lock_holders(path: str | Path) -> list[int]:
    """Process ids holding the database: write locks on the file or its ``-shm`` (``/proc/locks``)
    first; else every other process with one of the files open (``/proc/*/fd``)."""
    path = Path(path)
    files = [Path(f"{path}{suffix}") for suffix in ("", "-shm", "-wal", "-journal")]
    me = os.getpid()
    inodes = set()
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        inodes.add((os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino))
    holders: list[int] = []
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if "->" in fields:  # a waiter, not a holder
                    continue
                if len(fields) < 6 or fields[3] != "WRITE" or not fields[4].isdigit():
                    continue  # readers hold READ locks; the writer holds a WRITE lock
                try:
                    major, minor, inode = fields[5].split(":")
                    key = (int(major, 16), int(minor, 16), int(inode))
                except ValueError:
                    continue
                pid = int(fields[4])
                if key in inodes and pid != me and pid not in holders:
                    holders.append(pid)
    except OSError:
        pass
    if holders:
        return holders
    return _open_by(files, me)


def _open_by(files: list[Path], me: int) -> list[int]:
    wanted = {str(file.resolve()) for file in files if file.exists()}
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                    found.append(int(entry))
                    break
        except OSError:
            continue
    return found


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    text = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
    return text if len(text) <= 80 else text[:77] + "..."


def holders_text(path: str | Path) -> str:
    pids = lock_holders(path)
    if not pids:
        return "no other process found holding it; `fuser` or `lsof` on the file may tell"
    shown = [f"pid {pid}" + (f": {command}" if (command := _command(pid)) else "")
             for pid in pids[:3]]
    return "held by " + "; ".join(shown) + (f" and {len(pids) - 3} more" if len(pids) > 3 else "")
