"""The updater: install a kioskd version from the signed repository behind a health gate.

Runs as root, with the standard library only, by Debian's ``/usr/bin/python3``
from a copy of this file in :data:`STATE` (``kioskd update`` and the boot-time
``kioskd-update.service`` run the copy), so a broken new package cannot break its
own rollback.  One update goes through phases, each written to the journal
(temporary file, fsync, rename, directory fsync) before it starts::

    fetch (nothing installed yet) -> install -> gate -> commit
                                         (failed or unhealthy) -> rollback

- fetch: ``apt-get download`` the new version (apt verifies it against the
  signed index) and keep the installed one's package in ``kept/`` (the last
  two good versions), so a rollback needs no network;
- install: ``apt-get install ./new.deb``;
- gate: restart the daemon and run the *new* version's ``kioskd update gate``
  (ready, API round trip, fleet birth) with the gate window as its deadline;
- commit: the new package joins ``kept/``; rollback: ``dpkg --configure -a`` and
  the kept package again, the daemon restarted, the reason recorded.

A power cut or kill at any point leaves a journal; :func:`resume` (at boot,
before the daemon) finishes the phase it names: an install is repeated and
gated again, a gate is run again, a commit or a rollback is finished.  A phase
resumed :data:`MAX_RESUMES` times rolls back.  :data:`STATUS` (world-readable)
holds the outcome, which the daemon reports upstream (birth and health).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE = Path("/var/lib/kioskd-update")
#: The outcome of the last update (world-readable: the daemon reports it upstream).
STATUS = STATE / "status.json"
#: A fleet ``update`` command, written by the daemon in its runtime dir (kioskd-update.path).
REQUEST = "update.request"
#: The daemon's record of its last acknowledged fleet birth, in its runtime dir (the gate reads it).
BIRTH_FILE = "uplink-birth.json"
MAX_RESUMES = 3
#: A Debian version: nothing else (never a URL, a path or options) reaches apt.
VERSION = re.compile(r"^[0-9][A-Za-z0-9.+~]{0,63}(-[A-Za-z0-9.+~]{1,32})?$")
APT_TIMEOUT_S = 900
COMMAND_TIMEOUT_S = 120
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
#: No pty for dpkg: apt would start it in a session of its own, which outlives a killed
#: updater and holds the dpkg lock against the resume (a power cut stops both anyway).
DPKG_OPTIONS = (
    "-o", "Dpkg::Use-Pty=0",
    "-o", "Dpkg::Options::=--force-confold", "-o", "Dpkg::Options::=--force-confdef",
)  # fmt: skip
DPKG_LOCK = Path("/var/lib/dpkg/lock-frontend")
#: The fleet's repository entry (provisioning/apt.py writes it).
FLEET_SOURCES = Path("/etc/apt/sources.list.d/kioskd.sources")
LOCK_POLL_S = 1.0


class UpdateError(Exception):
    """An update refused or failed before anything was installed; the message says why."""


@dataclass
class Settings:
    """How the board restarts and checks its daemon (kept in the journal for a resume).

    Attributes:
        restart: argv that restarts the daemon (systemd; a board without it names a script).
        gate: argv of the new version's health gate (``--window S`` is added); exit 0 is healthy.
        window_s: seconds the gate may take, restart included.

    """

    restart: list[str] = field(default_factory=lambda: ["systemctl", "restart", "kioskd.service"])
    gate: list[str] = field(
        default_factory=lambda: [
            "/opt/kioskd/bin/kioskd", "update", "gate", "--config", "/etc/kioskd/kioskd.toml",
        ]
    )  # fmt: skip
    window_s: float = 180.0


@dataclass
class Journal:
    """The update in progress, as the journal file holds it."""

    phase: str
    version_from: str
    version_to: str
    new_deb: str
    kept_deb: str
    request_id: str
    settings: Settings
    resumes: int = 0
    reason: str = ""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` so a power cut leaves the old or the new content, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Updater:
    """One board's updater, its files under ``state`` (default :data:`STATE`)."""

    def __init__(self, state: Path = STATE) -> None:
        self.state = state
        self.journal_file = state / "journal.json"
        self.status_file = state / "status.json"
        self.kept = state / "kept"
        self.incoming = state / "incoming"

    # -- files ---------------------------------------------------------------------------------

    def _prepare(self) -> None:
        for path in (self.state, self.kept, self.incoming):
            path.mkdir(mode=0o755, parents=True, exist_ok=True)

    def _journal(self, journal: Journal | None) -> None:
        if journal is None:
            with contextlib.suppress(FileNotFoundError):
                self.journal_file.unlink()
            _fsync_dir(self.state)
            return
        _write_atomic(self.journal_file, json.dumps(asdict(journal)).encode(), 0o600)

    def read_journal(self) -> Journal | None:
        """The interrupted update, if any."""
        try:
            data = json.loads(self.journal_file.read_bytes())
        except FileNotFoundError:
            return None
        data["settings"] = Settings(**data["settings"])
        return Journal(**data)

    def status(self) -> dict[str, Any]:
        """The last outcome (``state``, ``version``, ``target``, ``reason``, ...); idle if none."""
        try:
            data: dict[str, Any] = json.loads(self.status_file.read_bytes())
        except (FileNotFoundError, ValueError):
            return {"state": "idle", "version": installed_version()}
        return data

    def _status(self, state: str, journal: Journal | None, **extra: str) -> None:
        data = {
            "state": state,
            "version": installed_version(),
            "target": journal.version_to if journal else "",
            "requestId": journal.request_id if journal else "",
            "reason": journal.reason if journal else "",
            "time": _now(),
            **extra,
        }
        _write_atomic(self.status_file, json.dumps(data).encode(), 0o644)
        print(f"kioskd update: {state} {json.dumps(data)}", flush=True)  # noqa: T201 - the journal

    # -- the update ----------------------------------------------------------------------------

    def start(self, version: str, request_id: str, settings: Settings) -> int:
        """Install ``version`` behind the gate; 0 if it was committed, 1 if rolled back.

        Raises:
            UpdateError: the version is malformed, an update is already in
                progress, or the packages could not be fetched (nothing changed).

        """
        if not VERSION.fullmatch(version):
            raise UpdateError(f"not a package version: {version!r}")
        self._prepare()
        if self.journal_file.exists():
            raise UpdateError("an update is in progress: run `kioskd update resume` first")
        current = installed_version()
        if not current:
            raise UpdateError("kioskd is not installed from a package here")
        if current == version:
            self._status("committed", None, target=version, requestId=request_id)
            return 0
        self._status("fetching", None, target=version, requestId=request_id)
        _run(["apt-get", "update", "-q", *_only_fleet_source()], APT_TIMEOUT_S)
        new_deb = self._download(version, self.incoming)
        kept_deb = self._kept(current) or self._keep(self._download(current, self.incoming))
        journal = Journal("install", current, version, str(new_deb), str(kept_deb), request_id,
                          settings)  # fmt: skip
        self._journal(journal)
        return self._continue(journal)

    def resume(self) -> int:
        """Finish an interrupted update (at boot); 0 if none was left or it was committed."""
        journal = self.read_journal()
        if journal is None:
            return 0
        journal.resumes += 1
        if journal.resumes > MAX_RESUMES and journal.phase != "rollback":
            journal.phase, journal.reason = "rollback", f"interrupted {MAX_RESUMES} times"
        elif not journal.reason:
            journal.reason = f"interrupted during {journal.phase}"
        self._journal(journal)
        return self._continue(journal)

    def _continue(self, journal: Journal) -> int:
        while True:
            if journal.phase == "install":
                self._status("installing", journal)
                try:
                    _configure_pending()
                    _install(Path(journal.new_deb))
                except UpdateError as exc:
                    journal.phase, journal.reason = "rollback", f"install failed: {exc}"
                else:
                    journal.phase = "gate"
            elif journal.phase == "gate":
                self._status("gating", journal)
                failure = _gate(journal.settings)
                if failure is None:
                    journal.phase = "commit"
                else:
                    journal.phase, journal.reason = "rollback", f"health gate: {failure}"
            elif journal.phase == "commit":
                self._commit(journal)
                return 0
            else:
                self._rollback(journal)
                return 1
            self._journal(journal)

    def _commit(self, journal: Journal) -> None:
        new = Path(journal.new_deb)
        if new.exists():
            new.replace(self.kept / new.name)
            _fsync_dir(self.kept)
        # Kept: the version committed now and the one it replaced (the last two good ones).
        keep = {new.name, Path(journal.kept_deb).name}
        for old in self.kept.glob("*.deb"):
            if old.name not in keep:
                old.unlink()
        journal.reason = ""
        # From now on the new version's updater is the one a later update or boot runs.
        for new_copy in Path("/opt/kioskd/lib").glob(
            "python3*/site-packages/daemon/update/updater.py"
        ):
            _write_atomic(self.state / "updater.py", new_copy.read_bytes(), 0o644)
        self._journal(None)
        self._status("committed", journal)

    def _rollback(self, journal: Journal) -> None:
        self._status("rollingBack", journal)
        with contextlib.suppress(UpdateError):
            _configure_pending()
        _install(Path(journal.kept_deb))
        with contextlib.suppress(UpdateError):
            _run(journal.settings.restart, COMMAND_TIMEOUT_S)
        for stale in self.incoming.glob("*.deb"):
            stale.unlink()
        self._journal(None)
        self._status("rolledBack", journal)

    def refused(self, version: str, request_id: str, reason: str) -> None:
        """Record an update refused before anything was installed."""
        with contextlib.suppress(OSError):
            self._prepare()
            self._status("failed", None, target=version, requestId=request_id, reason=reason)

    def _keep(self, deb: Path) -> Path:
        """Move a verified download into ``kept/`` (a rename: never half a file there)."""
        kept = self.kept / deb.name
        deb.replace(kept)
        _fsync_dir(self.kept)
        return kept

    def _kept(self, version: str) -> Path | None:
        found = sorted(self.kept.glob(f"kioskd_{_file_version(version)}_*.deb"))
        return found[0] if found else None

    def _download(self, version: str, where: Path) -> Path:
        """``apt-get download kioskd=VERSION`` into ``where`` (verified against the index)."""
        for stale in where.glob(f"kioskd_{_file_version(version)}_*.deb"):
            stale.unlink()
        _run(["apt-get", "download", "-q", f"kioskd={version}"], APT_TIMEOUT_S, cwd=where)
        found = sorted(where.glob(f"kioskd_{_file_version(version)}_*.deb"))
        if not found:
            raise UpdateError(f"apt-get download left no package of kioskd {version}")
        _fsync_dir(where)
        return found[0]


