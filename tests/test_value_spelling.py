"""A bad value is quoted in an error as the user wrote it in the file or on the command line (new-user report,
item 12): ``got 1e12`` (not ``1000000000000.0``), ``got .nan``, ``got [a, b]``, ``got {period: daily}``,
``must be one of [m5.large, c5.xlarge]``, ``got 0s`` for ``--poll 0s``; and "not text" only for text."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from costtune.cli import main
from costtune.errors import SpecError, shown
from costtune.spec import load_sweep


@pytest.mark.parametrize(("value", "spelled"), [
    (1e12, "1e12"), (2.5e9, "2.5e9"), (-1e6, "-1e6"), (1e-07, "1e-7"), (1.5e20, "1.5e20"), (0.1, "0.1"),
    (5.0, "5.0"), (-1, "-1"), (math.nan, ".nan"), (math.inf, ".inf"), (-math.inf, "-.inf"),
    (True, "true"), (None, "null"),
    ("fortnightly", "fortnightly"), ("cc-*", "cc-*"), ("m5.large", "m5.large"),
    # text quoted only where the bare text would read as something else, or not as one value
    ("5", "'5'"), ("", "''"), ("true", "'true'"), ("1_000", "'1_000'"), ("c[5", "'c[5'"), ("a b", "'a b'"),
    ("*x", "'*x'"), ("it's", "'it''s'"), ("a\nb", '"a\\nb"'),
    (["a", "b"], "[a, b]"), (("x",), "[x]"), ({"period": "daily"}, "{period: daily}"),
    ({"b": 1, "a": [1.0, None]}, "{b: 1, a: [1.0, null]}"),  # keys in the order given, not sorted
])
def test_values_are_spelled_as_a_yaml_file_writes_them(value: object, spelled: str) -> None:
    assert shown(value) == spelled
    assert str(SpecError("field", "is bad", value)) == f"field: is bad, got {spelled}"


def test_a_json_line_value_is_spelled_as_json() -> None:
    assert shown(math.nan, json=True) == "NaN" and shown(-math.inf, json=True) == "-Infinity"
    assert shown("high", json=True) == '"high"' and shown(["a"], json=True) == '["a"]'


POLICIES = {
    "b10.yaml": ("name: b10\ncap_usd: 1e12\nwindow: {period: daily}\n",
                 "cap_usd: must be at most $1,000,000,000, got 1e12"),
    "b9.yaml": ("name: b9\ncap_usd: .nan\nwindow: {period: daily}\n",
                "cap_usd: must be a number of dollars more than 0 (to forbid launches, use rules), got .nan"),
    # a tester's cap_usd: .inf was told "more than 0 (to forbid launches, use rules)": an infinite cap is no cap
    "inf.yaml": ("name: inf\ncap_usd: .inf\nwindow: {period: daily}\n",
                 "cap_usd: must be a finite amount of dollars; leave cap_usd out for no cap, got .inf"),
    "rate-inf.yaml": ("name: ri\nrules: {max_usd_per_hour: .inf}\n",
                      "rules.max_usd_per_hour: must be a finite amount of dollars an hour; leave max_usd_per_hour "
                      "out for no limit, got .inf"),
    "b12.yaml": ("name: b12\nscope: {tags: {team: [a, b]}}\ncap_usd: 5\nwindow: {period: daily}\n",
                 "scope.tags.team: must be a non-empty glob of at most 256 characters (such as vision or cc-*), "
                 "got [a, b]"),
    "b14.yaml": ("name: b14\nwindow: {period: daily}\n", "(rules apply at every launch; remove window, or give a "
                 "cap), got {period: daily}"),
    "c5.yaml": ("name: c5\nrules: {max_usd_per_hour: -1}\n",
                "rules.max_usd_per_hour: must be a number of dollars an hour more than 0 (such as 3.5), got -1"),
    "c11.yaml": ("name: c11\nrules: {max_usd_per_hour: \"10\"}\n",
                 "rules.max_usd_per_hour: must be a number of dollars an hour more than 0 (such as 3.5), not text, "
                 "got '10'"),
    "true.yaml": ("name: t\ncap_usd: true\nwindow: {period: daily}\n",
                  "cap_usd: must be a number of dollars more than 0 (such as 500 or 12.50), got true"),
    "text.yaml": ("name: t\ncap_usd: \"5\"\nwindow: {period: daily}\n",
                  "cap_usd: must be a number of dollars more than 0 (such as 500 or 12.50), not text, got '5'"),
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_a_bad_policy_file_quotes_the_value_as_written(tmp_path: Path, name: str) -> None:
    text, said = POLICIES[name]
    file = tmp_path / name
    file.write_text(text)
    db = tmp_path / "store.db"
    result = CliRunner().invoke(main, ["policy", "apply", str(file), "--db", f"sqlite:///{db}"])
    assert result.exit_code == 2, result.output
    assert f"{file}: " in result.output and said in result.output, result.output
    assert ", not text" not in result.output or "'" in said  # "not text" is said of text only
    assert not db.exists()


SWEEP = """\
name: spelled
objective: {metric: loss}
space:
  lr: {type: uniform, low: 0, high: 1}
sampler: {type: random}
budget: {trials: 2}
command: [python, train.py]
"""


@pytest.mark.parametrize(("old", "new", "said"), [
    ("budget: {trials: 2}", "budget: {trials: 2, usd: 1e12}", "budget.usd: must be at most $1,000,000,000, got 1e12"),
    ("high: 1}", "high: .inf}", "space.lr.high: must be finite, got .inf"),
    ("sampler: {type: random}", "sampler: {type: [random]}", "got [random]"),
    ("objective: {metric: loss}", "objective: {metric: loss, mode: {min: 1}}", "got {min: 1}"),
])
def test_a_bad_sweep_file_quotes_the_value_as_written(tmp_path: Path, old: str, new: str, said: str) -> None:
    file = tmp_path / "sweep.yaml"
    file.write_text(SWEEP.replace(old, new))
    with pytest.raises(SpecError) as caught:
        load_sweep(file)
    assert str(caught.value).endswith(said) and "'" not in str(caught.value).rpartition("got ")[2]


def test_a_bad_duration_flag_quotes_the_flag_as_given(tmp_path: Path) -> None:
    db = tmp_path / "sched.db"
    result = CliRunner().invoke(main, ["scheduler", "--db", f"sqlite:///{db}", "--poll", "0s"])
    assert result.exit_code == 2 and "--poll: must be a duration" in result.output
    assert result.output.rstrip().endswith("got 0s") and "0.0" not in result.output, result.output
    result = CliRunner().invoke(main, ["scheduler", "--db", f"sqlite:///{db}", "--poll", "400d", "--once"])
    assert result.exit_code == 2 and result.output.rstrip().endswith("got 400d"), result.output
    assert not db.exists()
