"""boto3 clients, one per (service, region), made lazily from one session: boto3 is imported here only."""

from __future__ import annotations

import threading
from typing import Any

from costtune.providers.base import FatalProviderError

PRICING_REGION = "us-east-1"  # the Price List Query API answers in us-east-1 (and ap-south-1, eu-central-1)


class Clients:
    """Clients of one boto3 session. ``session`` is a ``boto3.session.Session`` (tests pass one with event
    hooks); None makes a default session from the environment (AWS_PROFILE, AWS_* variables, a role).

    Raises FatalProviderError when boto3 is not installed (``pip install 'costtune[aws]'``).
    """

    def __init__(self, session: Any = None) -> None:
        self._session = session
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        if self._session is None:
            try:
                import boto3
            except ImportError:
                raise FatalProviderError("provider aws needs boto3: pip install 'costtune[aws]'") from None
            self._session = boto3.session.Session()
        return self._session

    def get(self, service: str, region: str) -> Any:
        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                from botocore.config import Config

                config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=30)
                client = self.session.client(service, region_name=region, config=config)
                self._clients[(service, region)] = client
            return client

    def ec2(self, region: str) -> Any:
        return self.get("ec2", region)

    def ssm(self, region: str) -> Any:
        return self.get("ssm", region)

    def pricing(self) -> Any:
        return self.get("pricing", PRICING_REGION)

    def default_region(self) -> str | None:
        return self.session.region_name


__all__ = ["PRICING_REGION", "Clients"]
