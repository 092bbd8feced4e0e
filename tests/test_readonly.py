"""A read-only workspace (a colleague's results) and a workspace path that is a file: reads work
with a one-line notice, writes are refused with one line and exit 2, never a traceback.

The suite may run as root (CI), where ``chmod`` does not stop writes: the store then honours the
owner's "no write bit" (as ``rm`` does) and opens SQLite with ``mode=ro``, so SQLite itself
refuses every write, root or not. Where user namespaces allow it, a real read-only bind mount
(EROFS) is checked too."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.spec import RunSpec
from engine.store import ReadOnlyWorkspace, Store, Workspace
from tarf_tui.cli import app

ROOT = Path(__file__).resolve().parent.parent


def _fill(ws: Path) -> list[int]:
    from tarf_tui.experiment import expand

    ids = []
    with Store(ws / "tarf.db") as s:
        for spec in expand({"method": "ft"}).specs:  # what headless would have run
            rid = s.create_run(spec)
            s.finish(rid, {"ua": 1.0, "ra": 99.0, "ta": 98.0, "mia": 50.0, "gap": 2.0, "rte_s": 3.0})
            ids.append(rid)
        ids.append(s.create_run(RunSpec(method="ga")))  # one left queued
    return ids


def _chmod_ro(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def ro_ws(tmp_path, monkeypatch):
    monkeypatch.delenv("TARF_HOME", raising=False)
    ws = tmp_path / "colleague"
    ws.mkdir()
    ids = _fill(ws)
    _chmod_ro(ws)
    before = (ws / "tarf.db").read_bytes()
    yield ws, ids, before
    for p in [ws, *ws.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def cli(*args):
    return CliRunner().invoke(app, list(args))


def _one_line_error(r, needle):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr


@pytest.mark.parametrize("args", [("list",), ("list", "--json"), ("show", "1"),
                                  ("compare",), ("compare", "--format", "csv"),
                                  ("export", "--format", "json")])
def test_reads_work_with_a_notice(ro_ws, args):
    ws, ids, before = ro_ws
    r = cli("runs", *args, "-w", str(ws))
    assert r.exit_code == 0, r.output
    assert r.stderr.strip().splitlines() == [f"note: workspace {ws} is read-only: opened read-only"]
    assert r.stdout.strip()
    assert (ws / "tarf.db").read_bytes() == before


@pytest.mark.parametrize("args,needle", [
    (("runs", "cancel", "3"), "is read-only: cannot write to it"),
    (("runs", "rm", "1"), "is read-only: cannot write to it"),
    (("runs", "resume"), "is read-only: cannot write to it"),
    (("headless", "--method", "ft"), "is read-only: cannot write to it"),
])
def test_writes_are_refused_with_one_line(ro_ws, args, needle):
    ws, ids, before = ro_ws
    r = cli(*args, "-w", str(ws))
    _one_line_error(r, needle)
    assert (ws / "tarf.db").read_bytes() == before
    assert not (ws / "logs").exists()


def test_the_store_itself_refuses_writes_even_as_root(ro_ws):
    ws, ids, before = ro_ws
    w = Workspace(ws)
    s = w.open(write=False)
    try:
        assert s.read_only and w.notice.endswith("opened read-only")
        assert len(s.list_runs()) == 3
        with pytest.raises(ReadOnlyWorkspace):
            s.mark(ids[2], "killed")
        # under the API: SQLite opened with mode=ro refuses too (root included)
        import sqlite3
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            s.db.conn.execute("DELETE FROM runs")
    finally:
        s.close()
    assert (ws / "tarf.db").read_bytes() == before


def test_dry_run_reads_a_read_only_workspace(ro_ws):
    ws, ids, before = ro_ws
    r = cli("headless", "--dry-run", "--method", "ft", "-w", str(ws))
    assert r.exit_code == 0, r.output
    assert "reuse run 1" in r.stdout and "reuse run 2" in r.stdout


def test_workspace_path_that_is_the_database_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TARF_HOME", raising=False)
    _fill(tmp_path)
    db = tmp_path / "tarf.db"
    r = cli("runs", "list", "--json", "-w", str(db))
    assert r.exit_code == 0, r.output
    assert "is a file, not a folder: opened read-only" in r.stderr
    r = cli("runs", "cancel", "3", "-w", str(db))
    _one_line_error(r, "is a file, not a folder: cannot write to it")


def test_workspace_path_that_is_another_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TARF_HOME", raising=False)
    f = tmp_path / "notes.txt"
    f.write_text("not a database\n" * 100)
    _one_line_error(cli("runs", "list", "-w", str(f)), "not a tarf-tui database")
    _one_line_error(cli("headless", "--method", "ft", "-w", str(f)), "is a file, not a folder")
    assert f.read_text() == "not a database\n" * 100


def _unshare_ok() -> bool:
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount --bind -o ro / /mnt 2>/dev/null || mount -t tmpfs none /mnt"],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _unshare_ok(), reason="no user namespaces for a read-only bind mount")
def test_a_read_only_file_system(tmp_path):
    """A real read-only mount (EROFS): the WAL database is read with immutable=1 (its -shm file
    cannot be created there); writes are refused."""
    ws = tmp_path / "ws"
    ws.mkdir()
    _fill(ws)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TARF_HOME", None)
    tui = f"{sys.executable} -m tarf_tui"
    script = (f"mount --bind -o ro {ws} {ws} && "
              f"{tui} runs list --json -w {ws} > {tmp_path}/list.out 2> {tmp_path}/list.err; echo $? > {tmp_path}/list.rc; "
              f"{tui} runs rm 1 -w {ws} 2> {tmp_path}/rm.err; echo $? > {tmp_path}/rm.rc")
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, check=True, timeout=120)
    assert (tmp_path / "list.rc").read_text().strip() == "0", (tmp_path / "list.err").read_text()
    assert "is read-only: opened read-only" in (tmp_path / "list.err").read_text()
    assert '"method": "ft"' in (tmp_path / "list.out").read_text()
    assert (tmp_path / "rm.rc").read_text().strip() == "2"
    assert "cannot write to it" in (tmp_path / "rm.err").read_text()
    assert len(Store(ws / "tarf.db").list_runs()) == 3
