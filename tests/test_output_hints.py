"""A new user's output faults (nu1): a dollar cap that cannot bind, spend order and columns, empty listings and
tables, the prices filters and where a simulated workload module is looked up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from costtune.cli.app import main
from costtune.history import Mode
from costtune.store import Store


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _file(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_cap_on_unpriced_trials_warns_in_plan_naming_both_fields(tmp_path: Path) -> None:
    sweep = {"name": "free", "objective": {"metric": "loss"}, "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
             "sampler": {"type": "random", "seed": 1}, "budget": {"trials": 2, "usd": 0.01},
             "resources": {"provider": "local"}, "command": ["python", "t.py"]}
    result = _cli("plan", str(_file(tmp_path, "free.yaml", sweep)), "--format", "json")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "warning: budget.usd ($0.01) can never bind: resources.usd_per_hour is not set" in said
    priced = _cli("plan", str(_file(tmp_path, "priced.yaml", {**sweep, "resources": {"provider": "local",
                                                                                      "usd_per_hour": 1}})))
    assert priced.exit_code == 0 and "can never bind" not in priced.stderr


def test_spend_sorts_scopes_naturally_and_keeps_left_on_a_narrow_console(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    for i in range(1, 12):
        store.create_study(f"study-with-a-longer-name-{i}", metric="loss", mode=Mode.MIN, space={"x": [1, 2]},
                           sampler={"type": "random"}, budget_usd_micros=1_000_000 * i)
    store.close()
    env = {**os.environ, "COLUMNS": "50"}
    proc = subprocess.run([sys.executable, "-m", "costtune.cli", "spend", "--db", url], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    names = [int(line.split("name-")[1].split()[0]) for line in proc.stdout.splitlines() if "name-" in line]
    assert names == sorted(names) == list(range(1, 12))  # study 2 before study 10
    header = next(line for line in proc.stdout.splitlines() if line.startswith("┃"))
    assert "left" in header and "held" not in header, proc.stdout


def test_studies_without_a_store_says_so_and_where(tmp_path: Path) -> None:
    db = tmp_path / "none" / "costtune.db"
    result = _cli("studies", "--db", str(db))
    assert result.exit_code == 0
    assert f"no studies yet: no store at {db}" in " ".join(result.stdout.split())
    assert "┏" not in result.stdout and not db.exists()


def test_report_of_only_failed_trials_says_why_tables_are_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    info = store.create_study("allfail", metric="loss", mode=Mode.MIN, space={"x": [1, 2]}, sampler={"type": "random"})
    store.close()
    result = _cli("report", info.name, "--db", url)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("no rows: no trial has a value of loss yet") == 2  # improvements, Pareto front
    assert "no rows: no finished trial reported a step" in result.stdout


def test_prices_unknown_gpu_and_provider_name_the_flag(tmp_path: Path) -> None:
    gpu = _cli("prices", "--gpu", "Z9000")
    assert gpu.exit_code == 2
    assert "--gpu: no price has GPU model 'Z9000'; known GPU models: " in gpu.stderr and "T4" in gpu.stderr
    provider = _cli("prices", "--provider", "ibm")
    assert provider.exit_code == 2 and "'--provider'" in provider.stderr and "providers:" not in provider.stderr
    nothing = _cli("prices", "--gpu", "T4", "--region", "us-east-1", "--min-vcpus", "999")
    assert nothing.exit_code == 0 and "no price matches these filters" in nothing.stdout
    region = _cli("prices", "--gpu", "T4", "--region", "nowhere-1")  # a name no price has: a typo, refused
    assert region.exit_code == 2 and "--region: no price has region 'nowhere-1'" in region.stderr


def test_a_workload_module_in_the_current_directory_is_found(tmp_path: Path) -> None:
    here = tmp_path / "proj"
    here.mkdir()
    (here / "mywl_nu1.py").write_text("def curve(params, step, instance_type):\n"
                                      "    return params['x'] + 1 / (step + 1), 10.0\n")
    sweep = {"name": "wl", "objective": {"metric": "loss"}, "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
             "budget": {"trials": 2}, "resources": {"provider": "simulated", "region": "us-east-1",
                                                    "instance_type": "m5.large",
                                                    "simulation": {"workload": "mywl_nu1:curve", "max_steps": 3}}}
    path = _file(here, "sim.yaml", sweep)
    env = dict(os.environ)
    # -P: the current directory is not on sys.path, as for the installed `costtune` script
    code = "import sys; from costtune.cli.entry import main; sys.argv = ['costtune', 'plan', 'sim.yaml']; main()"
    ok = subprocess.run([sys.executable, "-P", "-c", code], cwd=here, capture_output=True, text=True, env=env,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    away = subprocess.run([sys.executable, "-P", "-c", code.replace("'sim.yaml'", repr(str(path)))], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60)
    assert away.returncode == 2
    said = " ".join(away.stderr.split())
    assert "resources.simulation.workload: no module named 'mywl_nu1': looked on the Python path and in the current " \
           f"directory '{tmp_path}'" in said and "PYTHONPATH" in said
