"""Policy files: read and validate in full, or raise ``SpecError`` naming the file, field path and value.

A file holds one policy (a mapping with ``name``) or several (``policies:`` and a list). Nothing is
stored here; ``costtune policy apply`` stores what this returns, all files or none.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from costtune.policies.model import ACTIONS, MARKETS, PERIODS, WEEKDAYS, Policy, Rules, Threshold, Webhook, Window

from costtune.errors import SpecError, shown
from costtune.money import rate_to_micros, usd_to_micros
from costtune.yamlfile import read_yaml_file
from costtune.zones import iana_zone

FIELDS = ("name", "description", "scope", "window", "cap_usd", "soft_cap_usd", "thresholds", "webhook", "rules")
RULE_FIELDS = ("allowed_instance_types", "denied_instance_types", "allowed_families", "denied_families",
               "allowed_regions", "denied_regions", "allowed_markets", "max_usd_per_hour", "max_instances",
               "required_tags", "amend")
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TAG_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/+=@-]{0,126}")
_GLOB_MAX = 256
_MAX_POLICIES = 1000


def load_policy_files(paths: list[str | Path]) -> list[Policy]:
    """Every policy of every file, validated; names are unique across the files.

    Raises ``SpecError`` whose message starts with the file name (``team.yaml: window.timezone: ...``).
    """
    out: list[Policy] = []
    seen: dict[str, str] = {}
    for path in paths:
        data = read_yaml_file(path, what="policy file")
        try:
            found = parse_policies(data)
        except SpecError as exc:
            raise SpecError(f"{path}: {exc.path}" if exc.path else str(path), exc.reason,
                            *(() if exc.value is SpecError._MISSING else (exc.value,))) from None
        for policy in found:
            if policy.name in seen:
                raise duplicate_name(path, policy.name, seen[policy.name])
            seen[policy.name] = str(path)
        out.extend(found)
    return out


def duplicate_name(path: str | Path, name: str, first: str | Path) -> SpecError:
    """The error for a policy name that ``path`` defines again after ``first`` did (both files named)."""
    return SpecError(f"{path}: name", f"policy {name!r} is also defined in {first}", name)


def parse_policies(data: Any) -> list[Policy]:
    """One file's policies: a policy mapping, or ``{policies: [mapping, ...]}``."""
    if isinstance(data, dict) and "policies" in data:
        if set(data) != {"policies"}:
            extra = sorted(str(k) for k in data if k != "policies")[0]
            raise SpecError(extra, "unknown field next to policies: (a file is one policy, or policies: and a list)")
        items = data["policies"]
        if not isinstance(items, list) or not items:
            raise SpecError("policies", "must be a non-empty list of policies", items)
        if len(items) > _MAX_POLICIES:
            raise SpecError("policies", f"at most {_MAX_POLICIES} policies per file", len(items))
        policies = [parse_policy(item, f"policies[{i}].") for i, item in enumerate(items)]
        names = [p.name for p in policies]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise SpecError(f"policies[{i}].name", "is used by an earlier policy of this file", name)
        return policies
    return [parse_policy(data, "")]


