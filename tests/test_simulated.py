"""The virtual clock and the simulated provider: exact times, exact bills, honest preemptions."""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from costtune.providers.base import FatalProviderError, LaunchRequest
from costtune.providers.simulated import TERMINATED_EXIT_CODE, SimulatedProvider, load_workload

from costtune.clock import Clock, VirtualClock, WallClock
from costtune.demo import workloads
from costtune.errors import SpecError
from costtune.protocol import MetricReport, parse_line

# -- the virtual clock ---------------------------------------------------------------------------


def test_clocks_satisfy_the_protocol() -> None:
    clocks: list[Clock] = [WallClock(), VirtualClock()]
    wall = clocks[0]
    before = wall.now()
    wall.sleep(0)
    assert wall.now() >= before


def test_virtual_clock_sleep_and_advance() -> None:
    clock = VirtualClock(start=5.0)
    assert clock.now() == 5.0
    clock.sleep(2.5)
    assert clock.now() == 7.5
    clock.advance_to(7.5)  # standing still is fine
    clock.advance_to(100.0)
    assert clock.now() == 100.0
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_to(99.0)
    with pytest.raises(ValueError):
        clock.sleep(-1)
    with pytest.raises(ValueError):
        clock.advance_to(math.nan)
    assert clock.now() == 100.0


def test_callbacks_fire_in_time_order_ties_in_scheduling_order() -> None:
    clock = VirtualClock()
    fired: list[tuple[str, float]] = []

    def note(name: str) -> None:
        fired.append((name, clock.now()))

    clock.call_at(30, lambda: note("c"))
    clock.call_at(10, lambda: note("a1"))
    clock.call_at(10, lambda: note("a2"))
    clock.call_at(20, lambda: note("b"))
    cancelled = clock.call_at(15, lambda: note("never"))
    cancelled.cancel()
    assert clock.next_event_time() == 10
    clock.run_until(20)
    assert fired == [("a1", 10), ("a2", 10), ("b", 20)]
    assert clock.now() == 20
    assert clock.next_event_time() == 30
    clock.sleep(100)
    assert fired[-1] == ("c", 30)
    assert clock.now() == 120
    assert clock.next_event_time() is None


def test_callbacks_may_schedule_callbacks_and_past_times_are_refused() -> None:
    clock = VirtualClock()
    fired: list[float] = []

    def chain() -> None:
        fired.append(clock.now())
        if len(fired) < 3:
            clock.call_at(clock.now() + 1, chain)

    clock.call_at(1, chain)
    clock.advance_to(10)
    assert fired == [1, 2, 3]
    with pytest.raises(ValueError, match="past"):
        clock.call_at(5, chain)


# -- the simulated provider ----------------------------------------------------------------------


def constant_workload(params: dict, step: int, instance_type: str) -> tuple[float, float]:
    """Loss 1 / (step + 1), ten seconds a step (``seconds`` overrides it)."""
    return 1.0 / (step + 1), float(params.get("seconds", 10.0))


def make(clock: VirtualClock | None = None, **kwargs: object) -> tuple[VirtualClock, SimulatedProvider]:
    clock = clock or VirtualClock()
    options: dict = {"metric": "loss", "max_steps": 5, "startup_seconds": 60.0, **kwargs}
    return clock, SimulatedProvider(clock, constant_workload, **options)


def request(market: str = "on-demand", **tags: str) -> LaunchRequest:
    return LaunchRequest(argv=(), workdir=".", output_dir=".", tags=tags, params={}, instance_type="m5.large",
                         market=market)


def steps(lines: Iterator[str]) -> list[tuple[int | None, float]]:
    out = []
    for line in lines:
        report = parse_line(line)
        assert report is not None
        out.append((report.step, report.metrics["loss"]))
    return out


