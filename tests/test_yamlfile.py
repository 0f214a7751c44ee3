"""The one YAML reader: YAML 1.2 core numbers everywhere, and every malformed file refused by name and line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from costtune.errors import SpecError
from costtune.prices import PriceTable
from costtune.spec import load_sweep
from costtune.yamlfile import MAX_DEPTH, load_yaml, read_yaml_file

SWEEP = """\
name: numbers
objective: {metric: val_loss}
space:
  x: {values: [1e-4, 1e-5]}
  decay: 3e6
  lr: {type: loguniform, low: 1e-4, high: 3e-1, points: 3}
sampler: {type: grid}
budget: {trials: 2}
command: [python, train.py, "{x}", "{decay}"]
"""


def load(text: str) -> object:
    return load_yaml(text, source="sweep file 'x.yaml'")


def test_numbers_in_any_common_notation_are_numbers_everywhere(tmp_path: Path) -> None:
    """Issue 7: `values: [1e-4, 1e-5]` and `decay: 3e6` handed the trial the strings '1e-4' and '3e6'."""
    file = tmp_path / "sweep.yaml"
    file.write_text(SWEEP)
    space = load_sweep(file).space
    assert space["x"].values == (1e-4, 1e-5) and all(type(v) is float for v in space["x"].values)
    assert space["decay"].values == (3e6,) and type(space["decay"].values[0]) is float
    assert space["lr"].low == 1e-4 and space["lr"].high == 0.3


@pytest.mark.parametrize(("text", "value"), [
    ("1e-4", 1e-4), ("3e6", 3e6), ("+1.5E3", 1500.0), ("-2.5e-3", -0.0025), (".5", 0.5), ("1.", 1.0),
    ("0o17", 15), ("0x1F", 31), ("017", 17), ("-7", -7), ("+3", 3),
    ("true", True), ("False", False), ("~", None), ("null", None), ("", None),
    # YAML 1.1 readings that are text under YAML 1.2 core
    ("yes", "yes"), ("off", "off"), ("1:20", "1:20"), ("2024-01-01", "2024-01-01"), ("=", "="), ("inf", "inf"),
    ("1_000", "1_000"), ("0x_1F", "0x_1F"), ("1_0.5", "1_0.5"), ("Infinity", "Infinity"),
])
def test_yaml_1_2_core_scalars(text: str, value: object) -> None:
    got = load(f"a: {text}\n")["a"]  # type: ignore[index]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("low: 1e-4", "low: 1_000", "space.lr.low: must be a number, got '1_000'"),
    ("low: 1e-4", "low: '1_000'", "space.lr.low: must be a number, got '1_000'"),
    ("trials: 2", "trials: 1_000", "budget.trials: must be an integer >= 1, got '1_000'"),
    ("trials: 2", "trials: 2, usd: 1_000", "budget.usd: must be a dollar amount, got '1_000'"),
    ("trials: 2", "trials: 2, trial_seconds: 1_0", "budget.trial_seconds: must be a number of seconds > 0, got '1_0'"),
    ("sampler: {type: grid}", "sampler: {type: grid}\nresources: {usd_per_hour: 1_000}",
     "resources.usd_per_hour: must be a dollar amount, got '1_000'"),
])
def test_1_000_is_text_in_every_field_and_a_number_field_names_it(tmp_path: Path, old: str, new: str,
                                                                  message: str) -> None:
    """Issue 7: YAML 1.1 digit grouping (`1_000`) was a number in some fields and text in others."""
    file = tmp_path / "sweep.yaml"
    file.write_text(SWEEP.replace(old, new))
    with pytest.raises(SpecError, match=f"^{message.replace('.', '[.]').replace('(', '[(]').replace(')', '[)]')}$"):
        load_sweep(file)


def test_yaml_1_2_numbers_read_the_same_in_values_constants_bounds_and_on_the_command_line(tmp_path: Path) -> None:
    file = tmp_path / "sweep.yaml"
    file.write_text(SWEEP.replace("[1e-4, 1e-5]", "[1_000, 0o17, 1e3, +1]").replace("decay: 3e6", "decay: 1_000")
                    .replace("low: 1e-4, high: 3e-1", "low: +1, high: 0x10"))
    space = load_sweep(file).space
    assert space["x"].values == ("1_000", 15, 1000.0, 1) and space["decay"].values == ("1_000",)
    assert (space["lr"].low, space["lr"].high) == (1, 16)
    config = space.coerce_config({"x": "0o17", "decay": "1_000", "lr": "1e1"}, path="config")
    assert config == {"x": 15, "decay": "1_000", "lr": 10.0}  # `costtune enqueue` reads k=v the same way
    with pytest.raises(SpecError, match=r"^config\.lr: must be a number in \[1, 16\], got '1_0'$"):
        space.coerce_config({"x": "1_000", "decay": "1_000", "lr": "1_0"}, path="config")


def test_inf_and_nan_are_floats_that_validation_refuses_by_name(tmp_path: Path) -> None:
    got = load("a: [.inf, -.inf, .nan]\n")["a"]  # type: ignore[index]
    assert got[0] == math.inf and got[1] == -math.inf and math.isnan(got[2])
    file = tmp_path / "sweep.yaml"
    file.write_text(SWEEP.replace("low: 1e-4", "low: .nan"))
    with pytest.raises(SpecError, match=r"^space\.lr\.low: must be finite, got \.nan$"):
        load_sweep(file)


@pytest.mark.parametrize(("text", "message"), [
    ("a: 1\nb: 2\na: 3\n", "'x.yaml': a (line 3): duplicate key (first at line 1)"),
    ("space:\n  lr: 1\n  lr: 2\n", "space.lr (line 3): duplicate key (first at line 2)"),
    ("a: [{x: 1}, {y: 1, y: 2}]\n", "a[1].y (line 1): duplicate key"),
    ("a: {1: x, 1.0: y}\n", "a.1.0 (line 1): duplicate key"),
    ("a: 1e400\n", "a (line 1): 1e400 is too large for a 64-bit float"),
    ("a: 99999999999999999999\n", "a (line 1): integer 99999999999999999999 does not fit in 64 bits"),
    ("a: " + "9" * 5000 + "\n", "does not fit in 64 bits"),
    ('command: [train, "x\\0y"]\n', "command[1] (line 1): text holds a NUL character"),
    ('env: {A: "\\ud800"}\n', "env.A (line 1): text holds a lone surrogate"),
    ("a: !!binary aGk=\n", "tag 'tag:yaml.org,2002:binary' is not supported"),
    ("a: !!python/object/apply:os.system [ls]\n", "is not supported"),
    ("a: !!bool yes\n", "'yes' is not true or false"),
    ("a: &a [*a]\n", "a[0] (line 1): an alias refers to a value that contains it"),
    ("a: " + "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2) + "\n", f"is nested deeper than {MAX_DEPTH} levels"),
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
    ("a: [unclosed\n", "is not valid YAML at line 2, column 1"),
    ("a: 1\n---\nb: 2\n", "is not valid YAML at line 2"),
    ("a: 'bell \x07'\n", "is not valid YAML at line 1: control character U+0007 is not allowed"),
])
def test_malformed_yaml_is_refused_on_one_line_naming_the_place(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load(text)
    assert message in str(info.value)
    assert str(info.value).startswith("sweep file 'x.yaml': ") and "\n" not in str(info.value)


def test_alias_bombs_are_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(SpecError, match="expands to more than 1000000 values"):
        load("\n".join(lines) + "\n")


def test_merge_keys_still_work_and_may_be_overridden() -> None:
    assert load("base: &b {x: 1, y: 2}\nc: {<<: *b, x: 3}\n")["c"] == {"x": 3, "y": 2}  # type: ignore[index]


def test_files_that_are_not_utf8_name_the_byte_offset(tmp_path: Path) -> None:
    file = tmp_path / "sweep.yaml"
    file.write_bytes(b"name: x\nspace: {lr: \xff\xfe}\n")
    with pytest.raises(SpecError, match=r"^sweep file '.*sweep\.yaml': is not UTF-8 text: byte 0xff at offset 20 "
                                        r"\(line 2\); save it as UTF-8$"):
        read_yaml_file(file, what="sweep file")
    file.write_bytes(b"\xef\xbb\xbfa: 1\n")  # a byte-order mark is fine
    assert read_yaml_file(file, what="sweep file") == {"a": 1}


def test_unreadable_paths_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^sweep file: no such file"):
        read_yaml_file(tmp_path / "missing.yaml", what="sweep file")
    with pytest.raises(SpecError, match="is a directory"):
        read_yaml_file(tmp_path, what="sweep file")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(SpecError, match="is larger than 1 MiB"):
        read_yaml_file(big, what="sweep file")


def test_price_override_files_use_the_same_reader(tmp_path: Path) -> None:
    file = tmp_path / "prices.yaml"
    file.write_text("prices:\n  - {provider: onprem, region: lab, instance_type: box, usd_per_hour: 2e-1}\n")
    assert PriceTable.bundled().with_overrides(file).rate("onprem", "lab", "box", "on-demand").usd_per_hour_micros \
        == 200_000
    file.write_text("discounts: []\ndiscounts: []\n")
    with pytest.raises(SpecError, match=r"discounts \(line 2\): duplicate key"):
        PriceTable.bundled().with_overrides(file)
    file.write_bytes(b"prices: [\x80]\n")
    with pytest.raises(SpecError, match="is not UTF-8 text: byte 0x80 at offset 9"):
        PriceTable.bundled().with_overrides(file)
    csv = tmp_path / "prices.csv"
    csv.write_bytes(b"provider,region\n\xff\n")
    with pytest.raises(SpecError, match="is not UTF-8 text: byte 0xff at offset 16"):
        PriceTable.bundled().with_overrides(csv)