def parse_policy(data: Any, at: str = "") -> Policy:
    """Validate one policy mapping; ``at`` prefixes every field path (``policies[2].``)."""
    if not isinstance(data, dict):
        raise SpecError(at.rstrip(".") or "policy file", "a policy must be a mapping with name, scope, window, ...",
                        data)
    _known(data, FIELDS, at)
    if "name" not in data:
        raise SpecError(f"{at}name", "is required")
    name = data["name"]
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise SpecError(f"{at}name", "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                        name)
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        raise SpecError(f"{at}description", "must be text of at most 2000 characters", description)
    scope = _scope(data.get("scope", "global"), f"{at}scope")
    window = _window(data.get("window", {"period": "total"}), f"{at}window")
    cap = _money(data, "cap_usd", at)
    soft = _money(data, "soft_cap_usd", at)
    if "window" in data and cap is None and soft is None:
        raise SpecError(f"{at}window", "counts spend against cap_usd or soft_cap_usd: this policy has neither "
                        "(rules apply at every launch; remove window, or give a cap)", data["window"])
    if cap is not None and soft is not None and soft >= cap:
        raise SpecError(f"{at}soft_cap_usd", f"must be below cap_usd ({data['cap_usd']})", data["soft_cap_usd"])
    webhook = None if data.get("webhook") is None else _webhook(data["webhook"], f"{at}webhook")
    thresholds = _thresholds(data.get("thresholds", []), f"{at}thresholds", window, cap if cap is not None else soft,
                             webhook, hard=cap is not None)
    rules = _rules(data.get("rules", {}), f"{at}rules")
    if cap is None and soft is None and rules == Rules():
        raise SpecError(at.rstrip(".") or "policy", "does nothing: give cap_usd, soft_cap_usd or rules",
                        sorted(data))
    if webhook is not None and not any("webhook" in t.actions for t in thresholds) and soft is None:
        raise SpecError(f"{at}webhook", "is never called: no threshold has the webhook action", data["webhook"])
    return Policy(name=name, scope_tags=scope, window=window, cap_micros=cap, soft_cap_micros=soft,
                  thresholds=thresholds, webhook=webhook, rules=rules, description=description, raw=data)


def _known(data: dict[Any, Any], allowed: tuple[str, ...], at: str) -> None:
    for key in data:
        if key not in allowed:
            raise SpecError(f"{at}{key}", f"unknown field; allowed: {', '.join(allowed)}")


def _scope(value: Any, path: str) -> dict[str, str]:
    if value == "global":
        return {}
    if not isinstance(value, dict):
        raise SpecError(path, "must be global, or a mapping tags: {TAG: GLOB, ...}", value)
    _known(value, ("tags",), f"{path}.")
    tags = value.get("tags")
    if not isinstance(tags, dict) or not tags:
        raise SpecError(f"{path}.tags", "must be a non-empty mapping of tag to glob (team: vision)", tags)
    return {_tag_name(k, f"{path}.tags"): _glob(v, f"{path}.tags.{k}") for k, v in tags.items()}


def _tag_name(key: Any, path: str) -> str:
    if not isinstance(key, str) or not TAG_RULE.fullmatch(key):
        raise SpecError(path, "tag names are 1-127 letters, digits or _.:/+=@-, starting with a letter or digit", key)
    return key


def _glob(value: Any, path: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > _GLOB_MAX or value != value.strip():
        raise SpecError(path, f"must be a non-empty glob of at most {_GLOB_MAX} characters (such as vision or cc-*)",
                        value)
    _brackets(value, path)
    return value


def _brackets(glob: str, path: str) -> None:
    """Refuse a ``[...]`` set that fnmatch would read as literal text: an unclosed ``[``, an empty ``[]``
    or ``[!]``, a ``]`` with no ``[`` (``p4[d``, ``[vision``, ``cc-[]``)."""
    i = 0
    while i < len(glob):
        if glob[i] == "]":
            raise SpecError(path, "has a ']' with no '[' before it: a set is written [abc] or [!abc]", glob)
        if glob[i] == "[":
            first = i + 2 if glob[i + 1:i + 2] == "!" else i + 1
            end = glob.find("]", first)
            if end == -1:
                raise SpecError(path, "has a '[' that is never closed: a set is written [abc] or [!abc]", glob)
            if end == first:
                raise SpecError(path, "has an empty set '[]': a set is written [abc] or [!abc]", glob)
            i = end
        i += 1


def _globs(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise SpecError(path, "must be a non-empty list of globs", value)
    return tuple(_glob(v, f"{path}[{i}]") for i, v in enumerate(value))


def _window(value: Any, path: str) -> Window:
    if isinstance(value, str):
        value = {"period": value}
    if not isinstance(value, dict):
        raise SpecError(path, f"must be a mapping with period ({', '.join(PERIODS)}), timezone, reset_day", value)
    _known(value, ("period", "timezone", "reset_day"), f"{path}.")
    period = value.get("period")
    if period not in PERIODS:
        raise SpecError(f"{path}.period", f"must be one of {', '.join(PERIODS)}", period)
    tz = iana_zone(value.get("timezone", "UTC"), f"{path}.timezone")
    if period == "total" and "timezone" in value:
        raise SpecError(f"{path}.timezone", "a total window never resets: it has no time zone", tz)
    return Window(period=period, timezone=tz, reset_day=_reset_day(value, period, f"{path}.reset_day"))


def _reset_day(value: dict[str, Any], period: str, path: str) -> int:
    if "reset_day" not in value:
        return 1
    day = value["reset_day"]
    if period == "weekly":
        if isinstance(day, str) and day.lower() in WEEKDAYS:
            return WEEKDAYS.index(day.lower()) + 1
        if isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 7:
            return day
        raise SpecError(path, "a weekly window resets on a weekday: monday ... sunday (or 1-7, 1 = Monday)", day)
    if period == "monthly":
        if isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 28:
            return day
        raise SpecError(path, "a monthly window resets on a day of the month from 1 to 28 (every month has it)", day)
    raise SpecError(path, f"only weekly and monthly windows have a reset day, not {period}", day)


def _not_text(value: Any) -> str:
    """``, not text`` after a money rule when the value was text (``cap_usd: "5"``), so a quoted number is told
    apart from a bad number (``-1``, ``.nan``), which gets the rule alone."""
    return ", not text" if isinstance(value, str) else ""


def _money(data: dict[str, Any], key: str, at: str) -> int | None:
    if data.get(key) is None:
        if key in data:
            raise SpecError(f"{at}{key}", "must be a dollar amount", None)
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{at}{key}", "must be a number of dollars more than 0 (such as 500 or 12.50)"
                        f"{_not_text(value)}", value)
    if value == math.inf:  # an infinite cap is no cap: said so, not the "to forbid launches" hint of a cap <= 0
        raise SpecError(f"{at}{key}", f"must be a finite amount of dollars; leave {key} out for no cap", value)
    if not math.isfinite(value) or value <= 0:
        raise SpecError(f"{at}{key}", "must be a number of dollars more than 0 (to forbid launches, use rules)",
                        value)
    micros = usd_to_micros(value, f"{at}{key}")
    if micros == 0:
        raise SpecError(f"{at}{key}", "must be at least $0.000001 (one micro-dollar)", value)
    return micros


def _webhook(value: Any, path: str) -> Webhook:
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, dict):
        raise SpecError(path, "must be a URL or a mapping with url, timeout_s, retries", value)
    _known(value, ("url", "timeout_s", "retries"), f"{path}.")
    url = value.get("url")
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url) or len(url) > 2000:
        raise SpecError(f"{path}.url", "must be an http:// or https:// URL", url)
    timeout = value.get("timeout_s", 2.0)
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout)
            or not 0.05 <= timeout <= 30):
        raise SpecError(f"{path}.timeout_s", "must be a number of seconds from 0.05 to 30", timeout)
    retries = value.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise SpecError(f"{path}.retries", "must be an integer from 0 to 10", retries)
    return Webhook(url=url, timeout_s=float(timeout), retries=retries)