def test_reports_appear_at_the_end_of_each_step() -> None:
    clock, sim = make()
    handle = sim.launch(request(), "k")
    assert sim.next_event_time() == 60.0  # start-up ends
    clock.advance_to(69.999)
    assert list(sim.output(handle)) == []
    for k in range(5):
        clock.advance_to(60 + 10 * (k + 1))
        assert steps(sim.output(handle)) == [(k, 1.0 / (k + 1))]
        assert list(sim.output(handle)) == []  # read once only
    status = sim.poll(handle)
    assert (status.running, status.exit_code, status.preempted, status.billable_ms) == (False, 0, False, 110_000)
    clock.advance_to(500)
    assert sim.poll(handle).billable_ms == 110_000  # billing stopped at the exit
    assert sim.next_event_time() is None


def test_lines_are_protocol_lines() -> None:
    clock, sim = make(max_steps=1)
    handle = sim.launch(request(), "k")
    clock.advance_to(70)
    (line,) = sim.output(handle)
    assert json.loads(line.split(" ", 1)[1]) == {"step": 0, "loss": 1.0}


def test_lines_accumulate_until_read() -> None:
    clock, sim = make()
    handle = sim.launch(request(), "k")
    clock.advance_to(85)
    assert [s for s, _ in steps(sim.output(handle))] == [0, 1]
    clock.advance_to(1000)
    assert [s for s, _ in steps(sim.output(handle))] == [2, 3, 4]



def test_take_reports_hands_over_what_parsing_the_lines_gives_and_shares_their_read_mark() -> None:
    """The controller's fast path: the reports are those ``parse_line`` makes of the lines, each read once
    whichever way it is read."""

    def awkward(params: dict, step: int, instance_type: str) -> tuple[float, float]:
        return [0.1 + 0.2, -0.0, 1e-320, 1.7976931348623157e308, 1 / 3][step], 10.0  # exact float round trips

    clock_a, lines = make(max_steps=5)
    clock_b, direct = make(max_steps=5)
    lines.workload = direct.workload = awkward
    ha, hb = lines.launch(request(), "k"), direct.launch(request(), "k")
    for t in (75, 95, 200):
        clock_a.advance_to(t)
        clock_b.advance_to(t)
        parsed = [parse_line(line) for line in lines.output(ha)]
        taken = direct.take_reports(hb)
        assert [MetricReport(r.step, r.metrics, r.nonfinite) for r in taken] == parsed and taken
        # each carries the billable time of its own step end (start-up 60 s, steps of 10 s), not of the read
        assert [r.billable_ms for r in taken] == [70_000 + 10_000 * r.step for r in taken]  # type: ignore[operator]
        assert [math.copysign(1, r.metrics["loss"]) for r in taken] == [math.copysign(1, r.metrics["loss"])
                                                                          for r in parsed]  # type: ignore[union-attr]
        assert direct.take_reports(hb) == [] and list(direct.output(hb)) == []
    clock_a.advance_to(1000)
    assert steps(lines.output(ha)) == []

def test_billable_ms_is_exact_at_any_moment() -> None:
    clock, sim = make(clock=VirtualClock(start=1000.0))
    handle = sim.launch(request(), "k")
    for t, ms in [(1000.0, 0), (1000.001, 1), (1030.0, 30_000), (1060.0, 60_000), (1083.25, 83_250)]:
        clock.advance_to(t)
        status = sim.poll(handle)
        assert status.running and status.exit_code is None
        assert status.billable_ms == ms


def test_terminate_mid_step_stops_billing_and_reports() -> None:
    clock, sim = make()
    handle = sim.launch(request(), "k")
    clock.advance_to(85)  # step 2 half done
    sim.terminate(handle)
    sim.terminate(handle)  # idempotent
    assert steps(sim.output(handle)) == [(0, 1.0), (1, 0.5)]
    clock.advance_to(1000)
    assert list(sim.output(handle)) == []
    status = sim.poll(handle)
    assert (status.running, status.exit_code, status.preempted, status.billable_ms) == (
        False, TERMINATED_EXIT_CODE, False, 85_000)
    sim.terminate(handle)
    assert sim.poll(handle).billable_ms == 85_000


def test_terminate_at_a_step_end_keeps_that_report() -> None:
    clock, sim = make()
    handle = sim.launch(request(), "k")
    clock.advance_to(80)
    sim.terminate(handle)
    assert [s for s, _ in steps(sim.output(handle))] == [0, 1]


