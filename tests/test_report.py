"""`costtune report`: what each improvement cost, the cost/metric Pareto front, and the HTML report."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import struct
import subprocess
import time
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from test_leaderboard_cost import run_sim_sweep

import costtune
from costtune.cli import main
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.reports.cost import JSON_KEYS, best_vs_spend, cost_per_improvement, pareto_front
from costtune.reports.html import USEFUL_RGB, WASTE_RGB, nice_ticks, render_html
from costtune.reports.sections import SECTIONS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHROMIUM = Path("/usr/bin/chromium")


def trial(number: int, value: float | None, cost: int, *, at: int | None, state: TrialState = TrialState.COMPLETE,
          attempts: int = 1, params: dict[str, Any] | None = None) -> FrozenTrial:
    """A trial that finished ``at`` seconds after T0 (None: not finished)."""
    return FrozenTrial(number=number, state=state, params=params or {"lr": 0.1 * (number + 1)}, value=value,
                       cost_micros=cost, attempts=attempts, started_at=T0,
                       finished_at=None if at is None else T0 + timedelta(seconds=at))


def min_history() -> History:
    return History("loss", Mode.MIN, (
        trial(0, 1.0, 100_000, at=10),
        trial(1, None, 50_000, at=20, state=TrialState.FAILED),  # its money counts, it is never a best
        trial(2, 1.5, 200_000, at=30),
        trial(3, 0.6, 150_000, at=40),
        trial(4, None, 999, at=None, state=TrialState.RUNNING),  # not finished: not spent yet
        trial(5, 0.5, 300_000, at=35),  # numbered after 3 but finished before it
        trial(6, 0.3, 100_000, at=50),
    ))


def test_cost_per_improvement_walks_trials_in_finish_order_and_counts_failed_spend() -> None:
    rows = cost_per_improvement(min_history())
    assert [(r["trial"], r["value"], r["previous_best"]) for r in rows] == [(0, 1.0, None), (5, 0.5, 1.0),
                                                                           (6, 0.3, 0.5)]
    first, second, third = rows
    assert (first["gain"], first["cumulative_micros"], first["cost_of_gain_micros"]) == (None, 100_000, 100_000)
    assert first["usd_per_unit_gain"] is None
    # 0 + failed 1 + 2 + 5 = $0.65 spent; $0.55 of it since trial 0 bought 0.5 of loss
    assert (second["gain"], second["cumulative_micros"], second["cost_of_gain_micros"]) == (0.5, 650_000, 550_000)
    assert Decimal(second["usd_per_unit_gain"]) == Decimal("1.1")
    # trial 3 (no gain) and 6 cost $0.25 for a gain of exactly 0.2, not 0.19999999999999998
    assert (third["gain"], third["cumulative_micros"], third["cost_of_gain_micros"]) == (0.2, 900_000, 250_000)
    assert Decimal(third["usd_per_unit_gain"]) == Decimal("1.25")
    assert all(isinstance(r[k], int) for r in rows for k in ("cumulative_micros", "cost_of_gain_micros"))


def test_cost_per_improvement_in_max_mode_needs_a_strictly_higher_value() -> None:
    history = History("acc", Mode.MAX, (
        trial(0, 0.7, 1_000_000, at=1), trial(1, 0.9, 500_000, at=2), trial(2, 0.9, 10, at=3),
        trial(3, 0.8, 10, at=4), trial(4, 0.95, 30_000, at=5),
    ))
    rows = cost_per_improvement(history)
    assert [r["trial"] for r in rows] == [0, 1, 4]  # the tie (2) is no improvement
    assert rows[1]["gain"] == pytest.approx(0.2) and Decimal(rows[1]["usd_per_unit_gain"]) == Decimal("2.5")
    assert rows[2]["cost_of_gain_micros"] == 30_020  # trials 2, 3 and 4 since the best at trial 1
    assert Decimal(rows[2]["usd_per_unit_gain"]) == Decimal("0.6004")  # $0.03002 / 0.05


def test_best_vs_spend_is_a_monotone_step_curve_over_every_finished_trial() -> None:
    curve = best_vs_spend(min_history())
    assert [p["trial"] for p in curve] == [0, 1, 2, 5, 3, 6]
    assert [p["best"] for p in curve] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.3]
    spend = [p["cumulative_micros"] for p in curve]
    assert spend == sorted(spend) and spend[-1] == 900_000
    assert best_vs_spend(History("loss", Mode.MIN, (trial(0, None, 5, at=1, state=TrialState.FAILED),))) == [
        {"trial": 0, "cumulative_micros": 5, "best": None}]


def test_pareto_front_drops_dominated_trials_keeps_exact_ties_and_sorts_by_cost() -> None:
    history = History("loss", Mode.MIN, (
        trial(0, 1.0, 100, at=1),
        trial(1, 0.5, 300, at=2),
        trial(2, 0.8, 300, at=3),  # same cost as 1, worse value
        trial(3, 0.5, 400, at=4),  # same value as 1, dearer
        trial(4, 0.5, 300, at=5),  # exactly trial 1: neither dominates
        trial(5, 0.2, 1000, at=6),
        trial(6, None, 0, at=7, state=TrialState.FAILED),
        trial(7, 2.0, 50, at=8),
        trial(8, 3.0, 50, at=9),  # as cheap as 7, worse
    ))
    assert [t.number for t in pareto_front(history)] == [7, 0, 1, 4, 5]
    flipped = History("acc", Mode.MAX, (trial(0, 0.6, 100, at=1), trial(1, 0.9, 300, at=2),
                                        trial(2, 0.8, 400, at=3), trial(3, 0.5, 200, at=4)))
    assert [t.number for t in pareto_front(flipped)] == [0, 1]  # higher is better
    assert pareto_front(History("loss", Mode.MIN)) == []


# -- HTML -------------------------------------------------------------------------------------
class Balanced(HTMLParser):
    """Fails on a close tag that does not match the open one; records open <svg> chunks."""

    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def parse(doc: str) -> Balanced:
    parser = Balanced()
    parser.feed(doc)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def svg(doc: str, ident: str) -> str:
    start = doc.index(f'<svg id="{ident}"')
    return doc[start:doc.index("</svg>", start)]


def test_html_report_is_self_contained_well_formed_and_draws_both_charts() -> None:
    history = min_history()
    doc = render_html("tune<&>", history)
    parser = parse(doc)
    assert parser.tags.count("svg") == 2
    scatter = svg(doc, "metric-vs-cost")
    assert scatter.count("<title>trial ") == len(history.completed()) == 5  # one mark per trial with a value
    assert scatter.count('class="ring"') == len(pareto_front(history)) + 1 and "<polyline" in scatter  # + legend
    assert "<path" in svg(doc, "best-vs-spend")
    assert "tune&lt;&amp;&gt;" in doc and "tune<&>" not in doc
    assert "http://" not in doc.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in doc
    assert "$0.901" in doc  # total spend ($0.900999), running trial included


def test_html_report_escapes_user_text() -> None:
    evil = "<script>alert(1)</script>"
    history = History("loss", Mode.MIN, (
        trial(0, 1.0, 10, at=1, params={"name": evil}),
        FrozenTrial(1, TrialState.FAILED, {"p": evil}, cost_micros=5, finished_at=T0, error=evil),
    ))
    doc = render_html(evil, history)
    parse(doc)
    assert "<script" not in doc and "&lt;script&gt;" in doc


@pytest.mark.parametrize("trials", [(), (trial(0, None, 7, at=1, state=TrialState.FAILED),)])
def test_html_report_without_a_finished_value_says_so(trials: tuple[FrozenTrial, ...]) -> None:
    doc = render_html("empty", History("loss", Mode.MIN, trials))
    assert "no trial with a result yet" in doc and "<svg" not in doc
    parse(doc)


def test_html_report_with_one_trial_plots_one_point() -> None:
    doc = render_html("one", History("loss", Mode.MAX, (trial(0, 0.25, 0, at=1),)))
    assert parse(doc).tags.count("svg") == 2
    assert svg(doc, "metric-vs-cost").count("<title>trial ") == 1


def test_nice_ticks_cover_the_data_with_round_steps() -> None:
    assert nice_ticks(0.0, 0.93) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert nice_ticks(3.0, 3.0)[0] < 3.0 < nice_ticks(3.0, 3.0)[-1]


# -- CLI against a real store ------------------------------------------------------------------
@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    study = costtune.create_study("tuned", storage=url, metric="loss", usd_per_hour="3.60",
                                  space={"x": {"type": "uniform", "low": -2, "high": 2}}, sampler="random")

    def objective(t: costtune.Trial) -> float:
        time.sleep(0.005)  # a started second is billed: every trial, the failed one too, costs $0.001
        if t.number == 2:
            raise ValueError("diverged")
        return (t.params["x"] - 0.5) ** 2

    study.optimize(objective, n_trials=6, catch=(ValueError,))
    study.store.close()
    return url


def test_report_command_writes_html_and_prints_json_csv_and_tables(db: str, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.html"
    result = runner.invoke(main, ["report", "tuned", "--db", db, "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out.resolve()) in result.output
    doc = out.read_text(encoding="utf-8")
    parse(doc)
    assert svg(doc, "metric-vs-cost").count("<title>trial ") == 5  # trial 2 failed: no value to plot

    result = runner.invoke(main, ["report", "tuned", "--db", db, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["study"] == "tuned" and data["cost_per_improvement"][0]["usd_per_unit_gain"] is None
    assert data["summary"]["by_state"]["failed"]["trials"] == 1 and data["summary"]["failed_micros"] > 0
    summary = data["summary"]
    assert summary["total_micros"] == sum(s["micros"] for s in summary["by_state"].values()) > 0
    assert summary["total_micros"] >= data["cost_per_improvement"][-1]["cumulative_micros"]

    result = runner.invoke(main, ["report", "tuned", "--db", db, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [int(r["trial"]) for r in rows] == [r["trial"] for r in data["cost_per_improvement"]]

    result = runner.invoke(main, ["report", "tuned", "--db", db])
    assert result.exit_code == 0 and "cost per improvement" in result.output and "Pareto front" in result.output


TITLES = {"improvements": "cost per improvement", "pareto": "Pareto front", "classes": "where the money went",
          "spend": "spend by instance type and market", "steps": "steps per dollar"}


@pytest.mark.parametrize("section", sorted(TITLES))
def test_report_section_prints_just_that_section(db: str, section: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["report", "tuned", "--db", db, "--section", section])
    assert result.exit_code == 0, result.output
    shown = {name for name, title in TITLES.items() if title in result.output}
    assert shown == {section}
    data = json.loads(runner.invoke(main, ["report", "tuned", "--db", db, "--format", "json", "--section",
                                           section]).output)
    assert data["study"] == "tuned" and len(data) == 3 + len(JSON_KEYS[section])
    assert set(data) >= set(JSON_KEYS[section])
    result = runner.invoke(main, ["report", "tuned", "--db", db, "--format", "csv", "--section", section])
    assert result.exit_code == 0 and result.output.count("\n") >= 1


def test_a_wrong_section_name_lists_the_names(db: str) -> None:
    result = CliRunner().invoke(main, ["report", "tuned", "--db", db, "--section", "money"])
    assert result.exit_code == 2
    assert all(name in result.output for name in SECTIONS)
    help_text = " ".join(CliRunner().invoke(main, ["report", "--help"]).output.split())
    assert all(f"{name} (" in help_text for name in SECTIONS)


def test_report_on_an_unknown_study_exits_2(db: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "nope", "--db", db, "--html", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "no study named 'nope'" in result.output
    assert not (tmp_path / "x.html").exists()


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw pixels) of an 8-bit RGB/RGBA PNG; enough to look at a screenshot."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, bytearray(), 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, "only 8-bit RGB(A), non-interlaced"
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(bytes(idat)), width * bpp
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind in (1, 3, 4):
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                if kind == 1:
                    line[i] = (line[i] + left) & 255
                elif kind == 3:
                    line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
                else:
                    up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                    line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return width, height, bpp, bytes(out)


def colour_counts(png: Path) -> Counter[tuple[int, int, int]]:
    _, _, bpp, pixels = decode_png(png.read_bytes())
    return Counter(zip(pixels[0::bpp], pixels[1::bpp], pixels[2::bpp], strict=True))


def near(counts: Counter[tuple[int, int, int]], rgb: tuple[int, int, int], tol: int = 6) -> int:
    return sum(n for c, n in counts.items() if all(abs(a - b) <= tol for a, b in zip(c, rgb, strict=True)))


def test_html_report_of_a_simulated_sweep_draws_spend_bars_split_into_useful_and_waste(tmp_path: Path) -> None:
    url = run_sim_sweep(tmp_path)
    page = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", "sim-cost", "--db", url, "--html", str(page)])
    assert result.exit_code == 0, result.output
    doc = page.read_text(encoding="utf-8")
    parse(doc)
    bars = svg(doc, "spend-by-instance")
    assert bars.count('class="useful-bar"') >= 2 and bars.count('class="rerun-bar"') >= 2  # per type, + key
    assert "m5.large / spot" in bars and "c5.xlarge / spot" in bars
    assert "steps per dollar" in doc and "re-run money by trial" in doc


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium to render the report headless")
def test_html_report_renders_in_a_headless_browser(tmp_path: Path) -> None:
    url = run_sim_sweep(tmp_path)  # a simulated spot sweep: preemptions, so the bars have a waste part
    page, png = tmp_path / "r.html", tmp_path / "r.png"
    result = CliRunner().invoke(main, ["report", "sim-cost", "--db", url, "--html", str(page)])
    assert result.exit_code == 0, result.output
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={png}", "--window-size=1200,1100", page.as_uri()],
                   capture_output=True, timeout=60, check=False)
    assert png.exists(), "chromium wrote no screenshot"
    counts = colour_counts(png)
    total = sum(counts.values())
    white = near(counts, (255, 255, 255), tol=2)
    assert total - white > total // 50, "the page is (nearly) blank"
    assert len(counts) > 20  # text, grid lines, dots, bars: not one flat colour
    assert near(counts, (0x2F, 0x6F, 0xDE)) > 50  # the best-vs-spend curve
    assert near(counts, USEFUL_RGB) > 1_000  # spend bars: the useful part ...
    assert near(counts, WASTE_RGB) > 20  # ... and the part preemptions wasted (at least the legend key)


# -- any finite float can be drawn ---------------------------------------------------------------
EXTREMES = {
    "huge": [1.7e308], "huge negative": [-1.7e308], "both ends": [1.7e308, -1.7e308, 0.0],
    "float max": [1.7976931348623157e308, -1.7976931348623157e308], "subnormal": [5e-324],
    "subnormals": [5e-324, 1e-323], "equal": [0.5, 0.5, 0.5], "one point": [3.0], "zero": [0.0],
    "next float": [1.0, 1.0000000000000002], "with non-finite": [float("nan"), 2.0, float("inf"), -float("inf"), 1.0],
}


def _coordinates(chart: str) -> list[float]:
    """Every number the SVG draws with: positions, sizes, path and polyline points."""
    numbers = re.findall(r'\b(?:cx|cy|x|y|x1|x2|y1|y2|width|height|r)="([^"]*)"', chart)
    for attr in re.findall(r'\b(?:d|points)="([^"]*)"', chart):
        numbers += re.findall(r"-?[0-9.]+(?:e[-+]?\d+)?", attr)
    return [float(n) for n in numbers]


@pytest.mark.parametrize("case", sorted(EXTREMES))
def test_every_chart_renders_any_finite_value_and_skips_the_rest(case: str) -> None:
    values = EXTREMES[case]
    finite = [v for v in values if math.isfinite(v)]
    for mode in (Mode.MIN, Mode.MAX):
        history = History("loss", mode, tuple(
            trial(n, v, 1_000 * (n + 1), at=n, state=(TrialState.COMPLETE, TrialState.STOPPED)[n % 2])
            for n, v in enumerate(values)))
        doc = render_html(case, history)
        parse(doc)
        for ident in ("best-vs-spend", "metric-vs-cost"):
            chart = svg(doc, ident)
            coords = _coordinates(chart)
            assert coords and all(math.isfinite(c) and -1 <= c <= 600 for c in coords), (ident, case)
            assert "nan" not in chart and "inf" not in chart.replace("font", "")
        assert svg(doc, "metric-vs-cost").count("<title>trial ") == len(finite)  # non-finite values: not drawn


def test_report_html_of_a_stored_objective_of_1_7e308(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    study = costtune.create_study("huge", storage=url, metric="loss", sampler="random",
                                  space={"x": {"type": "uniform", "low": 0, "high": 1}})
    values = iter([1.7e308, -1.7e308, 5e-324, 1.7e308])
    study.optimize(lambda t: next(values), n_trials=4)
    study.store.close()
    page = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", "huge", "--db", url, "--html", str(page)])
    assert result.exit_code == 0, result.output
    doc = page.read_text(encoding="utf-8")
    parse(doc)
    assert svg(doc, "metric-vs-cost").count("<title>trial ") == 4
    assert "e+308" in svg(doc, "metric-vs-cost")  # the axis is labelled in the data's own terms
    for args in (["--format", "json"], ["--format", "csv"], []):
        result = CliRunner().invoke(main, ["report", "huge", "--db", url, *args])
        assert result.exit_code == 0, result.output
