"""Acceptance: provision an image non-interactively, re-run, check drift, start what it installed."""

from __future__ import annotations

import asyncio
import re
import shutil
import stat
import subprocess
from pathlib import Path

import aiomqtt
import msgspec
import pytest
import typer

from provisioning import flow
from tests.provisioning import support

BOARD = "hcm-q6-0001"

EXPECTED = {
    # path: (mode, owner, group)
    "etc/kioskd/kioskd.toml": (0o640, "root", "kioskd"),
    "etc/kioskd/provision.json": (0o640, "root", "kioskd"),
    "etc/kioskd/credentials/kioskd.password": (0o600, "kioskd", "kioskd"),
    "etc/kioskd/credentials/ui.password": (0o640, "root", "kioskd"),
    "etc/kioskd/credentials/technician.password": (0o600, "root", "root"),
    "etc/mosquitto/conf.d/kioskd.conf": (0o644, "root", "root"),
    "etc/mosquitto/kioskd.passwd": (0o600, "mosquitto", "mosquitto"),
    "etc/mosquitto/kioskd.acl": (0o640, "root", "mosquitto"),
    "etc/systemd/system/kioskd.service": (0o644, "root", "root"),
    "etc/systemd/system/kioskd-ui.service": (0o644, "root", "root"),
    "etc/sysusers.d/kioskd.conf": (0o644, "root", "root"),
    "etc/tmpfiles.d/kioskd.conf": (0o644, "root", "root"),
    "etc/udev/rules.d/90-kioskd.rules": (0o644, "root", "root"),
    "etc/udev/rules.d/91-kioskd-devices.rules": (0o644, "root", "root"),
    "etc/sysctl.d/90-kioskd.conf": (0o644, "root", "root"),
    "etc/systemd/coredump.conf.d/90-kioskd.conf": (0o644, "root", "root"),
    "etc/security/limits.d/90-kioskd.conf": (0o644, "root", "root"),
    "etc/systemd/zram-generator.conf": (0o644, "root", "root"),
}
LINKS = {
    "etc/systemd/system/multi-user.target.wants/kioskd.service": "/etc/systemd/system/kioskd.service",
    "etc/systemd/system/multi-user.target.wants/kioskd-ui.service": (
        "/etc/systemd/system/kioskd-ui.service"
    ),
    "etc/systemd/system/dphys-swapfile.service": "/dev/null",
}


def ids(root: Path, name: str) -> dict[str, int]:
    return {
        line.split(":")[0]: int(line.split(":")[2])
        for line in (root / "etc" / name).read_text().splitlines()
    }


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, int]]:
    return {
        str(p.relative_to(root)): (st.st_ino, st.st_mtime_ns, st.st_mode, st.st_uid, st.st_gid)
        for p in sorted(root.rglob("*"))
        if (st := p.lstat())
    }


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    image = support.provisioned(
        tmp_path_factory.mktemp("image"),
        BOARD,
        *("--tenant", "hcm", "--site", "Quận 6", "--kioskd-bin", support.KIOSKD_BIN),
    )
    return image.root, image.port, image.ws_port


def test_tree_is_complete_with_modes_and_owners(image: tuple[Path, int, int]) -> None:
    root, _, _ = image
    users, groups = ids(root, "passwd"), ids(root, "group")
    assert "kioskd" in users, "systemd-sysusers created the daemon's user in the image"
    for path, (mode, owner, group) in EXPECTED.items():
        st = (root / path).stat()
        assert stat.S_IMODE(st.st_mode) == mode, path
        assert (st.st_uid, st.st_gid) == (users[owner], groups[group]), path
    for path, target in LINKS.items():
        assert (root / path).readlink() == Path(target), path
    members = {
        g.split(":")[0]: g.split(":")[3] for g in (root / "etc/group").read_text().splitlines()
    }
    for group in ("dialout", "gpio", "video", "plugdev", "lp", "input", "i2c"):
        assert "kioskd" in members[group].split(","), group
    config = (root / "etc/kioskd/kioskd.toml").read_text()
    assert f'id = "{BOARD}"' in config
    assert 'password_file = "/etc/kioskd/credentials/kioskd.password"' in config
    assert "[uplink]" not in config  # no fleet URL given
    for user in ("kioskd", "ui", "technician"):
        assert support.secret(root, user) not in config
        assert support.secret(root, user) not in (root / "etc/kioskd/provision.json").read_text()