def test_launch_is_idempotent() -> None:
    clock, sim = make()
    first = sim.launch(request(), "k")
    clock.advance_to(30)
    again = sim.launch(request(market="spot"), "k")
    assert again is first
    assert sim.poll(first).billable_ms == 30_000
    assert len(sim.list_owned({})) == 1


def test_unknown_market_is_fatal() -> None:
    _, sim = make()
    with pytest.raises(FatalProviderError, match="market"):
        sim.launch(request(market="reserved"), "k")


def test_spot_preempted_at_the_trace_time() -> None:
    clock, sim = make(preemption_trace=[85.0, 500.0])
    spot = sim.launch(request("spot"), "spot")
    on_demand = sim.launch(request("on-demand"), "od")
    assert sim.next_event_time() == 60.0
    clock.advance_to(60.0)
    assert sim.next_event_time() == 70.0
    clock.advance_to(80.0)
    assert sim.next_event_time() == 85.0  # the preemption, before step 2 would end
    clock.advance_to(200.0)
    status = sim.poll(spot)
    assert (status.running, status.exit_code, status.preempted, status.billable_ms) == (False, None, True, 85_000)
    assert [s for s, _ in steps(sim.output(spot))] == [0, 1]
    clock.advance_to(1000.0)
    assert list(sim.output(spot)) == []
    status = sim.poll(on_demand)
    assert (status.exit_code, status.preempted, status.billable_ms) == (0, False, 110_000)
    assert len(list(sim.output(on_demand))) == 5


def test_trace_preempts_only_after_launch() -> None:
    clock, sim = make(preemption_trace=[50.0, 10.0])  # unsorted on purpose
    clock.advance_to(20.0)
    late = sim.launch(request("spot"), "late")
    clock.advance_to(60.0)
    assert sim.poll(late).preempted and sim.poll(late).billable_ms == 30_000
    after_trace = sim.launch(request("spot"), "after")
    clock.advance_to(1000.0)
    assert sim.poll(after_trace).exit_code == 0 and not sim.poll(after_trace).preempted


def test_step_ending_at_the_preemption_moment_still_reports() -> None:
    clock, sim = make(preemption_trace=[80.0])
    handle = sim.launch(request("spot"), "k")
    clock.advance_to(100.0)
    assert [s for s, _ in steps(sim.output(handle))] == [0, 1]
    assert sim.poll(handle).preempted


def test_on_demand_is_never_preempted() -> None:
    clock, sim = make(preemptions_per_hour=3600.0 * 100, max_steps=3)
    handles = [sim.launch(request(market), f"k{i}") for i, market in enumerate(["on-demand", None] * 50)]
    clock.advance_to(10_000.0)
    for handle in handles:
        status = sim.poll(handle)
        assert status.exit_code == 0 and not status.preempted and status.billable_ms == 90_000


def test_exponential_preemption_rate() -> None:
    clock, sim = make(preemptions_per_hour=3600.0, max_steps=1, startup_seconds=1e6, seed=7)
    n = 2000
    handles = [sim.launch(request("spot"), f"attempt-{i}") for i in range(n)]
    clock.advance_to(1e5)
    times = []
    for handle in handles:
        status = sim.poll(handle)
        assert status.preempted and not status.running
        times.append(status.billable_ms / 1000)
    mean = sum(times) / n
    assert abs(mean - 1.0) < 0.07  # the standard error is 1 / sqrt(2000) ~ 0.022
    assert sum(t > 1.0 for t in times) / n == pytest.approx(math.exp(-1), abs=0.035)


def test_preemption_independent_of_launch_order_and_seeded() -> None:
    keys = [f"trial-{i}/attempt-0" for i in range(50)]

    def fates(order: list[str], seed: int) -> dict[str, int]:
        clock, sim = make(preemptions_per_hour=60.0, max_steps=1, startup_seconds=1e6, seed=seed)
        handles = {}
        for key in order:
            handles[key] = sim.launch(request("spot"), key)
            clock.sleep(1.0)
        clock.advance_to(1e7)
        return {k: sim.poll(h).billable_ms for k, h in handles.items()}  # launch to preemption

    forward = fates(keys, seed=1)
    assert forward == fates(list(reversed(keys)), seed=1)
    assert forward != fates(keys, seed=2)


