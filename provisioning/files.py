"""The files provisioning installs, written atomically under a root, and their drift.

A provisioning run computes a list of :class:`Wanted` entries (path, content,
mode, owner) and :func:`apply` makes the tree match: each file is written to a
temporary file in its directory, fsync'd, given its mode and owner, renamed
over the old one, and the directory fsync'd, so a power cut leaves the old or
the new file, never half of one.  Unchanged files are not touched (a re-run
changes nothing).  :func:`drift` compares without writing (``--check``).

Owners are names, resolved in the *target* root's ``/etc/passwd`` and
``/etc/group`` (an image's users, not the laptop's).  A name the root does not
know yet is left for ``tmpfiles.d`` to apply at the board's next boot, and
reported as pending.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath


@dataclass(frozen=True, slots=True)
class Wanted:
    """One file or symlink as it should be.

    Attributes:
        path: absolute path on the target system (``/etc/kioskd/kioskd.toml``).
        content: the bytes of a regular file; None for a symlink.
        mode: permission bits of a regular file.
        owner, group: names on the target system.
        link: target of a symlink (``/dev/null`` masks a unit).
        secret: content is a secret: never shown in diffs or reports.
        absent: the path must not exist (a unit's enable link when it is not enabled).

    """

    path: str
    content: bytes | None = None
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    link: str | None = None
    secret: bool = False
    absent: bool = False


class Action(StrEnum):
    """What :func:`apply` did, or :func:`drift` would do, to one path."""

    CREATE = "create"
    UPDATE = "update"
    MODE = "mode"
    OWNER = "owner"
    REMOVE = "remove"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome for one wanted path; ``pending`` names owners the root does not know yet."""

    path: str
    action: Action
    detail: str = ""
    pending: str = ""


def _ids(root: Path, name: str) -> dict[str, int]:
    table: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in (root / "etc" / name).read_text(encoding="utf-8").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[2].isdigit():  # noqa: PLR2004 - name:x:id
                table.setdefault(fields[0], int(fields[2]))
    return table


@dataclass(frozen=True, slots=True)
class Accounts:
    """User and group ids of the target root."""

    users: dict[str, int]
    groups: dict[str, int]

    @classmethod
    def of(cls, root: Path) -> Accounts:
        """Read ``root/etc/passwd`` and ``root/etc/group`` (missing files: no names known)."""
        return cls(_ids(root, "passwd"), _ids(root, "group"))

    def resolve(self, wanted: Wanted) -> tuple[int | None, int | None, str]:
        """Uid, gid (None when unknown) and the unknown names, for ``wanted``."""
        uid = self.users.get(wanted.owner)
        gid = self.groups.get(wanted.group)
        unknown = [n for n, i in ((wanted.owner, uid), (wanted.group, gid)) if i is None]
        return uid, gid, ",".join(unknown)


def target(root: Path, path: str) -> Path:
    """``path`` (absolute on the target) inside ``root``."""
    return root / PurePosixPath(path).relative_to("/")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, content: bytes, mode: int, uid: int | None, gid: int | None) -> None:
    """Replace ``path`` with ``content`` atomically (temp file, fsync, chmod/chown, rename).

    The file never exists with a wider mode than ``mode``: the temporary file is
    created 0600 and given its mode before the rename.

    Raises:
        OSError: the directory is not writable, the disk is full, ...

    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(mode)
        if uid is not None or gid is not None:
            os.chown(tmp, -1 if uid is None else uid, -1 if gid is None else gid)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    _fsync_dir(path.parent)


def _symlink(path: Path, link: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(link)
    tmp.replace(path)
    _fsync_dir(path.parent)


def _compare(root: Path, wanted: Wanted, accounts: Accounts) -> Change:  # noqa: PLR0911
    path = target(root, wanted.path)
    uid, gid, unknown = accounts.resolve(wanted)
    try:
        st = path.lstat()
    except FileNotFoundError:
        if wanted.absent:
            return Change(wanted.path, Action.UNCHANGED)
        return Change(wanted.path, Action.CREATE, pending=unknown)
    if wanted.absent:
        return Change(wanted.path, Action.REMOVE)
    if wanted.link is not None:
        if not stat.S_ISLNK(st.st_mode) or str(path.readlink()) != wanted.link:
            return Change(wanted.path, Action.UPDATE, f"symlink to {wanted.link}")
        return Change(wanted.path, Action.UNCHANGED)
    if not stat.S_ISREG(st.st_mode) or path.read_bytes() != wanted.content:
        return Change(wanted.path, Action.UPDATE, "content differs", pending=unknown)
    if stat.S_IMODE(st.st_mode) != wanted.mode:
        return Change(
            wanted.path,
            Action.MODE,
            f"mode {stat.S_IMODE(st.st_mode):04o}, want {wanted.mode:04o}",
            pending=unknown,
        )
    if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
        return Change(
            wanted.path,
            Action.OWNER,
            f"owner {st.st_uid}:{st.st_gid}, want {wanted.owner}:{wanted.group}",
            pending=unknown,
        )
    return Change(wanted.path, Action.UNCHANGED, pending=unknown)


def drift(root: Path, wanted: Iterable[Wanted]) -> list[Change]:
    """How the tree under ``root`` differs from ``wanted`` (nothing is written)."""
    accounts = Accounts.of(root)
    return [_compare(root, w, accounts) for w in wanted]


def apply(root: Path, wanted: Iterable[Wanted], *, dry_run: bool = False) -> list[Change]:
    """Make the tree under ``root`` match ``wanted``; returns what changed (or would).

    Raises:
        OSError: a file could not be written.

    """
    accounts = Accounts.of(root)
    changes: list[Change] = []
    for entry in wanted:
        change = _compare(root, entry, accounts)
        changes.append(change)
        if dry_run or change.action is Action.UNCHANGED:
            continue
        path = target(root, entry.path)
        if entry.absent:
            path.unlink()
            _fsync_dir(path.parent)
            continue
        if entry.link is not None:
            _symlink(path, entry.link)
            continue
        uid, gid, _ = accounts.resolve(entry)
        if change.action in (Action.MODE, Action.OWNER):
            path.chmod(entry.mode)
            if uid is not None or gid is not None:
                os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        else:
            assert entry.content is not None
            atomic_write(path, entry.content, entry.mode, uid, gid)
    return changes


def read_existing(root: Path, path: str) -> bytes | None:
    """The current content of a target file, or None if it does not exist."""
    try:
        return target(root, path).read_bytes()
    except FileNotFoundError:
        return None