def test_rerun_changes_nothing_and_check_is_clean(image: tuple[Path, int, int]) -> None:
    root, _, _ = image
    before = snapshot(root)
    again = support.provision(root, "--yes")
    assert again.returncode == 0, again.stdout
    assert re.search(r"\b0 of \d+ files changed", again.stdout), again.stdout
    assert snapshot(root) == before
    for user in ("kioskd", "ui", "technician"):  # secrets are never printed
        assert support.secret(root, user) not in again.stdout + again.stderr
    check = support.provision(root, "--check")
    assert check.returncode == 0, check.stdout
    assert "no drift" in check.stdout


def test_check_reports_drift(tmp_path: Path, image: tuple[Path, int, int]) -> None:
    source, _, _ = image
    root = tmp_path / "copy"
    shutil.copytree(source, root, symlinks=True)
    (root / "etc/kioskd/credentials/kioskd.password").chmod(0o644)
    with (root / "etc/mosquitto/kioskd.acl").open("a") as acl:
        acl.write("topic readwrite #\n")
    (root / "etc/udev/rules.d/90-kioskd.rules").unlink()
    check = support.provision(root, "--check")
    assert check.returncode == 1
    assert re.search(
        r"mode\s+/etc/kioskd/credentials/kioskd.password: mode 0644, want 0600", check.stdout
    )
    assert re.search(r"update\s+/etc/mosquitto/kioskd.acl", check.stdout)
    assert re.search(r"create\s+/etc/udev/rules.d/90-kioskd.rules", check.stdout)
    fixed = support.provision(root, "--yes")
    assert fixed.returncode == 0
    assert support.provision(root, "--check").returncode == 0


def test_no_ui_service_leaves_the_ui_unit_disabled(
    tmp_path: Path, image: tuple[Path, int, int]
) -> None:
    """A board whose UI is served elsewhere: the UI's unit stays installed, not enabled."""
    source, _, _ = image
    root = tmp_path / "copy"
    shutil.copytree(source, root, symlinks=True)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    off = support.provision(root, "--yes", "--no-ui-service")
    assert off.returncode == 0, off.stdout
    assert re.search(r"remove\s+/etc/systemd/system/multi-user.target.wants/kioskd-ui", off.stdout)
    assert not (wants / "kioskd-ui.service").exists()
    assert (wants / "kioskd.service").is_symlink()
    assert (root / "etc/systemd/system/kioskd-ui.service").is_file()
    # Recorded: a re-run keeps it off, and an enable link put back by hand is drift.
    assert support.provision(root, "--check").returncode == 0
    (wants / "kioskd-ui.service").symlink_to("/etc/systemd/system/kioskd-ui.service")
    check = support.provision(root, "--check")
    assert check.returncode == 1
    assert re.search(
        r"remove\s+/etc/systemd/system/multi-user.target.wants/kioskd-ui", check.stdout
    )
    assert support.provision(root, "--yes", "--ui-service").returncode == 0
    assert (wants / "kioskd-ui.service").readlink() == Path("/etc/systemd/system/kioskd-ui.service")


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = support.make_image(tmp_path / "image")
    before = snapshot(root)
    done = support.provision(root, "--yes", "--simulate", "--board", BOARD, "--dry-run")
    assert done.returncode == 0, done.stdout
    assert "would change" in done.stdout
    assert snapshot(root) == before