def test_next_event_time_across_attempts() -> None:
    clock, sim = make(max_steps=2)
    assert sim.next_event_time() is None
    a = sim.launch(request(), "a")
    clock.advance_to(65.0)
    sim.launch(LaunchRequest(argv=(), workdir=".", output_dir=".", params={"seconds": 3.0}), "b")
    expected = [70.0, 80.0, 125.0, 128.0, 131.0]  # a: step ends 70, 80; b: start-up 125, steps 128, 131
    seen = []
    while (t := sim.next_event_time()) is not None:
        assert t > clock.now()
        seen.append(t)
        clock.advance_to(t)
    assert seen == expected
    assert sim.poll(a).billable_ms == 80_000


def test_list_owned_by_tags() -> None:
    clock, sim = make(max_steps=1)
    sim.launch(request(study="s1", trial="1"), "a")
    sim.launch(request(study="s1", trial="2"), "b")
    c = sim.launch(request(study="s2", trial="1"), "c")
    assert sorted(h.key for h in sim.list_owned({"study": "s1"})) == ["a", "b"]
    assert [h.key for h in sim.list_owned({"study": "s1", "trial": "2"})] == ["b"]
    assert sorted(h.key for h in sim.list_owned({})) == ["a", "b", "c"]
    assert sim.list_owned({"owner": "x"}) == []
    sim.terminate(c)
    assert sim.list_owned({"study": "s2"}) == []
    clock.advance_to(70.0)  # the rest finish
    assert sim.list_owned({}) == []


def test_ten_thousand_attempts_run_to_completion() -> None:
    """All launched at once; the loop jumps event to event and reads every attempt now and then."""
    clock = VirtualClock()
    sim = SimulatedProvider(clock, workloads.hartmann6, metric="loss", max_steps=4, startup_seconds=30.0,
                            preemptions_per_hour=2.0, seed=3)
    handles = []
    for i in range(10_000):
        params = {f"x{j}": ((i * 7919 + j * 104729) % 1000) / 1000 for j in range(1, 7)}
        market = "spot" if i % 2 else "on-demand"
        handles.append(sim.launch(LaunchRequest(argv=(), workdir=".", output_dir=".", params=params,
                                                instance_type="c5.xlarge", market=market), f"t{i}"))
    reports = [0] * len(handles)

    def read_all() -> None:
        for i, handle in enumerate(handles):
            reports[i] += sum(1 for _ in sim.output(handle))

    events = 0
    while (t := sim.next_event_time()) is not None:
        clock.advance_to(t)
        events += 1
        if events % 1000 == 0:
            read_all()
    read_all()
    assert sim.list_owned({}) == []
    statuses = [sim.poll(h) for h in handles]
    assert all(reports[i] == 4 and statuses[i].exit_code == 0 for i in range(0, len(handles), 2))
    preempted = [i for i, st in enumerate(statuses) if st.preempted]
    assert preempted and all(i % 2 == 1 and reports[i] < 4 for i in preempted)


def test_bad_workload_results_and_options_are_clear_errors() -> None:
    # A bad result is the trial's bug: its attempt fails with the reason, the simulator goes on.
    for fn, reason in [(lambda p, k, t: (math.nan, 1.0), "metric value at step 0 must be finite"),
                       (lambda p, k, t: (0.5, -1.0), "seconds at step 0 must be >= 0")]:
        sim = SimulatedProvider(VirtualClock(), fn, metric="loss", max_steps=2)
        handle = sim.launch(request(), "k")
        assert sim.next_event_time() is None
        status = sim.poll(handle)
        assert (status.running, status.exit_code) == (False, 1)
        assert reason in (status.error or "")
    with pytest.raises(ValueError, match="not both"):
        make(preemptions_per_hour=1.0, preemption_trace=[1.0])
    with pytest.raises(ValueError, match="max_steps"):
        make(max_steps=-1)
    with pytest.raises(ValueError, match="seed"):
        make(seed=-1)


