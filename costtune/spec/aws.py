"""The ``resources`` fields of a sweep whose trials run on AWS EC2 (``provider: aws``).

Everything here is checked offline, when the file is read: shapes, names, limits and prices. What
only EC2 can tell (does this AMI, subnet or instance type exist in this region?) is checked by the
adapter's ``validate`` before any money is reserved (``costtune.providers.aws``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from costtune.errors import SpecError
from costtune.spec.fields import duration, integer

MARKETS = ("spot", "on-demand", "spot-then-on-demand")
FALLBACK = "spot-then-on-demand"
AWS_FIELDS = ("regions", "zones", "image", "subnet", "security_groups", "instance_profile", "disk_gb", "key_name",
              "tags", "setup", "checkpoint_uri", "spot_fallback_after", "launch_wait", "max_price_age", "install",
              "agent_command")
RESERVED_TAG_PREFIXES = ("costtune:", "aws:")
MAX_USER_TAGS = 40  # EC2 allows 50 tags a resource; costtune's own take up to 10
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_AMI = re.compile(r"ami-[0-9a-f]{8,17}")
_SSM = re.compile(r"(resolve:ssm:)?(/[A-Za-z0-9_.\-]+)+")
_SUBNET = re.compile(r"subnet-[0-9a-f]{8,17}")
_GROUP = re.compile(r"sg-[0-9a-f]{8,17}")
_S3 = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(/[^\s]*)?")
_NAME = re.compile(r"[\w+=,.@\-/:]{1,255}")


@dataclass(frozen=True)
class AwsResources:
    """Where and how each trial's instance is launched; every tuple keeps the order of fail-over."""

    regions: tuple[str, ...]  # the first is ``resources.region``; later ones are fail-over targets
    image: str  # an AMI id, or an SSM parameter path resolved per region at launch
    zones: tuple[str, ...] = ()  # availability zones to try, in order, within their regions
    market: str = "spot"  # spot | on-demand | spot-then-on-demand
    subnet: str | None = None
    security_groups: tuple[str, ...] = ()
    instance_profile: str | None = None  # a name or an ARN
    disk_gb: int | None = None  # root volume size, GiB; None keeps the AMI's
    key_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # the user's own (a cost centre), on instance and volumes
    setup: tuple[str, ...] = ()  # shell lines run once on the instance before the trial
    checkpoint_uri: str | None = None  # s3://bucket/prefix
    spot_fallback_after: int = 2  # capacity errors or preemptions of one trial before on-demand (spot-then-...)
    launch_wait_s: float = 600.0  # total time fail-over may spend waiting for capacity, seconds
    max_price_age_s: float | None = None  # refuse a price older than this, seconds
    install: str | None = None  # pip requirement for costtune on the instance (default costtune[aws]==<ours>)
    agent_command: tuple[str, ...] = ()  # a costtune already on the image: nothing is installed at boot

    @property
    def region(self) -> str:
        return self.regions[0]

    def zones_of(self, region: str) -> tuple[str, ...]:
        """The zones given for ``region`` (empty: EC2 chooses)."""
        return tuple(z for z in self.zones if _zone_region(z) == region)

    @property
    def image_is_ssm(self) -> bool:
        return not self.image.startswith("ami-")


def parse_aws(value: dict[str, Any], markets: list[str]) -> AwsResources:
    """The AWS part of ``resources``; ``SpecError`` names the field and the value."""
    regions = _regions(value)
    zones = _names(value.get("zones", []), "resources.zones")
    for zone in zones:
        if _zone_region(zone) not in regions:
            raise SpecError("resources.zones", f"zone {zone!r} is in none of the regions {', '.join(regions)}", zone)
    image = value.get("image")
    if image is None:
        raise SpecError("resources.image", "is required for provider aws: an AMI id (ami-...) or an SSM parameter "
                        "path (/aws/service/...)")
    if not isinstance(image, str) or not (_AMI.fullmatch(image) or _SSM.fullmatch(image)):
        raise SpecError("resources.image", "must be an AMI id (ami-0123456789abcdef0) or an SSM parameter path "
                        "(/aws/service/...)", image)
    image = image.removeprefix("resolve:ssm:")
    if image.startswith("ami-") and len(regions) > 1:
        raise SpecError("resources.image", "an AMI id exists in one region only; with several regions give an SSM "
                        "parameter path (/aws/service/...) that each region resolves", image)
    subnet = _optional(value, "subnet", _SUBNET, "a subnet id (subnet-...)")
    if subnet is not None and (len(regions) > 1 or zones):
        raise SpecError("resources.subnet", "a subnet lies in one zone of one region: leave it out to fail over "
                        "across resources.zones or resources.regions", subnet)
    groups = _names(value.get("security_groups", []), "resources.security_groups")
    for group in groups:
        if not _GROUP.fullmatch(group):
            raise SpecError("resources.security_groups", "must list security group ids (sg-...)", group)
    if groups and len(regions) > 1:
        raise SpecError("resources.security_groups", "security groups belong to one region: leave them out with "
                        "several regions", groups)
    checkpoint = _optional(value, "checkpoint_uri", _S3, "an S3 location s3://bucket/prefix")
    market = markets[0]
    return AwsResources(
        regions=regions, image=image, zones=tuple(zones), market=market, subnet=subnet,
        security_groups=tuple(groups), instance_profile=_optional(value, "instance_profile", _NAME, "a name or ARN"),
        disk_gb=None if value.get("disk_gb") is None else integer(value["disk_gb"], "resources.disk_gb", minimum=1,
                                                                   maximum=16384),
        key_name=_optional(value, "key_name", _NAME, "a key pair name"), tags=_tags(value.get("tags", {})),
        setup=_setup(value.get("setup", [])), checkpoint_uri=checkpoint,
        spot_fallback_after=integer(value.get("spot_fallback_after", 2), "resources.spot_fallback_after",
                                    maximum=100),
        launch_wait_s=duration(value.get("launch_wait", 600), "resources.launch_wait"),
        max_price_age_s=None if value.get("max_price_age") is None else duration(value["max_price_age"],
                                                                                   "resources.max_price_age"),
        install=_install(value), agent_command=_agent_command(value),
    )


