"""The tags costtune puts on every instance and volume it creates, and how it reads instances back.

Keys are ``costtune:<name>``: study, trial, attempt, owner (the controller's id), store (which store
holds the study), key (the attempt's idempotency key: what a retried launch looks up), version
(costtune's) and expires-at (UTC, ISO 8601: when the reaper may take it even if something still
claims it). The user's own tags (``resources.tags``) go on beside them, unchanged.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

PREFIX = "costtune:"
KEY_TAG = PREFIX + "key"
STUDY_TAG = PREFIX + "study"
EXPIRES_TAG = PREFIX + "expires-at"
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
SPOT_INTERRUPTION = "Server.SpotInstanceTermination"
_WHEN = re.compile(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (GMT|UTC)\)")


def instance_tags(request_tags: dict[str, str], key: str, *, version: str, expires_at: datetime,
                  user_tags: dict[str, str]) -> dict[str, str]:
    """Every tag of one attempt's instance: the user's, then costtune's (which win a clash)."""
    own = {PREFIX + name: str(value) for name, value in request_tags.items()}
    own.update({KEY_TAG: key, PREFIX + "version": version,
                EXPIRES_TAG: expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
    return {**user_tags, **own}


def tag_specifications(tags: dict[str, str]) -> list[dict[str, Any]]:
    """``TagSpecifications`` putting ``tags`` on the instance and its volumes at creation."""
    pairs = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    return [{"ResourceType": "instance", "Tags": pairs}, {"ResourceType": "volume", "Tags": pairs}]


def filters(tags: dict[str, str], *, live_only: bool) -> list[dict[str, Any]]:
    """describe_instances filters for instances carrying all of costtune's ``tags`` (names without prefix)."""
    out = [{"Name": f"tag:{PREFIX}{name}", "Values": [value]} for name, value in sorted(tags.items())]
    if not tags:
        out.append({"Name": "tag-key", "Values": [STUDY_TAG]})
    if live_only:
        out.append({"Name": "instance-state-name", "Values": list(LIVE_STATES)})
    return out


def costtune_tags(instance: dict[str, Any]) -> dict[str, str]:
    """An instance's costtune tags, names without the prefix (``{"study": ..., "key": ...}``)."""
    return {t["Key"][len(PREFIX):]: t["Value"] for t in instance.get("Tags", []) if t["Key"].startswith(PREFIX)}


def transition_time(instance: dict[str, Any]) -> datetime | None:
    """When the instance last changed state, from EC2's ``StateTransitionReason``
    ("User initiated (2026-11-30 05:46:38 GMT)"); None when it does not say."""
    match = _WHEN.search(str(instance.get("StateTransitionReason") or ""))
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def launch_time(instance: dict[str, Any]) -> datetime:
    value = instance["LaunchTime"]
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def expires_at(launched: datetime, hours: float) -> datetime:
    return launched + timedelta(hours=hours)


def market_of(instance: dict[str, Any]) -> str:
    return "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"


__all__ = ["EXPIRES_TAG", "KEY_TAG", "LIVE_STATES", "PREFIX", "SPOT_INTERRUPTION", "STUDY_TAG", "costtune_tags",
           "filters", "instance_tags", "launch_time", "market_of", "tag_specifications", "transition_time"]
