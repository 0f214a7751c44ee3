"""Scheduled runs end to end: warm start, a changed space, model versions, promotion, the webhook."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_scheduler import Clock, add, daemon, sweep, ts

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.samplers.bayes import BayesSampler
from costtune.schedules.warm import WarmStartSampler, build_warm_start
from costtune.space import SearchSpace
from costtune.store import Store


@pytest.fixture
def receiver() -> Any:
    """A webhook receiver on 127.0.0.1 keeping every JSON body it was sent."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            assert self.headers["Content-Type"] == "application/json"
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()


def night_sweep(night: int, x1: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    raw = sweep(trials=6, night=night)
    raw["space"]["x1"] = {"type": "uniform", "low": x1[0], "high": x1[1]}
    return raw


def test_three_nights_warm_start_versions_and_summaries(tmp_path: Path, receiver: Any) -> None:
    url, bodies = receiver
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    add(store, cron="0 2 * * *", tz="UTC", raw=night_sweep(1), warm_start=3, webhook=url,
        artifact_root=str(tmp_path / "models"), summary_dir=str(tmp_path / "summaries"))
    clock = Clock(ts(2026, 3, 7, 2) + 5)
    (n1,) = daemon(store, clock, "d").run_pending()
    h1 = store.history(store.get_study(n1.study_name).id)
    top = [t.params for t in sorted(h1.completed(), key=lambda t: t.value)[:3]]  # type: ignore[arg-type, return-value]

    store.update_schedule("nightly", now_s=clock.now, sweep=night_sweep(2))  # tonight's data has drifted
    clock.now = ts(2026, 3, 8, 2) + 5
    (n2,) = daemon(store, clock, "d").run_pending()
    h2 = store.history(store.get_study(n2.study_name).id)
    first = sorted(h2.trials, key=lambda t: t.number)[:3]
    assert [t.params for t in first] == top and all(t.source == "manual" for t in first)  # best of night 1 first
    assert "3 configurations queued" in n2.summary["warm_start"]  # type: ignore[index]

    # night 3 searches a narrow x1 far from the optimum: a worse night, and most old configs no longer fit
    store.update_schedule("nightly", now_s=clock.now, sweep=night_sweep(3, x1=(0.9, 1.0)))
    clock.now = ts(2026, 3, 9, 2) + 5
    (n3,) = daemon(store, clock, "d").run_pending()
    assert "outside the current ranges" in n3.summary["warm_start"]  # type: ignore[index]

    versions = store.model_versions("nightly")
    assert [v.version for v in versions] == [1, 2, 3]
    assert [(v.study_name, v.run_cost_micros > 0) for v in versions] == \
        [(n1.study_name, True), (n2.study_name, True), (n3.study_name, True)]
    best12 = min(versions[:2], key=lambda v: v.value)
    assert versions[2].value > best12.value and not versions[2].promoted  # a worse night does not replace it
    assert [v.version for v in versions if v.promoted] == [best12.version]
    assert "not better than version" in (versions[2].note or "")
    card = json.loads((Path(store.model_version("nightly:3").artifact_path) / "model.json").read_text())
    assert card["params"] == versions[2].params and card["study"] == n3.study_name

    # the webhook heard every night; each body names the change since the previous night
    assert [b["study"] for b in bodies] == [n1.study_name, n2.study_name, n3.study_name]
    assert bodies[0]["change"]["verdict"] == "first"
    night3 = bodies[2]["change"]
    assert night3["verdict"] == "worse" and night3["previous_study"] == n2.study_name
    assert night3["delta"] == pytest.approx(bodies[2]["best"]["value"] - bodies[1]["best"]["value"])
    assert "Worse than the previous run" in bodies[2]["text"]
    assert (tmp_path / "summaries" / f"{n3.study_name}.json").exists()

    # promote: always -- the next (still worse) night replaces the promoted version
    info = store.get_schedule("nightly")
    from dataclasses import replace
    store.update_schedule("nightly", now_s=clock.now, settings=replace(info.settings, promote="always"))
    clock.now = ts(2026, 3, 10, 2) + 5
    daemon(store, clock, "d").run_pending()
    newest = store.model_versions("nightly")[-1]
    assert newest.version == 4 and newest.promoted and newest.replaced_version == best12.version
    store.close()


def trial(number: int, params: dict[str, Any], value: float) -> FrozenTrial:
    return FrozenTrial(number=number, state=TrialState.COMPLETE, params=params, value=value, cost_micros=1000)


def test_a_changed_space_keeps_what_fits_and_says_what_it_dropped() -> None:
    old = History("loss", Mode.MIN, (trial(0, {"a": 0.1, "b": 1}, 0.5), trial(1, {"a": 0.9, "b": 2}, 0.2),
                                     trial(2, {"a": 0.5, "b": 3}, 0.9)))
    narrower = SearchSpace.from_dict({"a": {"type": "uniform", "low": 0.0, "high": 0.6}})  # b dropped, a narrowed
    warm = build_warm_start(narrower, Mode.MIN, [("n1", old)], top_k=5, prior_runs=3, decay=0.5)
    assert warm.configs == [{"a": 0.1}, {"a": 0.5}]  # best first; a=0.9 no longer fits
    assert any("'b' is no longer searched" in d for d in warm.dropped)
    assert any("outside the current ranges" in d and "(1 trial)" in d for d in warm.dropped)
    wider = SearchSpace.from_dict({"a": {"type": "uniform", "low": 0, "high": 1},
                                   "b": {"type": "int", "low": 1, "high": 3},
                                   "c": {"type": "uniform", "low": 0, "high": 1}})
    none_fit = build_warm_start(wider, Mode.MIN, [("n1", old)], top_k=5, prior_runs=3, decay=0.5)
    assert none_fit.configs == [] and "lack the new parameter 'c'" in none_fit.describe()


def test_older_nights_weigh_less_in_the_prior() -> None:
    space = SearchSpace.from_dict({"a": {"type": "uniform", "low": 0, "high": 1}})
    night = History("loss", Mode.MIN, tuple(trial(i, {"a": i / 10}, float(i)) for i in range(10)))
    warm = build_warm_start(space, Mode.MIN, [("n3", night), ("n2", night), ("n1", night)], top_k=2,
                            prior_runs=2, decay=0.5)
    assert len(warm.prior) == 10 + 5  # yesterday in full, the night before at half weight, older not read
    assert all(t.number < 0 for t in warm.prior)


def test_the_prior_lets_the_bayesian_sampler_aim_from_its_first_trial() -> None:
    space = SearchSpace.from_dict({"a": {"type": "uniform", "low": 0, "high": 1}})
    prior = tuple(trial(-i - 1, {"a": a}, (a - 0.2) ** 2) for i, a in enumerate(np.linspace(0, 1, 12)))
    empty = History("loss", Mode.MIN, ())
    picks = [WarmStartSampler(BayesSampler(n_startup=5, n_candidates=300), prior)
             .suggest(space, empty, np.random.default_rng(seed))["a"] for seed in range(3)]
    assert all(abs(p - 0.2) < 0.1 for p in picks)  # without the prior the first trials are uniform draws


def test_the_best_trials_logged_artifact_becomes_the_versions_files(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import costtune
    from costtune.errors import InputError
    from costtune.schedules.publish import register_version

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    add(store, artifact_root=str(tmp_path / "models"))
    schedule = store.get_schedule("nightly")
    named, whole = tmp_path / "trial-0", tmp_path / "trial-1"
    for folder in (named, whole):
        folder.mkdir()
        (folder / "model.bin").write_bytes(b"weights")
        (folder / "stdout.log").write_text("noise")
    monkeypatch.delenv("COSTTUNE_TRIAL_DIR", raising=False)
    with pytest.raises(InputError, match="COSTTUNE_TRIAL_DIR"):
        costtune.log_artifact(named / "model.bin")
    monkeypatch.setenv("COSTTUNE_TRIAL_DIR", str(named))
    with pytest.raises(InputError, match="does not exist"):
        costtune.log_artifact(named / "missing.bin")
    costtune.log_artifact(named / "model.bin")
    costtune.log_artifact(str(named / "model.bin"))  # once is enough
    best = History("loss", Mode.MIN, (replace_dir(trial(0, {"a": 1}, 0.1), named),))
    v1 = register_version(store, schedule, 1, "nightly-a", best)
    assert sorted(p.name for p in Path(v1.artifact_path).iterdir()) == ["model.bin", "model.json"]  # type: ignore[union-attr]
    unnamed = History("loss", Mode.MIN, (replace_dir(trial(0, {"a": 2}, 0.05), whole),))
    v2 = register_version(store, schedule, 2, "nightly-b", unnamed)
    assert sorted(p.name for p in Path(v2.artifact_path).iterdir()) == ["model.bin", "model.json", "stdout.log"]  # type: ignore[union-attr]
    assert store.model_version("nightly").version == 2  # better: promoted; the bare name means the promoted one
    store.close()


def replace_dir(t: FrozenTrial, folder: Path) -> FrozenTrial:
    from dataclasses import replace

    return replace(t, output_dir=str(folder))


def test_an_s3_artifact_root_uploads_the_version(tmp_path: Path) -> None:
    """moto serves S3 in-process; the version's files land under s3://bucket/prefix/<model>/v<N>/."""
    import boto3
    from awstools import fake_credentials
    from moto import mock_aws

    from costtune.schedules.publish import register_version

    folder = tmp_path / "trial-0"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    with fake_credentials(), mock_aws():
        boto3.client("s3").create_bucket(Bucket="models-bkt")
        store = Store(f"sqlite:///{tmp_path / 's.db'}")
        add(store, artifact_root="s3://models-bkt/team")
        best = History("loss", Mode.MIN, (replace_dir(trial(0, {"a": 1}, 0.1), folder),))
        version = register_version(store, store.get_schedule("nightly"), 1, "nightly-a", best)
        assert version is not None and version.artifact_path == "s3://models-bkt/team/nightly/v1"
        listed = boto3.client("s3").list_objects_v2(Bucket="models-bkt")["Contents"]
        assert sorted(o["Key"] for o in listed) == ["team/nightly/v1/model.bin", "team/nightly/v1/model.json"]
        store.close()


def test_a_failed_night_is_recorded_and_reported(tmp_path: Path, receiver: Any) -> None:
    url, bodies = receiver
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    raw = sweep()
    raw["resources"]["simulation"]["workload"] = "costtune.demo.drift:no_such_night"  # e.g. a module renamed since
    add(store, raw=raw, webhook=url, summary_dir=str(tmp_path / "summaries"))
    (run,) = daemon(store, Clock(ts(2026, 3, 7, 7) + 5), "d").run_pending()
    assert run.state == "failed" and "resources.simulation.workload" in (run.reason or "")
    assert [(b["state"], b["study"]) for b in bodies] == [("failed", "nightly-20260307-0200")]
    assert "failed" in bodies[0]["text"] and store.model_versions() == []
    store.close()


TRAIN = """
import pathlib, costtune
p = costtune.params()
pathlib.Path("model.txt").write_text(str(p["lr"]))
costtune.log_artifact("model.txt")
costtune.report(loss=abs(p["lr"] - 0.3))
"""


def test_a_command_sweep_runs_where_it_was_added_and_publishes_its_logged_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real trial processes: the sweep's relative workdir is the one `schedule add` saw, whatever the
    daemon's directory; the best trial's `costtune.log_artifact` file becomes the model version."""
    from test_schedule_cli import cli, write

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "train.py").write_text(TRAIN, encoding="utf-8")
    raw = {"name": "x", "objective": {"metric": "loss", "mode": "min"},
           "space": {"lr": {"type": "uniform", "low": 0, "high": 1}}, "sampler": {"type": "random", "seed": 3},
           "budget": {"trials": 2}, "resources": {"provider": "local", "usd_per_hour": 0.1, "workers": 1},
           "workdir": "src", "command": ["python", "train.py"]}
    db = str(tmp_path / "s.db")
    monkeypatch.chdir(project)
    added = cli("schedule", "add", "local", write(project, raw), "--every", "1d", "--db", db)
    assert added.exit_code == 0, added.output
    monkeypatch.chdir(tmp_path)  # the daemon runs elsewhere
    store = Store(f"sqlite:///{db}")
    clock = Clock(int(store.get_schedule("local").next_fire_s or 0) + 5)  # type: ignore[arg-type]
    (run,) = daemon(store, clock, "d").run_pending()
    assert run.state == "finished", run.reason
    version = store.model_version("local")
    assert sorted(p.name for p in Path(version.artifact_path).iterdir()) == ["model.json", "model.txt"]
    assert float((Path(version.artifact_path) / "model.txt").read_text()) == version.params["lr"]
    store.close()
