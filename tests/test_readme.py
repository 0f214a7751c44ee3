"""The README's quick start shows the example file a user can run, exactly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_quick_start_sweep_is_the_example_file_byte_for_byte() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme[readme.index("## Quick start"):]
    block = re.search(r"```yaml\n(.*?)```\n", quick, re.S)
    assert block is not None, "no yaml block in the README's quick start"
    assert block.group(1) == (ROOT / "examples" / "digits" / "sweep.yaml").read_text(encoding="utf-8")


def test_the_quick_start_commands_name_the_example_study() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    name = re.search(r"^name: (\S+)$", (ROOT / "examples" / "digits" / "sweep.yaml").read_text(), re.M)
    assert name is not None
    assert f"costtune leaderboard {name.group(1)}" in readme
