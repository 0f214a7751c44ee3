"""What the AWS adapter's tests share: fake credentials, an in-process moto, a recording boto3 session.

No test reaches a real cloud: credentials are fake, the instance metadata service is disabled, and
every client is either served by moto (``mock_aws``) or answered by botocore's Stubber.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
CLEARED = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"  # moto serves this parameter
AMI = "ami-0123456789abcdef0"


@contextmanager
def fake_credentials() -> Iterator[None]:
    """Fake credentials and no metadata service, restored afterwards."""
    saved = {k: os.environ.get(k) for k in (*FAKE_ENV, *CLEARED)}
    os.environ.update(FAKE_ENV)
    for key in CLEARED:
        os.environ.pop(key, None)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_LOADER: list[Any] = []  # one botocore data loader for every test session: EC2's model is parsed once


def session() -> Any:
    """A new boto3 session that shares the parsed service models of the others."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    if _LOADER:
        core.register_component("data_loader", _LOADER[0])
    else:
        _LOADER.append(core.get_component("data_loader"))
    return boto3.session.Session(botocore_session=core, region_name="us-east-1")


class Recorder:
    """A boto3 session whose clients note every operation they call, as IAM actions (``ec2:RunInstances``)."""

    def __init__(self) -> None:
        self.session = session()
        self.calls: list[str] = []
        self.params: list[tuple[str, dict[str, Any]]] = []  # (action, the API parameters sent)
        self.session.events.register("before-parameter-build", self._note)  # every call, with its API parameters

    def _note(self, model: Any, params: Any = None, **_: Any) -> None:
        action = f"{model.service_model.signing_name}:{model.name}"
        self.calls.append(action)
        self.params.append((action, dict(params or {})))

    def sent(self, action: str) -> list[dict[str, Any]]:
        """The request bodies of every ``action`` call, in order."""
        return [body for name, body in self.params if name == action]

    def count(self, action: str) -> int:
        return self.calls.count(action)


def resources(**changes: Any) -> Any:
    """An AwsResources for tests: us-east-1, the AL2023 SSM image, spot; ``changes`` replace fields."""
    from costtune.spec.aws import AwsResources

    base = AwsResources(regions=("us-east-1",), image=AL2023, market="spot", tags={"cost-centre": "vision"})
    return replace(base, **changes)


def request(trial: int = 1, attempt: int = 1, *, study: str = "s", itype: str = "m5.large", market: str | None = None,
            store: str = "store0") -> Any:
    from costtune.providers.base import LaunchRequest

    tags = {"study": study, "store": store, "owner": "host:1:abc", "trial": str(trial), "attempt": str(attempt)}
    return LaunchRequest(argv=("python", "train.py"), workdir=".", output_dir=".", tags=tags, instance_type=itype,
                         market=market)


class FakeTime:
    """monotonic, sleep and now that move only when slept on (or moved by hand)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []
        self.start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t - 1000.0)


def moto_instance(instance_id: str, region: str = "us-east-1") -> Any:
    """moto's own record of an instance (to age it or preempt it as EC2 would)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    return ec2_backends[DEFAULT_ACCOUNT_ID][region].get_instance(instance_id)


def preempt(instance_id: str, at: datetime, region: str = "us-east-1") -> None:
    """Terminate the instance in moto as a spot interruption at ``at`` (UTC)."""
    from moto.ec2.models.instances import StateReason

    inst = moto_instance(instance_id, region)
    inst.terminate()
    inst._reason = f"Service initiated ({at.strftime('%Y-%m-%d %H:%M:%S')} GMT)"
    inst.state_reason = StateReason("Server.SpotInstanceTermination: Spot instance termination",
                                    "Server.SpotInstanceTermination")


def age(instance_id: str, seconds: float, region: str = "us-east-1") -> None:
    """Make the instance look launched ``seconds`` ago."""
    inst = moto_instance(instance_id, region)
    inst.launch_time = (datetime.now(UTC) - timedelta(seconds=seconds)).replace(tzinfo=None)