def _thresholds(value: Any, path: str, window: Window, base: int | None, webhook: Webhook | None, *,
                hard: bool = False) -> tuple[Threshold, ...]:
    if not isinstance(value, list):
        raise SpecError(path, "must be a list of {percent, of, actions}", value)
    if value and base is None:
        raise SpecError(path, "are percentages of cap_usd (or soft_cap_usd): give one", value)
    out: list[Threshold] = []
    for i, item in enumerate(value):
        at = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise SpecError(at, "must be a mapping with percent, of, actions", item)
        _known(item, ("percent", "of", "actions"), f"{at}.")
        percent = item.get("percent")
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 1000:
            raise SpecError(f"{at}.percent", "must be an integer from 1 to 1000", percent)
        of = item.get("of", "actual")
        if of not in ("actual", "forecast"):
            raise SpecError(f"{at}.of", "must be actual or forecast", of)
        if of == "forecast" and window.period == "total":
            raise SpecError(f"{at}.of", "a total window has no end to forecast to: use actual, or a "
                            "daily/weekly/monthly window", of)
        actions = item.get("actions", ["log"])
        if isinstance(actions, str):
            actions = [actions]
        if not isinstance(actions, list) or not actions:
            raise SpecError(f"{at}.actions", f"must be a non-empty list of {', '.join(ACTIONS)}", actions)
        for j, action in enumerate(actions):
            if action not in ACTIONS:
                raise SpecError(f"{at}.actions[{j}]", f"must be one of {', '.join(ACTIONS)}", action)
            if action in actions[:j]:
                raise SpecError(f"{at}.actions[{j}]", "is listed twice", action)
            if action == "webhook" and webhook is None:
                raise SpecError(f"{at}.actions[{j}]", "needs a webhook: {url: ...} in the policy", action)
        if hard and of == "actual" and percent > 100:
            raise SpecError(f"{at}.percent", "a hard cap_usd stops spend at 100%: a threshold of actual spend above "
                            "100 never fires (use of: forecast, or soft_cap_usd)", percent)
        threshold = Threshold(percent=percent, of=of, actions=tuple(actions))
        if any(t.label == threshold.label for t in out):
            raise SpecError(f"{at}.percent", f"{threshold.label} is given twice", percent)
        out.append(threshold)
    return tuple(out)


