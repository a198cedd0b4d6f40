"""``--sim`` runtime folders: a live run's folder is kept, a dead run's removed."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from daemon import sim_runtime


def test_only_folders_of_dead_runs_are_removed(tmp_path: Path) -> None:
    live = subprocess.Popen(["sleep", "30"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        folders = {}
        for name, pid in (("live", live.pid), ("dead", dead.pid), ("garbled", None)):
            folder = tmp_path / f"{sim_runtime.PREFIX}{name}"
            folder.mkdir()
            if pid is not None:
                (folder / "owner.pid").write_text(str(pid), encoding="ascii")
            else:
                (folder / "owner.pid").write_text("not a pid", encoding="ascii")
            folders[name] = folder
        starting = tmp_path / f"{sim_runtime.PREFIX}starting"  # made, owner not written yet
        starting.mkdir()
        old = time.time() - 3600
        os.utime(folders["garbled"], (old, old))
        unrelated = tmp_path / "other-folder"
        unrelated.mkdir()

        removed = sim_runtime.remove_stale(tmp_path)

        assert sorted(removed) == sorted([folders["dead"], folders["garbled"]])
        assert folders["live"].is_dir()
        assert starting.is_dir()
        assert unrelated.is_dir()
    finally:
        live.kill()
        live.wait()


def test_runtime_dir_is_owned_and_removed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    with sim_runtime.runtime_dir() as folder:
        assert folder.parent == tmp_path
        assert (folder / "owner.pid").read_text(encoding="ascii") == str(os.getpid())
    assert not folder.exists()