# -- workloads -----------------------------------------------------------------------------------


def test_demo_workloads_are_deterministic_learning_curves() -> None:
    params = {f"x{i}": 0.3 for i in range(1, 7)}
    for fn, p in [(workloads.hartmann6, params), (workloads.mlp_curve, {"lr": 1e-3, "hidden": 256})]:
        curve = [fn(p, k, "m5.large")[0] for k in range(20)]
        assert curve == [fn(p, k, "m5.large")[0] for k in range(20)]
        assert all(b < a for a, b in itertools.pairwise(curve))
        slow, fast = fn(p, 0, "m5.large")[1], fn(p, 0, "g4dn.xlarge")[1]
        assert fast < slow and fn(p, 0, "unknown.type")[1] == slow
    best = {f"x{i}": v for i, v in enumerate((0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573), 1)}
    assert workloads.hartmann6(best, 10_000, "m5.large")[0] == pytest.approx(-3.32237, abs=1e-4)
    with pytest.raises(ValueError, match="x1"):
        workloads.hartmann6({}, 0, "m5.large")


def test_load_workload() -> None:
    assert load_workload("costtune.demo.workloads:hartmann6") is workloads.hartmann6
    assert load_workload("costtune.demo.workloads:mlp_curve") is workloads.mlp_curve


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("costtune.demo.workloads", "must be 'module:function'"),
        ("a:b:c", "must be 'module:function'"),
        (":hartmann6", "must be 'module:function'"),
        (42, "must be 'module:function'"),
        ("costtune.no_such_module:f", "no module named 'costtune.no_such_module'"),
        ("costtune.demo.workloads:nope", "has no attribute 'nope'"),
        ("costtune.demo.workloads:INSTANCE_SPEED", "not callable"),
        ("_costtune_raises_on_import:f", "failed to import: RuntimeError"),
        ("_costtune_missing_dependency:f", "failed to import: No module named '_costtune_absent_dep'"),
    ],
)
def test_load_workload_errors(spec: object, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "_costtune_raises_on_import.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "_costtune_missing_dependency.py").write_text("import _costtune_absent_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("_costtune_raises_on_import", "_costtune_missing_dependency"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(SpecError, match=message) as caught:
        load_workload(spec)  # type: ignore[arg-type]
    assert caught.value.path == "resources.simulation.workload"
    assert str(caught.value).startswith("resources.simulation.workload: ")


def test_advance_plays_quiet_step_ends_and_stops_where_the_controller_must_look() -> None:
    """``advance`` wakes the controller at an attempt's first report and at its end, never at the
    steps between (their reports wait, with their own times), and never passes the limit."""
    clock, sim = make(max_steps=5)  # start-up 60 s, then 5 steps of 10 s: reports at 70..110, end at 110
    handle = sim.launch(request(), "k")
    sim.advance(None)
    assert clock.now() == 70.0  # the first report
    assert [r.step for r in sim.take_reports(handle)] == [0]
    sim.advance(95.0)
    assert clock.now() == 95.0  # nothing to see before the limit: the clock stops at it
    sim.advance(None)
    assert clock.now() == 110.0 and not sim.poll(handle).running  # the end, with the steps on the way
    taken = sim.take_reports(handle)
    assert [(r.step, r.billable_ms) for r in taken] == [(1, 80_000), (2, 90_000), (3, 100_000), (4, 110_000)]
    with pytest.raises(ValueError, match="before now"):
        sim.advance(100.0)


def test_a_preemption_wakes_the_controller_at_its_moment() -> None:
    clock, sim = make(max_steps=50, preemption_trace=[87.5])
    handle = sim.launch(request(market="spot"), "k")
    sim.advance(None)
    assert clock.now() == 70.0 and [r.step for r in sim.take_reports(handle)] == [0]  # the first report
    sim.advance(None)
    assert clock.now() == 87.5 and sim.poll(handle).preempted
    assert [r.step for r in sim.take_reports(handle)] == [1]  # the step that ended at 80 on the way
