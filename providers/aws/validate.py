"""What only EC2 can tell about a sweep's resources, asked before any money is reserved.

In every region of the sweep: the instance types are offered (and run the image's architecture),
the image exists (an SSM path resolves), the subnet, the security groups and the zones exist.
Each problem is a SpecError naming the field (exit 2); credentials or permissions are a
FatalProviderError (exit 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from costtune.providers.aws.errors import call
from costtune.providers.aws.images import Images
from costtune.providers.base import FatalProviderError

from costtune.errors import SpecError
from costtune.spec.aws import AwsResources


def validate(clients: Any, aws: AwsResources, images: Images, instance_types: list[str],
             sleep: Callable[[float], None]) -> None:
    for region in aws.regions:
        ec2 = clients.ec2(region)
        image = images.resolve(region)
        offered = _ask(ec2.describe_instance_types, "DescribeInstanceTypes", sleep, {"InstanceTypes": instance_types},
                       "InvalidInstanceType", "resources.instance_type", f"not offered in {region}", instance_types)
        names = {t["InstanceType"]: t for t in offered.get("InstanceTypes", [])}
        for itype in instance_types:
            if itype not in names:
                raise SpecError("resources.instance_type", f"not offered in {region}", itype)
            arches = names[itype].get("ProcessorInfo", {}).get("SupportedArchitectures", [])
            if image.architecture and arches and image.architecture not in arches:
                raise SpecError("resources.instance_type", f"{itype} runs {'/'.join(arches)} but the image "
                                f"{image.image_id} is {image.architecture}", itype)
        if aws.subnet:
            _ask(ec2.describe_subnets, "DescribeSubnets", sleep, {"SubnetIds": [aws.subnet]},
                 "InvalidSubnetID", "resources.subnet", f"no such subnet in {region}", aws.subnet)
        if aws.security_groups:
            groups = list(aws.security_groups)
            _ask(ec2.describe_security_groups, "DescribeSecurityGroups", sleep, {"GroupIds": groups},
                 "InvalidGroup", "resources.security_groups", f"no such security group in {region}", groups)
        zones = list(aws.zones_of(region))
        if zones:
            known = _ask(ec2.describe_availability_zones, "DescribeAvailabilityZones", sleep, {"ZoneNames": zones},
                         "InvalidParameterValue", "resources.zones", f"no such zone in {region}", zones)
            missing = sorted(set(zones) - {z["ZoneName"] for z in known.get("AvailabilityZones", [])})
            if missing:
                raise SpecError("resources.zones", f"no such zone in {region}", missing)


def _ask(fn: Callable[..., Any], operation: str, sleep: Callable[[float], None], kwargs: dict[str, Any], code: str,
         path: str, message: str, value: Any) -> Any:
    """``fn(**kwargs)``; an error whose code starts with ``code`` becomes a SpecError naming ``path``."""
    try:
        return call(fn, operation, sleep=sleep, **kwargs)
    except FatalProviderError as exc:
        if f": {code}" in str(exc):
            raise SpecError(path, message, value) from None
        raise


__all__ = ["validate"]