def _rules(value: Any, path: str) -> Rules:
    if not isinstance(value, dict):
        raise SpecError(path, "must be a mapping of launch rules", value)
    _known(value, RULE_FIELDS, f"{path}.")
    kw: dict[str, Any] = {}
    for key in RULE_FIELDS[:6]:
        if key in value:
            kw[key] = _globs(value[key], f"{path}.{key}")
    for allowed, denied in (("allowed_instance_types", "denied_instance_types"),
                            ("allowed_families", "denied_families"), ("allowed_regions", "denied_regions")):
        both = [g for g in kw.get(allowed, ()) if g in kw.get(denied, ())]
        if both:
            raise SpecError(f"{path}.{denied}", f"{shown(both[0])} is both allowed ({allowed}) and denied", both[0])
    if "allowed_markets" in value:
        markets = value["allowed_markets"]
        markets = [markets] if isinstance(markets, str) else markets
        if not isinstance(markets, list) or not markets:
            raise SpecError(f"{path}.allowed_markets", f"must be a non-empty list of {', '.join(MARKETS)}", markets)
        for i, market in enumerate(markets):
            if market not in MARKETS:
                raise SpecError(f"{path}.allowed_markets[{i}]", f"must be one of {', '.join(MARKETS)}", market)
        kw["allowed_markets"] = tuple(dict.fromkeys(markets))
    if "max_usd_per_hour" in value:
        rate = value["max_usd_per_hour"]
        if rate == math.inf and not isinstance(rate, bool):
            raise SpecError(f"{path}.max_usd_per_hour", "must be a finite amount of dollars an hour; leave "
                            "max_usd_per_hour out for no limit", rate)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
            raise SpecError(f"{path}.max_usd_per_hour", "must be a number of dollars an hour more than 0 (such "
                            f"as 3.5){_not_text(rate)}", rate)
        kw["max_usd_per_hour_micros"] = rate_to_micros(value["max_usd_per_hour"], f"{path}.max_usd_per_hour")
    if "max_instances" in value:
        n = value["max_instances"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100_000:
            raise SpecError(f"{path}.max_instances", "must be an integer from 1 to 100000", n)
        kw["max_instances"] = n
    if "required_tags" in value:
        tags = value["required_tags"]
        if isinstance(tags, str):  # one tag, as every list field takes one item
            tags = [tags]
        if isinstance(tags, list):  # [cost_centre, owner]: present with any value
            tags = {t: "*" for t in tags} if all(isinstance(t, str) for t in tags) else tags
        if not isinstance(tags, dict) or not tags:
            raise SpecError(f"{path}.required_tags", "must be a mapping of tag to glob (cost_centre: 'cc-*'), "
                            "or a list of tags that must be present", tags)
        kw["required_tags"] = {_tag_name(k, f"{path}.required_tags"): _glob(v, f"{path}.required_tags.{k}")
                               for k, v in tags.items()}
    if "amend" in value:
        if not isinstance(value["amend"], bool):
            raise SpecError(f"{path}.amend", "must be true or false", value["amend"])
        kw["amend"] = value["amend"]
        if len(kw) == 1:
            raise SpecError(f"{path}.amend", "has nothing to amend: give placement rules (types, markets, "
                            "max_usd_per_hour)", value["amend"])
    return Rules(**kw)


def parse_sweep_tags(value: Any, path: str = "tags") -> dict[str, str]:
    """A sweep file's ``tags:`` (team: vision): tag names as cloud tags allow, values text (a number is
    taken as its text). They pick the policies that apply and are put on every launch."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(path, "must be a mapping of tag to value (team: vision)", value)
    if len(value) > 40:
        raise SpecError(path, "at most 40 tags", len(value))
    out = {}
    for key, tag_value in value.items():
        name = _tag_name(key, path)
        if isinstance(tag_value, int) and not isinstance(tag_value, bool):
            tag_value = str(tag_value)
        if not isinstance(tag_value, str) or not tag_value or len(tag_value) > 256 or tag_value != tag_value.strip():
            raise SpecError(f"{path}.{name}", "must be a non-empty text value of at most 256 characters", tag_value)
        out[name] = tag_value
    return out
