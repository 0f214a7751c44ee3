"""botocore's errors mapped to costtune's at the adapter boundary; nothing from botocore leaks past here.

- RetryableError: throttling, EC2's and the network's transient failures (the same call may work later).
- CapacityError: no capacity or a spot price too low for this offer (fail over to the next one).
- FatalProviderError: credentials, permissions, quota, an invalid request (retrying cannot help).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from costtune.providers.base import CapacityError, FatalProviderError, ProviderError, RetryableError

CAPACITY = frozenset({
    "InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "InsufficientHostCapacity", "InsufficientCapacity",
    "InsufficientReservedInstanceCapacity", "InsufficientCapacityOnHost", "Unsupported",
})
THROTTLING = frozenset({
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "SlowDown", "EC2ThrottledException", "PriorRequestNotComplete",
})
TRANSIENT = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout",
                       "RequestTimeoutException", "IncorrectInstanceState"})
AUTH = frozenset({
    "AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
    "ExpiredTokenException", "AccessDenied", "AccessDeniedException", "OptInRequired", "Blocked",
    "UnrecognizedClientException", "PendingVerification",
})
T = TypeVar("T")


def error_code(exc: BaseException) -> str:
    """The service's error code of a botocore ``ClientError`` ("" for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def map_error(exc: Exception, operation: str) -> ProviderError:
    """costtune's error for ``exc`` raised by ``operation``; the message names both."""
    import botocore.exceptions as bx

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, bx.ClientError):
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
        text = f"AWS {operation}: {code}: {message}"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in CAPACITY:
            return CapacityError(text)
        if code in THROTTLING or code in TRANSIENT or status >= 500 or status == 429:
            return RetryableError(text)
        if code in AUTH:
            return FatalProviderError(f"{text} (check the AWS credentials and the IAM policy, "
                                      "infra/aws/controller-policy.json)")
        return FatalProviderError(text)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.NoRegionError):
        return FatalProviderError(f"AWS {operation}: {exc} (configure credentials: AWS_PROFILE, "
                                  "AWS_ACCESS_KEY_ID, or an instance role)")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError | bx.ReadTimeoutError
                  | bx.ConnectTimeoutError):
        return RetryableError(f"AWS {operation}: {exc}")
    if isinstance(exc, bx.BotoCoreError):
        return FatalProviderError(f"AWS {operation}: {exc}")
    raise exc


@contextmanager
def boundary(operation: str) -> Iterator[None]:
    """Run SDK calls; whatever botocore raises leaves as a ``ProviderError`` naming ``operation``."""
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        import botocore.exceptions as bx

        if not isinstance(exc, bx.BotoCoreError | bx.ClientError):
            raise
        raise map_error(exc, operation) from None


def call(fn: Callable[..., T], operation: str, *, sleep: Callable[[float], None], attempts: int = 4,
         first_wait_s: float = 0.5, **kwargs: Any) -> T:
    """``fn(**kwargs)`` with throttling and transient errors retried, waiting 0.5, 1, 2 s (doubling) between.

    Raises the mapped error when it is not retryable or the last attempt failed too.
    """
    wait = first_wait_s
    for attempt in range(attempts):
        try:
            with boundary(operation):
                return fn(**kwargs)
        except RetryableError:
            if attempt == attempts - 1:
                raise
            sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["AUTH", "CAPACITY", "THROTTLING", "boundary", "call", "error_code", "map_error"]
