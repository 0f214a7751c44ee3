"""What a person reads: one money rule, durations in h/m, and tables that fit the terminal without cutting numbers."""

from __future__ import annotations

import io
import os
import re
import subprocess
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console
from test_leaderboard_cost import STUDY, sim_db  # noqa: F401  (the module-scoped simulated sweep)

from costtune.money import format_usd, format_usd_column, usd_places
from costtune.reports.fmt import format_duration
from costtune.reports.leaderboard import rows, study_ladder, to_table
from costtune.reports.table import Column, FittedTable
from costtune.reports.terminal import placement_tables
from costtune.store import Store
from costtune.store.reads import attempt_rows, trial_costs


@pytest.mark.parametrize(("micros", "text"), [
    (1_230_000, "$1.23"), (12_300, "$0.0123"), (43, "$0.000043"), (0, "$0"), (270_000, "$0.27"),
    (1_234_567_891, "$1,234.57"), (89_982, "$0.09"), (96_000, "$0.096"), (-5_000, "-$0.005"), (1, "$0.000001"),
    (1_200_000, "$1.20"), (123_456, "$0.123"),
])
def test_a_single_amount_shows_up_to_three_significant_digits_between_cents_and_micro_dollars(micros: int,
                                                                                        text: str) -> None:
    assert format_usd(micros) == text


