"""A clean Debian bookworm root (mmdebstrap) and the fleet's signed flat apt repository.

Nothing here touches this machine's system: the root is a directory under the
test's tmp dir, its commands run by ``chroot`` in a private mount and PID
namespace (``unshare``) where ``/proc``, ``/dev`` and ``/run`` are mounted for
it alone and vanish with it.  A root of another architecture (arm64, armhf) is
made and run by ``debian/foreign-root``: under qemu-user by proot, in a PID
namespace of its own, with no binfmt_misc handler.  The base root is made once
and kept as a tar in ``$KIOSKD_TEST_CACHE`` (default ``/var/tmp/kioskd-tests``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.processes import stop

MIRROR = "http://deb.debian.org/debian"
#: kioskd's Debian dependencies, preinstalled so each test's apt run is short.
BASE_PACKAGES = (
    "systemd",
    "mosquitto",
    "pcscd",
    "fonts-dejavu-core",
    "python3.11",
    "ca-certificates",
)
CACHE = Path(os.environ.get("KIOSKD_TEST_CACHE", "/var/tmp/kioskd-tests"))
REPO_IN_ROOT = "/srv/kioskd-repo"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
PUBLISH = Path(__file__).resolve().parents[2] / "debian/repository/publish"
FOREIGN_ROOT = Path(__file__).resolve().parents[2] / "debian/foreign-root"


def base_tarball(arch: str | None = None) -> Path:
    """The cached bookworm root as a tar, made if missing.

    This machine's architecture by mmdebstrap (about a minute); another ``arch`` by
    ``debian/foreign-root`` under qemu (about 9 minutes for arm64 here).
    """
    tar = CACHE / f"bookworm-{arch + '-' if arch else ''}{'-'.join(BASE_PACKAGES)}.tar"
    if not tar.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        if arch:
            subprocess.run(
                [str(FOREIGN_ROOT), "make", arch, str(tar), *BASE_PACKAGES],
                check=True, capture_output=True, timeout=3600,
            )  # fmt: skip
            return tar
        partial = tar.with_suffix(".partial.tar")
        subprocess.run(
            ["mmdebstrap", "--variant=apt", f"--include={','.join(BASE_PACKAGES)}",
             "bookworm", str(partial), MIRROR],
            check=True, capture_output=True, timeout=1200,
        )  # fmt: skip
        partial.rename(tar)
    return tar


@dataclass(frozen=True)
class DebRoot:
    """A bookworm root at ``path``; the signed repository is bind-mounted at REPO_IN_ROOT.

    ``arch`` names another architecture than this machine's (run under qemu), else None.
    """

    path: Path
    repo: Path
    arch: str | None = None

    @classmethod
    def make(cls, directory: Path, repo: Path, arch: str | None = None) -> DebRoot:
        path = directory / "root"
        path.mkdir()
        subprocess.run(
            ["tar", "-xf", str(base_tarball(arch)), "-C", str(path)], check=True, timeout=300
        )
        (path / REPO_IN_ROOT.lstrip("/")).mkdir(parents=True)
        # No daemons started by maintainer scripts: there is no init in the root.
        policy = path / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        return cls(path, repo, arch)

    def trust(self, key: bytes) -> None:
        """The fleet's source entry and its public ``key``, as docs/updates.md tells a technician."""
        keyring = self.path / "etc/apt/keyrings/kioskd.asc"
        keyring.parent.mkdir(parents=True, exist_ok=True)
        keyring.write_bytes(key)
        (self.path / "etc/apt/sources.list.d/kioskd.sources").write_text(
            f"Types: deb\nURIs: file:{REPO_IN_ROOT}/\nSuites: ./\n"
            "Signed-By: /etc/apt/keyrings/kioskd.asc\n"
        )

    def command(self, script: str) -> list[str]:
        """argv running shell ``script`` in the root, in its own mount and PID namespace."""
        if self.arch:
            return [str(FOREIGN_ROOT), "run", self.arch, str(self.path), script,
                    f"{self.repo}:{REPO_IN_ROOT}"]  # fmt: skip
        root = shlex.quote(str(self.path))
        inner = "; ".join(
            [
                "set -e",
                f"mount --rbind /dev {root}/dev",
                f"mount -t proc proc {root}/proc",
                f"mount -t tmpfs tmpfs {root}/run",
                f"mount --bind {shlex.quote(str(self.repo))} {root}{REPO_IN_ROOT}",
                f"exec chroot {root} /bin/sh -c {shlex.quote(script)}",
            ]
        )
        return ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
                "sh", "-c", inner]  # fmt: skip

    def run(self, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``script`` in the root; the finished process (output captured, not checked)."""
        return subprocess.run(
            self.command(script), capture_output=True, text=True, timeout=timeout, check=False,
            env=ENV,
        )  # fmt: skip

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """One mount and PID namespace kept for the ``with`` block, so daemons outlive a command.

        Its init is ``sleep`` in the root; commands join it with ``nsenter``.  Leaving the
        block kills the init, and with it every process of the namespace.
        """
        holder = subprocess.Popen(self.command("exec sleep infinity"), start_new_session=True)
        try:
            init = _namespace_init(holder.pid)
            yield Session(init)
        finally:
            holder.kill()
            holder.wait(30)


def _namespace_init(unshare_pid: int, timeout: float = 30) -> int:
    """The PID (in this namespace) of the forked child of ``unshare --fork`` once it runs sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in Path(f"/proc/{unshare_pid}/task").glob("*/children"):
            for pid in child.read_text().split():
                grandchildren = " ".join(
                    c.read_text() for c in Path(f"/proc/{pid}/task").glob("*/children")
                ).split()
                for candidate in [pid, *grandchildren]:
                    with contextlib.suppress(OSError):
                        if Path(f"/proc/{candidate}/comm").read_text().strip() == "sleep":
                            return int(candidate)
        time.sleep(0.1)
    raise TimeoutError("the namespace's init did not start")


@dataclass(frozen=True)
class Session:
    """Commands in a kept namespace of the root (:meth:`DebRoot.session`)."""

    init: int

    def argv(self, script: str) -> list[str]:
        return ["nsenter", "-t", str(self.init), "-m", "-p", "-r", "-w", "/bin/sh", "-c", script]

    def run(self, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``script`` to completion (output captured, not checked)."""
        return subprocess.run(
            self.argv(script), capture_output=True, text=True, timeout=timeout, check=False,
            env=ENV,
        )  # fmt: skip

    def popen(self, script: str) -> subprocess.Popen[str]:
        """Start ``script`` in a process group of its own (to kill it whole with killpg)."""
        return subprocess.Popen(
            self.argv(script), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=ENV, start_new_session=True,
        )  # fmt: skip


def ready(root: DebRoot, command: str, timeout: float = 90) -> float | None:
    """Seconds until ``command`` in the root sent READY=1 over sd_notify, or None."""
    name = f"kioskd-release-test-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(1)
        start = time.monotonic()
        with running(root, f"NOTIFY_SOCKET=@{name} exec {command}") as proc:
            while time.monotonic() - start < timeout and proc.poll() is None:
                try:
                    message = sock.recv(4096).decode()
                except TimeoutError:
                    continue
                if "READY=1" in message.split("\n"):
                    return time.monotonic() - start
    return None


@contextlib.contextmanager
def running(root: DebRoot, script: str) -> Iterator[subprocess.Popen[bytes]]:
    """``script`` running in the root; terminated (its PID namespace with it) on exit."""
    proc = subprocess.Popen(
        root.command(script), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        stop(proc, 30)


@dataclass(frozen=True)
class Repository:
    """A flat repository made by debian/repository/publish, signed by a test key made here.

    The real key is made and kept offline (docs/updates.md, "The signing key").
    """

    path: Path
    gnupg: Path

    @classmethod
    def make(cls, directory: Path) -> Repository:
        gnupg = directory / "gnupg"
        gnupg.mkdir(mode=0o700)
        subprocess.run(
            ["gpg", "--homedir", str(gnupg), "--batch", "--pinentry-mode", "loopback",
             "--passphrase", "", "--quick-gen-key", "kioskd test repository <t@example>",
             "ed25519", "sign", "1d"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        path = directory / "repo"
        path.mkdir()
        return cls(path, gnupg)

    def close(self) -> None:
        """Stop the gpg agent that signing started for this key's home."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.gnupg), "--kill", "gpg-agent"],
            check=False,
            timeout=30,
        )

    def public_key(self) -> bytes:
        return subprocess.run(
            ["gpg", "--homedir", str(self.gnupg), "--armor", "--export"],
            check=True, capture_output=True, timeout=30,
        ).stdout  # fmt: skip

    def publish(self, deb: Path) -> None:
        """Add a package version and sign the index again, as an operator does."""
        subprocess.run(
            [str(PUBLISH), str(self.path), str(deb)],
            check=True, capture_output=True, timeout=120, env={**os.environ, "GNUPGHOME": str(self.gnupg)},
        )  # fmt: skip


def repack(deb: Path, out: Path, version: str, *, broken: bool = False) -> Path:
    """The package ``deb`` as ``version`` (control and daemon.__version__), optionally broken.

    A broken package installs cleanly but its daemon cannot start (an import fails).
    """
    work = out / f"unpacked-{version}"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(work)], check=True, timeout=120)
    control = work / "DEBIAN/control"
    control.write_text(
        "\n".join(
            f"Version: {version}" if line.startswith("Version: ") else line
            for line in control.read_text().splitlines()
        )
        + "\n"
    )
    (init,) = work.glob("opt/kioskd/lib/python3*/site-packages/daemon/__init__.py")
    text = init.read_text().replace('__version__ = "', f'__version__ = "{version}"  # was "')
    if broken:
        text += 'raise ImportError("kioskd test package: deliberately broken")\n'
    init.write_text(text)
    relative = str(init.relative_to(work))
    sums = work / "DEBIAN/md5sums"
    digest = hashlib.md5(init.read_bytes()).hexdigest()
    sums.write_text(
        "".join(
            f"{digest}  {relative}\n" if line.endswith(f"  {relative}") else line + "\n"
            for line in sums.read_text().splitlines()
        )
    )
    built = out / f"kioskd_{version}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(work), str(built)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    shutil.rmtree(work)
    return built
