"""Spend policies: caps per time window and tag scope, launch rules, threshold alerts.

A policy file (``costtune.policies.parse``) says which sweeps it covers (by their ``tags:``), the
window its cap counts over (``windows``), its hard and soft caps, alert thresholds and launch rules.
Before a launch, ``admit`` evaluates every matching policy (allow, amend or deny) and the ledger
reserves the money in the study's scope and in each matching window's scope in one transaction.
"""

from __future__ import annotations

from costtune.policies.admit import ALLOW, AMEND, DENY, LaunchRequest, Verdict, admit, matching
from costtune.policies.model import Policy, Rules, Threshold, Window
from costtune.policies.parse import load_policy_files, parse_policies, parse_policy
from costtune.policies.windows import WindowSpan, span

__all__ = ["ALLOW", "AMEND", "DENY", "LaunchRequest", "Policy", "Rules", "Threshold", "Verdict", "Window",
           "WindowSpan", "admit", "load_policy_files", "matching", "parse_policies", "parse_policy", "span"]
