"""A new user's input faults (nu1): every numeric field of a distribution refuses text, inapplicable fields are
errors, and messages quote values as the file spells them and name the real problem."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from costtune.errors import SpecError
from costtune.protocol import MetricLineError, parse_line
from costtune.spec import parse_sweep

BASE: dict[str, Any] = {
    "name": "nu1",
    "objective": {"metric": "val_loss", "mode": "min"},
    "space": {"alpha": {"type": "loguniform", "low": 1e-6, "high": 0.1}},
    "sampler": {"type": "random", "seed": 1},
    "budget": {"trials": 2, "usd": 0.01},
    "resources": {"provider": "local", "usd_per_hour": 1.0},
    "command": ["python", "train.py", "{alpha}"],
}


def sweep(**changes: Any) -> dict[str, Any]:
    """BASE with ``section__field=value`` (``None`` removes the field) or ``section=value`` changes."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        node = data if not field else data[section]
        name = field or section
        if value is None:
            node.pop(name, None)
        else:
            node[name] = value
    return data


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_sweep(data)
    return str(info.value)


@pytest.mark.parametrize(("dist", "said"), [
    ({"type": "categorical", "choices": ["a", "b"], "points": 3},
     "space.alpha.points: does not apply to categorical: a point count is for continuous and int distributions"),
    ({"values": [1, 2], "points": 2}, "space.alpha.points: does not apply to values"),
])
def test_points_on_a_list_of_choices_is_refused(dist: dict[str, Any], said: str) -> None:
    assert refused(sweep(space={"alpha": dist})).startswith(said)


@pytest.mark.parametrize(("dist", "field", "value"), [
    ({"type": "uniform", "low": "0", "high": 1}, "low", "'0'"),
    ({"type": "loguniform", "low": 1e-6, "high": "1e-1"}, "high", "'1e-1'"),
    ({"type": "normal", "mu": 0, "sigma": "1"}, "sigma", "'1'"),
    ({"type": "int", "low": 1, "high": "5"}, "high", "'5'"),
    ({"type": "int", "low": 1, "high": 9, "step": "2"}, "step", "'2'"),
    ({"type": "uniform", "low": 0, "high": 1, "points": "3"}, "points", "'3'"),
])
def test_numeric_fields_of_distributions_refuse_text_like_the_rest(dist: dict[str, Any], field: str,
                                                                     value: str) -> None:
    said = refused(sweep(space={"alpha": dist}))
    assert said.startswith(f"space.alpha.{field}: must be")
    assert said.endswith(f"(not quoted: numbers in a sweep file are numbers), got {value}")
    assert refused(sweep(budget__trial_seconds="60")).endswith("got '60'")  # as the rest of the file does


def test_a_name_yaml_read_as_a_number_says_quote_it() -> None:
    assert refused(sweep(name=123)) == 'name: must be text, not a number or boolean (quote it: name: "123"), got 123'
    assert refused(sweep(objective={"metric": 7})).startswith('objective.metric: must be text')


def test_a_missing_metric_is_required() -> None:
    assert refused(sweep(objective={"mode": "min"})) == "objective.metric: is required"


@pytest.mark.parametrize(("data", "said"), [
    (sweep(budget__trials=True), "budget.trials: must be an integer >= 1, got true"),
    (sweep(resources__usd_per_hour=False), "resources.usd_per_hour: must be a dollar amount, got false"),
    (sweep(space={"alpha": None}), "got null"),
])
def test_values_are_shown_as_the_file_spells_them(data: dict[str, Any], said: str) -> None:
    assert refused(data).endswith(said)


def test_metric_lines_show_json_spelling() -> None:
    for line, said in (('costtune:report {"step": true, "loss": 1}', "got true"),
                       ('costtune:report {"step": 1, "loss": null}', "loss must be a finite number, got null")):
        with pytest.raises(MetricLineError) as info:
            parse_line(line)
        assert said in str(info.value) and "True" not in str(info.value) and "None" not in str(info.value)


@pytest.mark.parametrize("usd", [-5, 0, "-0.5"])
def test_zero_or_negative_cap_must_be_more_than_zero(usd: Any) -> None:
    said = refused(sweep(budget__usd=usd))
    assert said.startswith("budget.usd: must be more than $0, got") and "minimum charge" not in said


def test_a_small_positive_cap_names_the_minimum_charge() -> None:
    assert refused(sweep(budget__usd=0.0000001)).startswith(
        "budget.usd: must be at least $0.000278: one trial's minimum charge (per second at $1.00/h)")


def test_chosen_rungs_end_on_a_power_of_eta() -> None:
    """nu1: budget.usd $0.50 at $0.07992/h chose $0.002664 -> $0.007992 -> $0.023976 -> $0.025, a top rung 4%
    above the one below it. max_usd is now the highest min_usd * eta**k within budget.usd / 20."""
    from costtune.schedulers.rungs import rung_ladder

    spec = parse_sweep(sweep(scheduler={"type": "hyperband"}, budget={"usd": 0.5},
                             resources={"provider": "local", "usd_per_hour": 0.07992}))
    s = spec.scheduler
    assert (s["min_usd"], s["max_usd"]) == ("0.002664", "0.023976")
    assert rung_ladder(s["min_usd_micros"], s["max_usd_micros"], 3) == (2664, 7992, 23976)
    assert s["chosen"].startswith("max_usd $0.023976 = min_usd x 3^2, the highest rung within budget.usd $0.50 / 20 "
                                  "= $0.025 (room for at least 20 trials run to the top)")


def test_a_given_max_usd_raises_the_chosen_min_usd_onto_its_ladder() -> None:
    from costtune.schedulers.rungs import rung_ladder

    spec = parse_sweep(sweep(scheduler={"type": "asha", "max_usd": 0.025}, budget={"usd": 0.5},
                             resources={"provider": "local", "usd_per_hour": 0.07992}))
    s = spec.scheduler
    assert s["max_usd"] == 0.025 or s["max_usd_micros"] == 25_000
    assert rung_ladder(s["min_usd_micros"], s["max_usd_micros"], 3) == (2778, 8334, 25_000)
    assert "raised to max_usd / 3^2 so each rung is 3x the one below" in s["chosen"]