def test_a_money_column_shares_the_decimals_its_smallest_amount_needs() -> None:
    # the issue's case: $0.010000 beside $0.2700 in one table
    assert format_usd_column([10_000, 270_000]) == ["$0.0100", "$0.2700"]
    assert format_usd_column([89_982, 270_000, None, 0]) == ["$0.0900", "$0.2700", "-", "$0"]
    assert format_usd_column([43, 6_692_200]) == ["$0.000043", "$6.692200"]
    assert usd_places() == 2 and usd_places(0, None) == 2 and usd_places(5_000_000_000) == 2


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (0.85, "850 ms"), (4.25, "4.2 s"), (42, "42 s"), (59.6, "1 m 0 s"), (192, "3 m 12 s"),
    (12_165.0, "3 h 23 m"), (86_400 * 2 + 4 * 3600, "2 d 4 h"), (None, "-"), (float("nan"), "-"),
])
def test_durations_read_like_a_person_writes_them(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def _render(renderable: object, width: int) -> str:
    console = Console(width=width, record=True, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.export_text()


def _body_rows(text: str) -> list[list[str]]:
    """The cells of each body line of a rendered (boxed) table."""
    out = []
    for line in text.splitlines():
        if line.startswith("│"):
            out.append([cell.strip() for cell in line.strip("│").split("│")])
    return out


def test_a_fitted_table_drops_whole_columns_in_priority_order_and_names_them() -> None:
    cols = [Column("trial", ["1", "22"], keep=0), Column("cost", ["$0.0900", "$12.00"], keep=1),
            Column("learning_rate_decay", ["0.5", "0.25"], keep=5),
            Column("error", ["a long error message that wraps", ""], keep=3, wrap=10, justify="left")]
    narrow = _render(FittedTable(cols), 30)
    assert "not shown: learning_rate_decay, error" in " ".join(narrow.split())
    assert [r[:2] for r in _body_rows(narrow)] == [["1", "$0.0900"], ["22", "$12.00"]]
    wide = _render(FittedTable(cols), 100)
    assert "not shown" not in wide and "a long error message that wraps" in wide
    with pytest.raises(ValueError, match="one cell per row"):
        FittedTable([Column("a", ["1"]), Column("b", [])])


def _header_words(text: str) -> set[str]:
    """Every word of a rendered table's header lines (the lines between the top border and the body)."""
    head = text.split("┡")[0]
    return {w for line in head.splitlines() if line.startswith("┃") for cell in line.split("┃") for w in cell.split()}


@pytest.mark.parametrize("width", [40, 60, 120])
def test_a_header_word_is_never_cut_the_column_takes_its_width_or_goes(width: int) -> None:
    # a one-letter column of short values under a 13-character name (the issue: "instance_typ" / "e")
    cols = [Column("trial", [str(n) for n in range(12)], keep=0), Column("loss", ["0.1"] * 12, keep=1),
            *(Column(f"x{i}", ["0.2"] * 12, keep=10 + i) for i in range(6)),
            Column("instance_type", ["t3.large"] * 12, keep=16),
            Column("error", ["waiting: budget: $0.02 left cannot carry a trial to its first report " * 3] + [""] * 11,
                   keep=5, wrap=16, justify="left")]
    text = _render(FittedTable(cols), width)
    dropped = " ".join(text.split("not shown:")[1].split()) if "not shown:" in text else ""
    words = _header_words(text)
    assert "instance_type" in words or "instance_type" in dropped
    assert all(w in {"trial", "loss", "instance_type", "error", *(f"x{i}" for i in range(6))} for w in words), words
    assert max(cell_len(line) for line in text.splitlines()) <= width


def test_reports_show_where_a_trial_really_ran_when_its_params_proposed_another_placement() -> None:
    # A policy amended a relaunch (the params are history then): the Pareto front and leaderboard said g4dn
    # on-demand while the spend section had no g4dn at all.
    from datetime import UTC, datetime

    from costtune.history import FrozenTrial, History, Mode, TrialState
    from costtune.reports.cost import pareto_rows
    from costtune.reports.html import leaderboard_html
    from costtune.reports.terminal import pareto_table
    from costtune.reports.trials import trials_table
    from costtune.store.reads import TrialCost

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    history = History("loss", Mode.MIN, tuple(
        FrozenTrial(number=n, state=TrialState.COMPLETE, params={"x": n, "instance_type": itype, "market": mkt},
                    value=1.0 - n, cost_micros=1000 * (n + 1), started_at=t0, finished_at=t0)
        for n, (itype, mkt) in enumerate([("t3.large", "spot"), ("g4dn.xlarge", "on-demand")])))
    costs = {0: TrialCost(1, "t3.large", "spot", 0, 0, 1000), 1: TrialCost(2, "t3.large", "spot", 0, 0, 2000)}
    assert [r["ran_on"] for r in pareto_rows(history, costs)] == [{}, {"instance_type": "t3.large", "market": "spot"}]
    front = _render(pareto_table(history, "front", costs), 120)
    board = _render(to_table(history, "board", costs=costs), 160)
    for text in (front, board):
        assert "g4dn" not in text and "on-demand" not in text, text
        assert "t3.large*" in text and "spot*" in text and "where the trial really ran" in text, text
    listing = [{"trial": n, "state": "complete", "controller_gone": False, "source": "sampler", "value": 1.0 - n,
                "last_step": 3, "cost_micros": 1000, "error": None, "params": history.trials[n].params,
                "attempts": [{"exit_reason": "completed", "instance_type": "t3.large", "market": "spot"}]}
               for n in (0, 1)]
    listed = _render(trials_table(listing, "loss", title="trials"), 160)
    assert "g4dn" not in listed and "t3.large*" in listed and "where the trial really ran" in listed, listed
    page = leaderboard_html(history, costs=costs)
    assert "g4dn" not in page and "t3.large*" in page and "where the trial really ran" in page, page
    zero = [r for r in _body_rows(front) if r[0] == "0"] + [r for r in _body_rows(board) if r[1] == "0"]
    assert len(zero) == 2 and not any("*" in cell for r in zero for cell in r), zero  # ran where proposed


@pytest.fixture(scope="module")
def board(sim_db: str):  # type: ignore[no-untyped-def]  # noqa: F811
    store = Store(sim_db)
    try:
        info = store.get_study(STUDY)
        attempts = attempt_rows(store, info.id)
        return store.history(info.id), trial_costs(attempts), study_ladder(info.spec), attempts
    finally:
        store.close()


@pytest.mark.parametrize("width", [80, 120, 200])
def test_the_leaderboard_fits_the_width_and_never_cuts_a_number(board, width: int) -> None:  # type: ignore[no-untyped-def]
    history, costs, ladder, _ = board
    table = to_table(history, "leaderboard: sim-cost (loss, min)", None, costs, ladder)
    text = _render(table, width)
    assert max(cell_len(line.rstrip()) for line in text.splitlines()) <= width
    assert "…" not in text  # rich's mark of a cut cell
    kept, dropped = table.fit(width)
    headers = [str(c.header) for c in kept.columns]
    by_header = {c.header: c for c in table.columns}
    body = _body_rows(text)
    assert len(body) == len(history.trials)  # one line per trial: nothing wrapped onto a second line
    for r, cells in enumerate(body):
        assert cells == [by_header[h]._texts[r].plain for h in headers]  # every kept cell whole
    assert set(headers) | set(dropped) == set(by_header)
    assert {"trial", "loss", "cost"} <= set(headers)  # the columns a ranking is about stay longest
    if dropped:
        flat = " ".join(text.split())  # the note below the table may wrap at any space
        assert "--format json" in flat and "not shown:" in flat
    if width == 200:  # room for the cloud columns of a simulated spot sweep with preemptions
        assert {"instance", "preempt", "re-run $", "$ at rung"} <= set(headers)
    data = rows(history, costs, ladder)
    assert [cells[headers.index("trial")] for cells in body] == [str(d["trial"]) for d in data]


def test_cloud_columns_appear_only_when_the_study_has_them(board) -> None:  # type: ignore[no-untyped-def]
    history, costs, ladder, _ = board
    names = {c.header for c in to_table(history, "t", None, costs, ladder).columns}
    assert {"instance", "market", "preempt", "re-run $", "$ at rung"} <= names
    assert "instance_type" not in names  # the searched dimension shows as the instance column
    local = {c.header for c in to_table(history, "t").columns}  # no attempts known: nothing about placement
    assert not local & {"instance", "market", "preempt", "re-run $", "$ at rung"}


@pytest.mark.parametrize("width", [80, 120])
def test_report_tables_fit_the_width_without_cutting_money(board, width: int) -> None:  # type: ignore[no-untyped-def]
    history, costs, _, attempts = board
    for part in placement_tables(history, attempts, costs):
        text = _render(part, width)
        assert max(cell_len(line.rstrip()) for line in text.splitlines()) <= width
        assert "…" not in text
        for cells in _body_rows(text):
            for cell in cells:
                if cell.startswith("$"):
                    assert cell.replace("$", "").replace(",", "").replace(".", "").isdigit(), cell


def test_the_cli_leaderboard_fits_columns_when_piped(sim_db: str, tmp_path: Path) -> None:  # noqa: F811
    env = {**os.environ, "COLUMNS": "80", "COSTTUNE_HOME": str(tmp_path)}
    proc = subprocess.run(["costtune", "leaderboard", STUDY, "--db", sim_db], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert max(cell_len(line) for line in proc.stdout.splitlines()) <= 80
    assert "not shown:" in proc.stdout and "…" not in proc.stdout


_MONEY = re.compile(r"(?<![<\w])-?\$(\d[\d,]*)(?:\.(\d+))?(?![\dE])")
_BOX = tuple("┏┃┡│└╭╰")


def money_rule_violations(text: str) -> list[str]:
    """Dollar amounts that break the one rule: more decimals than the smallest amount shown needs
    (``$0.010000`` beside ``$0.2700``), or past micro-dollars."""
    amounts = [(m.group(0), int(m.group(1).replace(",", "")), m.group(2) or "") for m in _MONEY.finditer(text)]
    nonzero = [int(whole) * 1_000_000 + int((dec + "000000")[:6]) for _, whole, dec in amounts if len(dec) <= 6]
    places = usd_places(*(m for m in nonzero if m))
    return [token for token, _, dec in amounts if len(dec) > max(places, 2) or len(dec) > 6]


def test_the_money_rule_checker_catches_the_issues_case() -> None:
    assert money_rule_violations("$0.010000 beside $0.2700") == ["$0.010000"]
    assert money_rule_violations("$0.0100 beside $0.2700, $6.78 and $0.000043/h") == []
    assert money_rule_violations("$/unit $0.0997751") == ["$0.0997751"]


@pytest.mark.parametrize("width", [60, 80, 200])
def test_every_command_fits_the_width_with_one_money_rule(sim_db: str, tmp_path: Path, width: int,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Each table a command prints fits the terminal without a cut value, and no output shows two
    formats for dollars: trials, studies, spend, prices, report, plan, audit, leaderboard, the
    end-of-run summary."""
    from click.testing import CliRunner
    from test_leaderboard_cost import write_sim_sweep

    from costtune.cli import main
    from costtune.cli.common import out_console

    monkeypatch.setattr(out_console, "width", width)
    sweep = write_sim_sweep(tmp_path / "sweep.yaml")
    hyperband = Path(__file__).parents[1] / "examples" / "simulated" / "hyperband.yaml"
    commands = [["run", str(sweep), "--quiet", "--db", sim_db], ["leaderboard", STUDY, "--db", sim_db],
                ["trials", STUDY, "--db", sim_db], ["trials", STUDY, "1", "--db", sim_db], ["studies", "--db", sim_db],
                ["spend", "--db", sim_db], ["audit", "--db", sim_db], ["report", STUDY, "--db", sim_db],
                ["prices", "--provider", "aws"], ["plan", str(hyperband), "--no-forecast", "--db", sim_db]]
    for args in commands:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
        text = result.stdout
        assert "…" not in text, args
        tables = [line for line in text.splitlines() if line.startswith(_BOX)]
        assert tables, args
        assert max(cell_len(line) for line in tables) <= width, (args, text)
        assert money_rule_violations(text) == [], (args, text)


def test_the_progress_line_wraps_its_figures_and_never_cuts_one() -> None:
    from costtune.runner.session import _Progress

    console = Console(width=60, record=True, color_system=None, soft_wrap=True, file=io.StringIO())
    progress = _Progress(console=console, auto_refresh=False)
    detail = ("running 2 of 3 workers (budget.usd: $0.005 left, running trials hold the rest; a trial needs "
              "$0.01 to start)  failed 0  best val_loss -1.44471 (trial 37)  spent $6.78 of $7.50")
    progress.add_task("sim-hyperband-with-a-long-name", total=10, detail=detail)
    console.print(progress.get_renderable())
    text = console.export_text()
    assert "…" not in text and max(cell_len(line) for line in text.splitlines()) <= 60
    assert " ".join(text.split()).endswith(detail.replace("  ", " ")) and "sim-hyperband-with-a-long-name" in text


@pytest.mark.parametrize(("held_ms", "granularity_s", "minimum_s", "charged"), [
    (20_000, 1, 60, 60_000),  # AWS: a 20 s attempt pays the 60 s minimum
    (10_200, 1, 0, 11_000),  # per second: a started second is paid
    (1_234, 0, 0, 1_234),  # in-process studies: per millisecond
    (3_600_001, 1, 60, 3_601_000), (0, 1, 60, 0),
])
def test_the_time_billed_is_what_the_cost_pays_for(held_ms: int, granularity_s: int, minimum_s: int,
                                                   charged: int) -> None:
    from costtune.money import charge_micros, charged_ms

    assert charged_ms(held_ms, granularity_s=granularity_s, minimum_s=minimum_s) == charged
    for rate in (39_500, 96_000, 36_000_000):
        assert charge_micros(held_ms, rate, granularity_s=granularity_s, minimum_s=minimum_s) == \
            charge_micros(charged, rate, granularity_s=0)


def test_the_leaderboard_and_trials_show_the_time_billed(board, sim_db: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    import json

    from click.testing import CliRunner

    from costtune.cli import main

    history, costs, ladder, attempts = board
    data = {r["trial"]: r for r in rows(history, costs, ladder)}
    for number, cost in costs.items():  # simulated AWS attempts: per second, 60 s minimum
        mine = [a for a in attempts if a.trial == number]
        expected = sum(max(-(-a.billable_ms // 1000) * 1000, 60_000) if a.billable_ms else 0 for a in mine)
        assert data[number]["charged_s"] == expected / 1000 >= cost.billable_ms / 1000
    table = to_table(history, "t", None, costs, ladder)
    assert "time billed" in {c.header for c in table.columns}
    assert "wall time" in {c.header for c in to_table(history, "t").columns}  # no attempts: labelled as wall time
    short = next(a for a in attempts if 0 < a.billable_ms < 59_000)  # a preempted attempt pays the whole minute
    result = CliRunner().invoke(main, ["trials", STUDY, str(short.trial), "--db", sim_db, "--format", "json"])
    [shown] = [a for a in json.loads(result.output)["attempts"] if a["number"] == short.number]
    assert shown["charged_ms"] == 60_000 and shown["billable_ms"] == short.billable_ms


def test_one_plural_rule_for_every_count() -> None:
    """Issue 7: "all 1 trials run", "1 preemptions". Counts go through costtune.words.plural."""
    from costtune.words import plural

    assert [plural(n, "trial") for n in (0, 1, 2)] == ["0 trials", "1 trial", "2 trials"]
    assert (plural(1, "preemption"), plural(3, "failed trial"), plural(2, "trial output directory"),
            plural(2, "process")) == ("1 preemption", "3 failed trials", "2 trial output directories", "2 processes")


def test_no_message_writes_a_variable_count_before_a_fixed_plural() -> None:
    """A count in a message is ``plural(n, noun)``, never ``f"{n} trials"`` (wrong for n = 1)."""
    import re

    root = Path(__file__).resolve().parents[1] / "costtune"
    nouns = ("trials|preemptions|attempts|workers|iterations|interruptions|configurations|moments"
             "|promotions|reservations|directories|studies|failures|rows")
    words = "(?:(?:failed|queued|running|more|finished|stopped|interrupted|preempted|trial output) )?"
    pattern = re.compile(r"\{(?!MAX_|[A-Z_]+\})[^{}]+\} " + words + "(?:" + nouns + r")\b")
    found = [f"{path.relative_to(root)}:{n}: {line.strip()}" for path in sorted(root.rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_a_leaderboard_cut_short_says_how_many_rows_are_hidden(tmp_path: Path) -> None:
    """Issue 7: the end-of-run leaderboard showed 10 of 16 rows without saying so."""
    import costtune
    from costtune.reports.leaderboard import to_table

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = costtune.create_study("many", storage=url, metric="loss")
    for value in range(16):
        study.tell(study.ask(), float(value))
    console = Console(width=120, record=True)
    console.print(to_table(study.history(), "leaderboard", limit=10, for_all="costtune leaderboard many for all"))
    console.print(to_table(study.history(), "leaderboard", limit=16, for_all="costtune leaderboard many for all"))
    text = console.export_text()
    assert text.count("10 of 16 shown; costtune leaderboard many for all") == 1 and " of 16 shown" not in \
        text.split("10 of 16 shown")[1]
    proc = subprocess.run(["costtune", "leaderboard", "many", "--limit", "3", "--db", url], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    assert "3 of 16 shown; leave out --limit for all" in proc.stdout
