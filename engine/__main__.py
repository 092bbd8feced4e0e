"""``python -m engine run --db PATH (--spec FILE|- | --run-id ID) [--workspace DIR]``
``python -m engine run --sink RUN_FOLDER [--run-id ID] [--workspace DIR]``

One engine process runs one run. ``--spec`` reads a JSON run spec (``-`` = stdin) and creates
its run row; ``--run-id`` runs the spec of an existing (queued) row. The workspace (model cache)
defaults to the folder holding the database.

``--sink`` (a cluster node, where the workspace database must not be written over a network
filesystem): the run's spec comes from ``RUN_FOLDER/run.json`` and everything the engine would
write to the database goes to that folder instead (``engine.sink.FolderSink``; the driver
ingests it). The workspace defaults to the folder two levels up (``<workspace>/runs/<id>``).

Exit codes: 0 finished; 1 failed or diverged; 2 bad spec or missing resource (one line on
stderr, no traceback; the run is marked failed when it exists); 143 killed (SIGTERM / SIGINT
set a flag that the training loops check before every batch).

Never imports textual or plotext.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from .errors import TarfError
from .spec import RunSpec

EXIT = {"finished": 0, "failed": 1, "diverged": 1, "killed": 143}


class _StopFlag:
    def __init__(self):
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def set(self, signum, frame) -> None:
        self.signum = signum


def _fail(msg: str) -> int:
    print(f"error: {' '.join(str(msg).split())}", file=sys.stderr, flush=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine", description="tarf-tui engine: run one unlearning run")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one spec, writing its rows to the database")
    dst = r.add_mutually_exclusive_group(required=True)
    dst.add_argument("--db", help="SQLite run store (created when absent)")
    dst.add_argument("--sink", help="run folder to write instead of a database (cluster nodes)")
    src = r.add_mutually_exclusive_group(required=False)
    src.add_argument("--spec", help="JSON run spec file, or - for stdin (creates the run row)")
    src.add_argument("--run-id", type=int, help="run the spec of this existing run row")
    r.add_argument("--workspace", help="folder for the model cache (default: the database's folder)")
    a = ap.parse_args(argv)

    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, stop.set)

    from .store import Store, Workspace  # torch-free

    if a.sink is not None:
        return _run_sink(a, stop)
    if a.spec is None and a.run_id is None:
        return _fail("one of --spec or --run-id is required with --db")
    try:
        store = Store(a.db)
    except TarfError as e:
        return _fail(e)
    run_id = None
    try:
        if a.spec is not None:
            try:
                text = sys.stdin.read() if a.spec == "-" else Path(a.spec).read_text()
            except OSError as e:
                return _fail(f"cannot read spec {a.spec}: {e.strerror or e}")
            spec = RunSpec.from_json(text)
            run_id = store.create_run(spec)
            print(f'{{"event": "created", "run_id": {run_id}}}', flush=True)
        else:
            run_id = a.run_id
            row = store.get_run(run_id)
            if row is None:
                return _fail(f"no run with id {run_id} in {a.db}")
            spec = RunSpec.from_dict(row["spec"])
        workspace = Workspace(a.workspace or Path(a.db).absolute().parent)

        from .runner import run  # imports torch: only once the input is known to be sane

        status = run(spec, store, run_id, workspace, stop)
        return EXIT.get(status, 1)
    except TarfError as e:
        if run_id is not None:
            store.mark(run_id, "failed", error=str(e), expect=("queued", "running"))
        return _fail(e)
    finally:
        store.close()


def _run_sink(a, stop: _StopFlag) -> int:
    from .sink import FolderSink
    from .store import Workspace

    if a.spec is not None:
        return _fail("--spec cannot be used with --sink (the spec is the folder's run.json)")
    try:
        sink = FolderSink(a.sink)
        run_id = sink.run_id if a.run_id is None else a.run_id
        row = sink.get_run(run_id)
        if row is None:
            return _fail(f"run folder {a.sink} belongs to run {sink.run_id}, not {run_id}")
        spec = RunSpec.from_dict(row["spec"])
        workspace = Workspace(a.workspace or Path(a.sink).absolute().parent.parent)
    except TarfError as e:
        return _fail(e)
    try:
        from .runner import run

        return EXIT.get(run(spec, sink, run_id, workspace, stop), 1)
    except TarfError as e:
        sink.mark(run_id, "failed", error=str(e), expect=("queued", "running"))
        return _fail(e)


if __name__ == "__main__":
    code = main()
    # Everything is written and closed by now: skip the interpreter's teardown (torch's alone
    # takes about half a second, paid between every two runs of a grid).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
