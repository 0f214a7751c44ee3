"""The sweep's image in each region: an AMI id as given, or an SSM parameter path resolved there."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from costtune.providers.aws.errors import boundary, error_code
from costtune.providers.base import FatalProviderError

from costtune.errors import SpecError
from costtune.spec.aws import AwsResources


@dataclass(frozen=True)
class Image:
    image_id: str
    root_device: str  # where ``disk_gb`` resizes the root volume, e.g. /dev/xvda
    architecture: str  # x86_64 | arm64 | ...


class Images:
    """Resolved once per region and remembered (a sweep's image does not change under it)."""

    def __init__(self, clients: Any, aws: AwsResources) -> None:
        self.clients = clients
        self.aws = aws
        self._by_region: dict[str, Image] = {}
        self._lock = threading.Lock()

    def resolve(self, region: str) -> Image:
        """The image in ``region``; SpecError naming ``resources.image`` when it does not exist there."""
        with self._lock:
            if region not in self._by_region:
                self._by_region[region] = self._look_up(region)
            return self._by_region[region]

    def _look_up(self, region: str) -> Image:
        image_id = self.aws.image
        if self.aws.image_is_ssm:
            ssm = self.clients.ssm(region)
            try:
                with boundary("GetParameter"):
                    image_id = ssm.get_parameter(Name=self.aws.image)["Parameter"]["Value"]
            except FatalProviderError as exc:
                if "ParameterNotFound" in str(exc) or "ValidationException" in str(exc):
                    raise SpecError("resources.image", f"no SSM parameter of that name in {region}",
                                    self.aws.image) from None
                raise
        ec2 = self.clients.ec2(region)
        try:
            with boundary("DescribeImages"):
                images = ec2.describe_images(ImageIds=[image_id]).get("Images", [])
        except FatalProviderError as exc:
            if "InvalidAMIID" in str(exc):
                images = []
            else:
                raise
        if not images:
            shown = image_id if image_id == self.aws.image else f"{self.aws.image} -> {image_id}"
            raise SpecError("resources.image", f"no such AMI in {region}", shown)
        found = images[0]
        return Image(image_id=image_id, root_device=found.get("RootDeviceName") or "/dev/xvda",
                     architecture=found.get("Architecture", ""))


__all__ = ["Image", "Images", "error_code"]
