"""An attempt's note accumulates what happened to it (how its market was chosen, where it was placed, why it
was stopped), in order and each once: `costtune trials STUDY N` shows all of it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from test_curve_scheduler import BAD, GOOD, run, sweep

from costtune.cli.app import main
from costtune.history import Mode, TrialState
from costtune.store import Store


def test_a_curve_stop_keeps_the_market_choice_note(tmp_path: Path) -> None:
    # The curve verdict used to overwrite the note that said why the trial ran on spot or on-demand.
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = sweep([GOOD, BAD, GOOD])
    cfg["resources"]["market"] = "cheapest-expected"
    study = run(store, cfg)
    bad = study.history().trials[1]
    assert bad.state == TrialState.STOPPED
    note = store.attempts(study.id, bad.number)[0].note
    assert note.startswith("market cheapest-expected: ") and "; curve: predicted" in note, note
    shown = " ".join(CliRunner().invoke(main, ["trials", "curvy", str(bad.number), "--db", store.url]).output.split())
    assert "attempt 1: market cheapest-expected: " in shown and "curve: predicted" in shown, shown


def test_notes_accumulate_in_order_each_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    study = store.create_study("notes", metric="loss", mode=Mode.MIN, space={"x": {"type": "int", "low": 0, "high": 9}},
                               sampler={"type": "grid"}, queued=[{"x": 1}])
    claimed = store.claim_next(study.id, None, owner="testhost:4242:99")
    assert claimed is not None
    attempt = store.start_attempt(claimed.id, 1, idempotency_key="k1", provider="local", rate_micros_per_hour=0)
    for note in ("placed on spot", "curve: stop; compared after $0.01", "placed on spot", "", "curve: stop",
                 "it completed before the stop took effect"):
        store.set_attempt_note(attempt, note)  # the name providers call: it adds too
    assert store.attempts(study.id, claimed.number)[0].note == (
        "placed on spot; curve: stop; compared after $0.01; it completed before the stop took effect")
