"""tarf_tui/slurm.py without a cluster: settings (slurm.toml, the grid's [slurm] table, the
command line), the generated batch script, and the front ends' checks. Runs everywhere."""

from __future__ import annotations

import io

import pytest

from engine.errors import TarfError
from engine.spec import RunSpec
from tarf_tui.experiment import load_grid
from tarf_tui.headless import run_headless
from tarf_tui.launcher import LocalExecutor
from tarf_tui.slurm import (CONFIG_FILE, SlurmConfig, SlurmExecutor, SlurmHandle,
                            WorkspaceExecutor, executor_for, load_config)


def test_settings_layer_workspace_grid_then_command_line(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(
        'partition = "gpu"\ngpus = 1\ncpus = 4\nmem = "16G"\ntime = "2:00:00"\n'
        'sbatch_args = ["--account=lab", "--qos=short"]\nsetup = "module load cuda"\n')
    grid = tmp_path / "grid.toml"
    grid.write_text('method = ["ft", "tarf"]\n[slurm]\ncpus = 8\nmax-running = 3\n')
    cfg = load_config(tmp_path, grid, {"time": "30", "mem": None})
    assert cfg == SlurmConfig(partition="gpu", gpus=1, cpus=8, mem="16G", time="30",
                              max_running=3, sbatch_args=("--account=lab", "--qos=short"),
                              setup="module load cuda")
    assert load_grid(grid) == {"method": ["ft", "tarf"]}  # the [slurm] table is not a grid key
    assert load_config(tmp_path / "none") == SlurmConfig()


def test_a_slurm_table_in_the_workspace_file_works_too(tmp_path):
    (tmp_path / CONFIG_FILE).write_text('[slurm]\npartition = "short"\n')
    assert load_config(tmp_path).partition == "short"


@pytest.mark.parametrize("text, match", [
    ('cpus = 0\n', "cpus"), ('gpus = "two"\n', "gpus"), ('mem = "lots"\n', "mem"),
    ('time = "soon"\n', "time"), ('queue = "x"\n', "queue"), ('partition = "a b"\n', "partition"),
    ('stale_after = -1\n', "stale_after"), ('cpus = \n', "not valid TOML")])
def test_bad_settings_are_one_line_errors(tmp_path, text, match):
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(TarfError, match=match) as e:
        load_config(tmp_path)
    assert "\n" not in str(e.value)


def test_the_batch_script_runs_the_engine_with_a_sink_per_task(store, monkeypatch):
    monkeypatch.delenv("TARF_THREADS", raising=False)  # a driver's own setting would win
    cfg = SlurmConfig(partition="gpu", gpus=2, cpus=6, mem="8G", time="1:00:00", max_running=4,
                      setup="source /opt/venv/bin/activate")
    ex = SlurmExecutor(store, cfg, engine_cmd=["/opt/py", "-m", "engine"], check=False)
    text = ex.batch_script([7, 9, 12])
    ws = store.path.parent
    for line in ("#SBATCH --array=0-2%4", "#SBATCH --partition=gpu", "#SBATCH --gres=gpu:2",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --mem=8G", "#SBATCH --time=1:00:00",
                 "RUNS=(7 9 12)", "export TARF_THREADS=6", "source /opt/venv/bin/activate",
                 f"DIR={ws}/runs/$RID"):
        assert line in text.splitlines(), line
    assert f'exec /opt/py -m engine run --sink "$DIR" --run-id "$RID" --workspace {ws}' in text
    assert "%" not in SlurmExecutor(store, SlurmConfig(), check=False).batch_script([1]).split(
        "--array=")[1].splitlines()[0]


def test_executor_names(store):
    assert isinstance(executor_for("local", store), LocalExecutor)
    with pytest.raises(TarfError, match="executor"):
        executor_for("ray", store)


def test_workspace_executor_routes_rows_by_their_executor(store):
    slurm = SlurmExecutor(store, SlurmConfig(), check=False)
    ex = WorkspaceExecutor(store, LocalExecutor(store.path), slurm)
    rid = store.create_run(RunSpec())
    store.set_job(rid, "slurm", "41_0")
    h = ex.adopt(store.get_run(rid))
    assert isinstance(h, SlurmHandle) and h.job_id == "41_0"
    assert ex.adopt({"id": 3, "pid": None, "host": None}) is None  # a local row never started
    assert ex.command(5)[-2:] == ["--run-id", "5"]  # the primary's own attributes show through


def test_slurm_settings_need_the_slurm_executor(tmp_path):
    err = io.StringIO()
    with pytest.raises(TarfError, match="need --executor slurm"):
        run_headless({}, workspace=tmp_path, slurm={"partition": "gpu"}, err=err)
    with pytest.raises(TarfError, match="executor"):
        run_headless({}, workspace=tmp_path, executor="ray", err=err)
    assert not (tmp_path / "tarf.db").exists()  # nothing written


def test_use_switches_where_new_runs_go(store, monkeypatch):
    ex = WorkspaceExecutor(store, LocalExecutor(store.path))
    assert ex.name == "local"
    with pytest.raises(TarfError, match="executor"):
        ex.use("ray")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TarfError, match="sbatch not found"):
        ex.use("slurm")
    assert ex.name == "local"  # unchanged after a refusal


@pytest.mark.parametrize("module", ["tarf_tui.slurm", "engine.sink"])
def test_cluster_modules_are_torch_free(module):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (f"import {module}, sys, json; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    mods = set(json.loads(p.stdout.strip().splitlines()[-1]))
    assert not mods & {"torch", "torchvision", "textual", "plotext"}


def test_where_a_run_is():
    from tarf_tui.slurm import where

    assert where({"executor": "slurm", "job_id": "46_0", "status": "queued"}) == "slurm 46_0"
    assert where({"executor": "slurm", "job_id": "46_0", "status": "running", "host": "gpu07",
                  "pid": 12}) == "slurm 46_0 @gpu07"
    assert where({"executor": "slurm", "job_id": None}) == "slurm (not submitted)"
    assert where({"host": "laptop"}) == "laptop" and where({}) == ""
