"""NU2 item 5: a rung-scheduled trial relaunched at step 0 (no checkpoint) after an interruption starts its
ladder again; with a checkpoint it goes on from what it had spent. Real simulated sweeps, judged by the store."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from costtune.providers import make_provider
from simworkloads import with_changes
from test_rung_startup import BASE

from costtune.history import TrialState
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store


def _interrupted_then_resumed(tmp_path: Path, checkpoint: bool) -> tuple[Store, Any]:
    """Run BASE (ASHA $0.002 to $0.018, eta 3; ten-second steps, $0.018 is ~67 of them past a first report),
    interrupt it when trial 6 starts (trials 0-2 are then past the $0.006 rung), and resume it to its end."""
    cfg = with_changes(BASE, resources__simulation__checkpoint=checkpoint)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    box: list[SweepController] = []

    def interrupt(message: str) -> None:
        if message.startswith("trial 6 started"):
            box[0].interrupt()

    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    box.append(SweepController(spec, study, provider, trial_events=True, on_event=interrupt))
    with contextlib.suppress(KeyboardInterrupt):  # interrupt() ends the run as Ctrl-C does
        box[0].run()
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    study, _ = open_sweep(store, spec)
    SweepController(spec, study, provider, trial_events=False).run()
    return store, study


def test_a_trial_restarted_at_step_0_is_not_credited_what_its_lost_training_cost(tmp_path: Path) -> None:
    """Before, a trial promoted at $0.006 and relaunched from step 0 was credited that spend, reached max_usd
    after 18 steps and was recorded complete with an 18-step value. Now it starts at the first rung again:
    a complete relaunched trial has had its top rung's worth of steps in its last attempt."""
    store, study = _interrupted_then_resumed(tmp_path, checkpoint=False)
    relaunched = [t for t in study.history().trials if len(store.attempts(study.id, t.number)) > 1]
    assert len(relaunched) >= 3
    for trial in relaunched:
        assert all(a.start_step == 0 for a in store.attempts(study.id, trial.number))
        if trial.state == TrialState.COMPLETE:
            assert trial.last_step is not None and trial.last_step >= 60, (trial.number, trial.verdicts)
    assert any(t.state == TrialState.COMPLETE for t in relaunched)


def test_a_trial_resumed_from_a_checkpoint_goes_on_from_its_rung(tmp_path: Path) -> None:
    """With a checkpoint the relaunch goes on at its step: it is credited what it had spent, so it is not
    judged again at the rungs it passed."""
    store, study = _interrupted_then_resumed(tmp_path, checkpoint=True)
    relaunched = [t for t in study.history().trials if len(store.attempts(study.id, t.number)) > 1
                  and t.state == TrialState.COMPLETE]
    assert relaunched
    for trial in relaunched:
        assert store.attempts(study.id, trial.number)[-1].start_step > 0
        assert [level for level, _v, _up in trial.verdicts] == [2_000, 6_000, 18_000]
        assert all(up for _level, _v, up in trial.verdicts[:2])