def _file_version(version: str) -> str:
    """The version as apt names the file (an epoch's colon is %3a)."""
    return version.replace(":", "%3a")


def _run(argv: list[str], timeout: float, cwd: Path | None = None) -> str:
    """Run a command to completion; its output, or :class:`UpdateError` with its last lines."""
    try:
        done = subprocess.run(  # noqa: S603 - argv built here, never from a request
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, **APT_ENV},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateError(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise UpdateError(f"{' '.join(argv[:3])} exited {done.returncode}: {' / '.join(tail)}")
    return done.stdout


def _only_fleet_source() -> list[str]:
    """Options of apt-get update refreshing only the fleet's repository (provisioning's).

    A board on an office network may reach the fleet but not Debian's mirrors; the
    other sources' lists are kept as they are (``List-Cleanup=0``).
    """
    if not FLEET_SOURCES.exists():
        return []
    return [
        "-o", f"Dir::Etc::SourceList={FLEET_SOURCES}", "-o", "Dir::Etc::SourceParts=-",
        "-o", "APT::Get::List-Cleanup=0",
    ]  # fmt: skip


def _wait_for_dpkg(timeout: float = APT_TIMEOUT_S) -> None:
    """Wait until no other process holds dpkg's lock (a dpkg left from before, apt elsewhere).

    Raises:
        UpdateError: still held after ``timeout`` seconds.

    """
    deadline = time.monotonic() + timeout
    with DPKG_LOCK.open("a") as handle:
        while True:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if time.monotonic() > deadline:
                    raise UpdateError(f"dpkg is busy for over {timeout:.0f} s") from None
                time.sleep(LOCK_POLL_S)
                continue
            fcntl.lockf(handle, fcntl.LOCK_UN)
            return


def _configure_pending() -> None:
    """``dpkg --configure -a``: finish what an interrupted dpkg run left half-done."""
    _wait_for_dpkg()
    _run(["dpkg", "--force-confold", "--configure", "-a"], APT_TIMEOUT_S)


def _install(deb: Path) -> None:
    """Install a package file with apt (its dependencies from the configured sources)."""
    _wait_for_dpkg()
    _run(["apt-get", "install", "-y", "-q", "--allow-downgrades", *DPKG_OPTIONS, str(deb)],
         APT_TIMEOUT_S)  # fmt: skip


def _gate(settings: Settings) -> str | None:
    """Restart the daemon and run the gate; None if healthy, else the reason."""
    try:
        _run(settings.restart, COMMAND_TIMEOUT_S)
    except UpdateError as exc:
        return f"restart failed: {exc}"
    try:
        # The gate's own deadline a little inside the updater's, so it reports what it saw.
        window = max(10.0, settings.window_s - 10)
        _run([*settings.gate, "--window", f"{window:.0f}"], settings.window_s)
    except UpdateError as exc:
        return str(exc)
    return None


def installed_version() -> str:
    """The installed kioskd package's version ('' if none)."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}\\t${Version}", "kioskd"],  # noqa: S607
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    status, _, version = done.stdout.partition("\t")
    return version if done.returncode == 0 and status.endswith(" installed") else ""


def write_request(path: Path, version: str, request_id: str) -> None:
    """The daemon's side of a fleet ``update``: the version asked for, for the root updater."""
    if not VERSION.fullmatch(version):
        raise ValueError(f"not a package version: {version!r}")
    _write_atomic(path, json.dumps({"version": version, "requestId": request_id}).encode())


def read_request(path: Path) -> tuple[str, str]:
    """The version and request id of a request file, which is removed.

    Raises:
        UpdateError: unreadable, or not a package version.

    """
    try:
        data = json.loads(path.read_bytes())
        path.unlink()
        version, request_id = str(data["version"]), str(data.get("requestId", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UpdateError(f"bad update request {path}: {exc}") from None
    if not VERSION.fullmatch(version):
        raise UpdateError(f"not a package version: {version!r}")
    return version, request_id[:128]


def install_copy(state: Path = STATE) -> Path:
    """Copy this file into ``state`` (what ``kioskd update`` and the boot service run)."""
    state.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = state / "updater.py"
    _write_atomic(target, Path(__file__).read_bytes(), 0o644)
    return target


def main(argv: list[str] | None = None) -> int:
    """``updater.py [--state DIR] start VERSION | request FILE | resume | status``.

    Exit 0: committed (or nothing to do), 1: rolled back, 2: refused, nothing changed,
    3: a resume that could not finish (the journal is kept for the next one).
    """
    # Here, not at the top: the daemon's uplink imports this module for its paths.
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="kioskd-updater")
    parser.add_argument("--state", type=Path, default=STATE)
    parser.add_argument("--restart", help="restart command (shell words; default: systemctl)")
    parser.add_argument("--gate", help="gate command (shell words; default: kioskd update gate)")
    parser.add_argument("--window", type=float, default=Settings.window_s)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start").add_argument("version")
    sub.add_parser("request").add_argument("file", type=Path)
    sub.add_parser("resume")
    sub.add_parser("status")
    args = parser.parse_args(argv)
    updater = Updater(args.state)
    if args.command == "status":
        print(json.dumps(updater.status()))  # noqa: T201
        return 0
    if args.command == "resume":
        try:
            return updater.resume()
        except UpdateError as exc:  # the journal stays: the next resume tries again
            print(f"kioskd update: resume did not finish: {exc}", file=sys.stderr)  # noqa: T201
            return 3
    settings = Settings(window_s=args.window)
    if args.restart:
        settings.restart = args.restart.split()
    if args.gate:
        settings.gate = args.gate.split()
    version, request_id = args.version if args.command == "start" else "", ""
    try:
        if args.command == "request":
            updater.resume()  # an interrupted update is finished before a new one starts
            version, request_id = read_request(args.file)
        return updater.start(version, request_id, settings)
    except UpdateError as exc:
        updater.refused(version, request_id, str(exc))
        print(f"kioskd update: {exc}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