def _install(value: dict[str, Any]) -> str | None:
    given = value.get("install")
    if given is None:
        return None
    if not isinstance(given, str) or not given.strip() or "\n" in given or "\x00" in given:
        raise SpecError("resources.install", "must be one pip requirement: costtune[aws]==0.1.0, a wheel's URL, or "
                        "git+https://...", given)
    if value.get("agent_command") is not None:
        raise SpecError("resources.install", "give install or agent_command, not both", given)
    return given.strip()


def _agent_command(value: dict[str, Any]) -> tuple[str, ...]:
    given = value.get("agent_command")
    if given is None:
        return ()
    if isinstance(given, str):
        given = given.split()
    if not isinstance(given, list) or not given or not all(isinstance(p, str) and p and "\x00" not in p
                                                            for p in given):
        raise SpecError("resources.agent_command", "must be the argv of a costtune already on the image, e.g. "
                        "[/opt/costtune/bin/costtune]", given)
    return tuple(given)


def is_region_name(name: object) -> bool:
    """Whether ``name`` is spelled like an AWS region (``us-east-1``, ``ap-southeast-2``, ``us-gov-west-1``); whether
    EC2 has it is for EC2 to say."""
    return isinstance(name, str) and _REGION.fullmatch(name) is not None


def _regions(value: dict[str, Any]) -> tuple[str, ...]:
    region = value.get("region")
    others = _names(value.get("regions", []), "resources.regions")
    if region is None and not others:
        raise SpecError("resources.region", "is required for provider aws (or resources.regions, a fail-over list)")
    if region is not None and (not isinstance(region, str) or not _REGION.fullmatch(region)):
        raise SpecError("resources.region", "must be an AWS region name such as us-east-1", region)
    for name in others:
        if not _REGION.fullmatch(name):
            raise SpecError("resources.regions", "must list AWS region names such as us-east-1", name)
    ordered = ([region] if region else []) + [r for r in others if r != region]
    if len(set(ordered)) != len(ordered):
        raise SpecError("resources.regions", "must not repeat a region", others)
    return tuple(ordered)


def _zone_region(zone: str) -> str:
    """``us-east-1a`` -> ``us-east-1`` (a Local Zone such as ``us-east-1-bos-1a`` keeps its parent's prefix)."""
    match = re.match(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", zone)
    return match.group(0) if match else ""


def _names(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SpecError(path, "must be a list of names", value)
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise SpecError(path, "must list non-empty names", item)
    if len(set(value)) != len(value):
        raise SpecError(path, "must not repeat a name", value)
    return [str(v) for v in value]


def _optional(value: dict[str, Any], key: str, shape: re.Pattern[str], what: str) -> str | None:
    given = value.get(key)
    if given is None:
        return None
    if not isinstance(given, str) or not shape.fullmatch(given):
        raise SpecError(f"resources.{key}", f"must be {what}", given)
    return given


def _tags(value: Any) -> dict[str, str]:
    path = "resources.tags"
    if not isinstance(value, dict):
        raise SpecError(path, "must map tag names to values, e.g. {cost-centre: vision}", value)
    if len(value) > MAX_USER_TAGS:
        raise SpecError(path, f"at most {MAX_USER_TAGS} tags (EC2 allows 50 and costtune sets up to 10)", len(value))
    out = {}
    for key, text in value.items():
        where = f"{path}.{key}"
        if not isinstance(key, str) or not key.strip() or len(key) > 128:
            raise SpecError(path, "tag names must be 1 to 128 characters", key)
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            raise SpecError(where, "names starting with costtune: or aws: are reserved", key)
        if isinstance(text, bool) or not isinstance(text, str | int | float) or len(str(text)) > 256:
            raise SpecError(where, "must be text of at most 256 characters", text)
        out[key] = str(text)
    return out


def _setup(value: Any) -> tuple[str, ...]:
    path = "resources.setup"
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SpecError(path, "must be a list of shell lines", value)
    for i, line in enumerate(value):
        if not isinstance(line, str) or "\x00" in line:
            raise SpecError(f"{path}[{i}]", "must be a line of shell text", line)
    return tuple(value)


__all__ = ["AWS_FIELDS", "FALLBACK", "MARKETS", "AwsResources", "parse_aws"]