UNIT_LINES = {
    "kioskd.service": (
        "Type=notify",
        "Restart=on-failure",
        "Wants=mosquitto.service",
        "ExecStopPost=" + support.KIOSKD_BIN + " safe-state",
        "LimitCORE=0",
        "Environment=LG_WD=%t/kioskd",
        "DevicePolicy=closed",
        "CapabilityBoundingSet=\n",
    ),
    # The UI server and its /mqtt bridge: as kioskd, loopback only, the credentials read-only.
    "kioskd-ui.service": (
        f"ExecStart={support.KIOSKD_BIN} ui --config /etc/kioskd/kioskd.toml --port 8080",
        "User=kioskd",
        "Restart=on-failure",
        "Wants=mosquitto.service",
        "After=mosquitto.service",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "InaccessiblePaths=-/etc/kioskd/credentials/kioskd.password",
        "InaccessiblePaths=-/etc/kioskd/fleet",
        "IPAddressAllow=localhost\nIPAddressDeny=any",
        "LimitCORE=0",
        "CapabilityBoundingSet=\n",
    ),
}


@pytest.mark.parametrize("name", list(UNIT_LINES))
def test_unit_verifies_and_exposure_is_low(image: tuple[Path, int, int], name: str) -> None:
    root, _, _ = image
    unit = root / "etc/systemd/system" / name
    text = unit.read_text()
    for line in UNIT_LINES[name]:
        assert line in text, line
    assert "Requires=" not in text
    assert "ReadWritePaths=" not in text
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(rf"Overall exposure level for {name}: (\d+\.\d+)", security.stdout)
    assert match, security.stdout[-2000:]
    assert float(match.group(1)) <= 3.0


async def wait_status(port: int, password: str, state: str, timeout: float = 20) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    port,
                    identifier="tech-probe",
                    username="technician",
                    password=password,
                    protocol=aiomqtt.ProtocolVersion.V5,
                ) as client:
                    await client.subscribe(f"kiosk/v1/{BOARD}/status", qos=1)
                    async for message in client.messages:
                        status = msgspec.msgpack.decode(message.payload)
                        if status["state"] == state:
                            return status
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


async def test_daemon_runs_from_the_installed_tree(
    image: tuple[Path, int, int], tmp_path: Path
) -> None:
    root, port, _ = image
    log = tmp_path / "run.log"
    with support.installed(
        root,
        "mosquitto -c /etc/mosquitto/conf.d/kioskd.conf &",
        f"exec {support.KIOSKD_BIN} run --config /etc/kioskd/kioskd.toml --state-dir {tmp_path / 'state'}",
        log=log,
    ) as proc:
        try:
            status = await wait_status(port, support.secret(root, "technician"), "ready")
        finally:
            if proc.poll() is not None:
                pytest.fail(log.read_text())
    assert status["api"] == 1


def test_tmpfiles_agree_with_provisioning(tmp_path: Path, image: tuple[Path, int, int]) -> None:
    """What systemd-tmpfiles re-applies at every boot is what provisioning installed."""
    source, _, _ = image
    root = tmp_path / "copy"
    shutil.copytree(source, root, symlinks=True)
    (root / "etc/kioskd/kioskd.toml").chmod(0o644)  # drift that the next boot repairs
    done = subprocess.run(
        [
            "systemd-tmpfiles",
            f"--root={root}",
            "--create",
            str(root / "etc/tmpfiles.d/kioskd.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    check = support.provision(root, "--check")
    assert check.returncode == 0, check.stdout
    assert stat.S_IMODE((root / "etc/kioskd").stat().st_mode) == 0o750


def test_a_step_failure_with_brackets_prints_as_written(capsys) -> None:
    """Error texts name TOML tables and paths: rich must not read them as markup."""
    why = "missing [devices.printer] in /etc/kioskd/[/]kioskd.toml"
    with pytest.raises(typer.Exit), flow.step("read [daemon] config"):
        raise flow.StepFailed(why)
    out = capsys.readouterr().out
    assert "read [daemon] config" in out
    assert why in out
