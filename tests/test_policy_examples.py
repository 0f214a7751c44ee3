"""The README's worked policy file is the example file, and the example files are valid together."""

from __future__ import annotations

import re
from pathlib import Path

from costtune.policies import load_policy_files, matching

from costtune.spec import load_sweep

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_policy_block_is_the_example_file_and_it_applies_to_the_example_sweep() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## FinOps: spend policies"):]
    block = re.search(r"```yaml\n(policies:\n.*?)```\n", section, re.S)
    example = (ROOT / "examples" / "policies" / "team-vision.yaml").read_text(encoding="utf-8")
    assert block is not None and example.endswith(block.group(1))
    policies = load_policy_files([ROOT / "examples" / "policies" / "team-vision.yaml"])
    sweep = load_sweep(ROOT / "examples" / "simulated" / "vision-spot.yaml")
    assert [p.name for p in matching(policies, sweep.tags)] == [
        "org-all-sweeps", "vision-daily", "vision-launch-rules", "vision-monthly"]
