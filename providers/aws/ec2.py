"""The AWS EC2 provider: one tagged instance per attempt, polled in batches, billed from EC2's own times.

- ``launch`` first looks the attempt up by its ``costtune:key`` tag in every region of the sweep, so a
  launch retried after a controller crash finds the instance it already made (``ClientToken``, derived
  from the key, guards the same within one region on EC2 itself). Otherwise it runs the fail-over of
  ``failover.py``. Instances shut down by their own OS terminate (``InstanceInitiatedShutdownBehavior``).
- ``poll`` is batched: at most one ``describe_instances`` per region every ``poll_interval_s`` seconds for
  every live attempt; throttling doubles the pause before the next one (up to a minute).
- Billable time runs from the instance's ``LaunchTime`` to the time in its ``StateTransitionReason`` when
  it terminated (the 60 s minimum is the billing rule's, ``costtune.prices.billing``). A spot instance
  whose state reason is ``Server.SpotInstanceTermination`` was preempted.

The trial's metric lines reach the controller over the worker API, not through this adapter:
``output`` yields what the ``lines`` callable given at construction yields (nothing by default).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from costtune.providers.aws import tags as tg
from costtune.providers.aws.clients import Clients
from costtune.providers.aws.errors import boundary, call, error_code
from costtune.providers.aws.failover import FailOver, Offer, Try
from costtune.providers.aws.images import Images
from costtune.providers.base import AttemptFacts, FatalProviderError, LaunchRequest, RetryableError, Status

from costtune import __version__
from costtune.spec.aws import AwsResources

UserData = str | Callable[[LaunchRequest, str], str]
MAX_BACKOFF_S = 60.0
_FILTER_VALUES = 200  # ids per describe_instances filter


@dataclass(eq=False)
class AwsHandle:
    key: str
    instance_id: str
    region: str
    instance_type: str
    market: str  # what it really runs on: spot | on-demand
    launched_at: datetime  # EC2's LaunchTime
    zone: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # costtune's tags, names without the prefix
    tries: tuple[Try, ...] = ()  # the fail-over tries that led to it (empty when found by look-up)
    final: Status | None = None
    terminate_sent: float | None = None  # monotonic time of the last terminate_instances
    pending: _Pending | None = None  # set while no offer had capacity yet (instance_id is "")

    @property
    def note(self) -> str:
        """One line for the attempt's note: where it runs and what was tried before."""
        where = (f"{self.instance_id} {self.market} {self.instance_type} in {self.zone or self.region}"
                 if self.instance_id else f"waiting for capacity for {self.instance_type}")
        failed = [str(t) for t in self.tries if t.outcome != "launched"]
        return where + (f" after {len(failed)} tries: " + "; ".join(failed) if failed else "")


@dataclass
class _Pending:
    failover: FailOver
    trial: tuple[str, str]  # (study, trial): whose strikes its capacity errors count as
    launch: Callable[[Offer], tuple[str, Any]]


def client_token(key: str, offer: Offer, scope: str = "") -> str:
    """EC2's idempotency token for one offer of one attempt (<= 64 ASCII characters). ``scope`` names the
    store and study: attempt keys repeat across stores, a token must not."""
    digest = hashlib.sha256(f"{scope}|{key}|{offer.region}|{offer.zone or ''}|{offer.market}".encode()).hexdigest()
    return f"ct-{digest[:48]}"


class AwsProvider:
    name = "aws"
    outlives_controller = True

    def __init__(self, aws: AwsResources, *, user_data: UserData | None = None, session: Any = None,
                 now: Callable[[], datetime] | None = None, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, poll_interval_s: float = 5.0,
                 expires_after_h: float = 24.0, lines: Callable[[str, float | None], Iterator[str]] | None = None,
                 version: str = __version__) -> None:
        self.aws = aws
        self.user_data = user_data
        self.clients = Clients(session)
        self.images = Images(self.clients, aws)
        self.now = now or (lambda: datetime.now(UTC))
        self.sleep = sleep
        self.monotonic = monotonic
        self.poll_interval_s = poll_interval_s
        self.expires_after_h = expires_after_h
        self.lines = lines
        self.version = version
        self._handles: dict[str, AwsHandle] = {}
        self._seen: dict[str, dict[str, dict[str, Any]]] = {}  # region -> instance id -> last description
        self._next_poll: dict[str, float] = {}  # region -> monotonic time of the next describe
        self._backoff: dict[str, float] = {}
        self._strikes: dict[tuple[str, str], int] = {}  # (study, trial) -> spot capacity errors + preemptions
        self._lock = threading.RLock()

    # -- launching -----------------------------------------------------------------------
    def validate(self, instance_types: list[str]) -> None:
        """Check in every region that the types, image, subnet, groups and zones exist (before money is
        reserved). SpecError names the field; FatalProviderError for credentials or permissions."""
        from costtune.providers.aws.validate import validate

        validate(self.clients, self.aws, self.images, instance_types, self.sleep)

    def launch(self, request: LaunchRequest, idempotency_key: str) -> AwsHandle:
        """The attempt's instance: the one already tagged with this key, or a new one after fail-over.

        The first round of offers runs now; when none had capacity the handle waits for it (``poll`` runs
        the next rounds, never sleeping) until ``resources.launch_wait``. Raises LaunchRefused (a
        FatalProviderError) on a fatal error, OutOfCapacity when the wait budget allows no second round.
        """
        with self._lock:
            known = self._handles.get(idempotency_key)
            if known is not None:
                return known
            scope = key_scope(request.tags)
            found = self._find(idempotency_key, scope=scope)
            if found:
                region, instance = found[0]
                return self._adopt(region, instance)
        itype = request.instance_type
        if not itype:
            raise FatalProviderError("provider aws needs an instance type (resources.instance_type)")
        trial = (request.tags.get("study", ""), request.tags.get("trial", idempotency_key))
        market = request.market or self.aws.market
        user_data = self.user_data(request, idempotency_key) if callable(self.user_data) else self.user_data
        tags = tg.instance_tags(request.tags, idempotency_key, version=self.version,
                                expires_at=tg.expires_at(self.now(), self.expires_after_h), user_tags=self.aws.tags)
        own = {k[len(tg.PREFIX):]: v for k, v in tags.items() if k.startswith(tg.PREFIX)}
        failover = FailOver(self.aws, market, self._strikes.get(trial, 0), self.monotonic, self.now)
        handle = AwsHandle(key=idempotency_key, instance_id="", region=self.aws.region, instance_type=itype,
                           market=market, launched_at=self.now(), tags=own)
        handle.pending = _Pending(failover, trial,
                                  lambda offer: self._run(offer, itype, idempotency_key, tags, user_data or "",
                                                          "|".join(f"{k}={v}" for k, v in sorted(scope.items()))))
        self._advance(handle)
        if handle.final is not None:  # no second round fits in the budget
            raise failover.out_of_capacity()
        with self._lock:
            self._handles[idempotency_key] = handle
        return handle

    def _advance(self, handle: AwsHandle) -> None:
        """One fail-over round for a handle still waiting for capacity; fills it in when one launched."""
        pending = handle.pending
        assert pending is not None
        try:
            got = pending.failover.round(pending.launch)
        finally:
            self._strikes[pending.trial] = pending.failover.strikes
            handle.tries = tuple(pending.failover.tries)
        if got is None:
            if pending.failover.expired:
                handle.pending = None
                handle.final = Status(running=False, exit_code=None, billable_ms=0,
                                      error=str(pending.failover.out_of_capacity()))
            return
        region, instance = got
        handle.pending = None
        handle.instance_id = instance["InstanceId"]
        handle.region = region
        handle.market = tg.market_of(instance)
        handle.launched_at = tg.launch_time(instance)
        handle.zone = instance.get("Placement", {}).get("AvailabilityZone") or None
        with self._lock:
            self._seen.setdefault(region, {})[handle.instance_id] = instance

    def _run(self, offer: Offer, itype: str, key: str, tags: dict[str, str], user_data: str,
             scope: str = "") -> tuple[str, Any]:
        image = self.images.resolve(offer.region)
        params: dict[str, Any] = {
            "ImageId": image.image_id, "InstanceType": itype, "MinCount": 1, "MaxCount": 1,
            "ClientToken": client_token(key, offer, scope), "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": tg.tag_specifications(tags), "UserData": user_data,
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        }
        if offer.market == "spot":
            params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
                "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
        if offer.zone:
            params["Placement"] = {"AvailabilityZone": offer.zone}
        if self.aws.subnet:
            params["SubnetId"] = self.aws.subnet
        if self.aws.security_groups:
            params["SecurityGroupIds"] = list(self.aws.security_groups)
        if self.aws.instance_profile:
            profile = self.aws.instance_profile
            params["IamInstanceProfile"] = {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
        if self.aws.key_name:
            params["KeyName"] = self.aws.key_name
        if self.aws.disk_gb:
            params["BlockDeviceMappings"] = [{"DeviceName": image.root_device, "Ebs": {
                "VolumeSize": self.aws.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True}}]
        ec2 = self.clients.ec2(offer.region)
        answer = call(ec2.run_instances, "RunInstances", sleep=self.sleep, **params)
        return offer.region, answer["Instances"][0]

    def remember_strikes(self, trial: tuple[str, str], strikes: int) -> None:
        """Strikes a trial had before this controller started (kept in the store), toward on-demand."""
        with self._lock:
            self._strikes[trial] = max(self._strikes.get(trial, 0), strikes)

    def find(self, key: str, scope: dict[str, str] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(region, instance) of every instance tagged with ``key`` and ``scope``, earliest launch first."""
        return self._find(key, scope=scope)

    def describe_once(self, region: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One describe_instances (every page), without retries: the caller backs off on throttling."""
        return self._describe_once(region, filters)

    def terminate_ids(self, region: str, ids: list[str]) -> None:
        """terminate_instances; an instance EC2 no longer knows is not an error."""
        self._terminate(region, ids)

    def _adopt(self, region: str, instance: dict[str, Any], own: dict[str, str] | None = None) -> AwsHandle:
        own = own or tg.costtune_tags(instance)
        handle = AwsHandle(key=own.get("key", instance["InstanceId"]), instance_id=instance["InstanceId"],
                           region=region, instance_type=instance.get("InstanceType", ""),
                           market=tg.market_of(instance), launched_at=tg.launch_time(instance),
                           zone=instance.get("Placement", {}).get("AvailabilityZone") or None, tags=own)
        self._handles[handle.key] = handle
        self._seen.setdefault(region, {})[handle.instance_id] = instance
        return handle

    def _find(self, key: str, *, live_only: bool = False, scope: dict[str, str] | None = None,
              ) -> list[tuple[str, dict[str, Any]]]:
        """Instances tagged with ``key`` (and ``scope``: its store and study, as keys repeat across stores)
        in every region of the sweep, earliest launch first."""
        out = []
        wanted = {**(scope or {}), "key": key}
        for region in self.aws.regions:
            out += [(region, i) for i in self._describe(region, tg.filters(wanted, live_only=live_only))]
        return sorted(out, key=lambda pair: tg.launch_time(pair[1]))

    def _describe(self, region: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ec2 = self.clients.ec2(region)
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Filters": filters, **({"NextToken": token} if token else {})}
            page = call(ec2.describe_instances, "DescribeInstances", sleep=self.sleep, **kwargs)
            found += [i for r in page.get("Reservations", []) for i in r.get("Instances", [])]
            token = page.get("NextToken")
            if not token:
                return found

    # -- watching ------------------------------------------------------------------------
    def poll(self, handle: AwsHandle) -> Status:
        """The attempt's state from the region's latest batched description (refreshed when due)."""
        if handle.final is not None:
            return handle.final
        if handle.pending is not None:  # waiting for capacity: nothing held, nothing billed
            if handle.pending.failover.due():
                try:
                    self._advance(handle)
                except FatalProviderError as exc:
                    handle.pending = None
                    handle.final = Status(running=False, exit_code=None, billable_ms=0, error=str(exc))
            if handle.final is not None:
                return handle.final
            if handle.pending is not None:
                return Status(running=True, exit_code=None, billable_ms=0)
            with self._lock:  # launched just now: its launch answer is its state
                return self._status(handle, self._seen.get(handle.region, {}).get(handle.instance_id))
        with self._lock:
            self._refresh(handle.region)
            instance = self._seen.get(handle.region, {}).get(handle.instance_id)
            return self._status(handle, instance)

    def _refresh(self, region: str) -> None:
        """One describe_instances for every live attempt in ``region``, when due; throttling backs off."""
        if self.monotonic() < self._next_poll.get(region, 0.0):
            return
        ids = sorted(h.instance_id for h in self._handles.values()
                     if h.region == region and h.final is None and h.instance_id)
        try:
            seen = {}
            for start in range(0, len(ids), _FILTER_VALUES):
                chunk = [{"Name": "instance-id", "Values": ids[start:start + _FILTER_VALUES]}]
                with boundary("DescribeInstances"):
                    seen.update({i["InstanceId"]: i for i in self._describe_once(region, chunk)})
        except RetryableError:
            wait = min(self._backoff.get(region, self.poll_interval_s) * 2, MAX_BACKOFF_S)
            self._backoff[region] = wait
            self._next_poll[region] = self.monotonic() + wait
            return
        self._backoff.pop(region, None)
        self._seen.setdefault(region, {}).update(seen)
        self._next_poll[region] = self.monotonic() + self.poll_interval_s

    def _describe_once(self, region: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ec2 = self.clients.ec2(region)
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = ec2.describe_instances(Filters=filters, **({"NextToken": token} if token else {}))
            found += [i for r in page.get("Reservations", []) for i in r.get("Instances", [])]
            token = page.get("NextToken")
            if not token:
                return found

    def _status(self, handle: AwsHandle, instance: dict[str, Any] | None) -> Status:
        now = self.now()
        state = (instance or {}).get("State", {}).get("Name", "pending")
        if state != "terminated":  # not yet visible, starting, running or shutting down: still held
            return Status(running=True, exit_code=None, billable_ms=_ms(handle.launched_at, now))
        assert instance is not None
        ended = tg.transition_time(instance) or now
        reason = (instance.get("StateReason") or {}).get("Code", "")
        preempted = reason == tg.SPOT_INTERRUPTION
        if preempted:
            trial = (handle.tags.get("study", ""), handle.tags.get("trial", handle.key))
            self._strikes[trial] = self._strikes.get(trial, 0) + 1
        error = None if preempted else f"instance {handle.instance_id} terminated ({reason or 'no reason given'})"
        handle.final = Status(running=False, exit_code=None, billable_ms=_ms(handle.launched_at, max(ended,
                              handle.launched_at)), preempted=preempted, error=error)
        return handle.final

    def output(self, handle: AwsHandle, timeout: float | None = None) -> Iterator[str]:
        """The trial's stdout lines as the worker API received them (none without a ``lines`` source)."""
        if self.lines is not None:
            yield from self.lines(handle.key, timeout)

    def facts(self, key: str, *, output_dir: str | None = None) -> AttemptFacts | None:
        """EC2's record of the attempt's instance: its launch time and, once terminated, its end."""
        found = self._find(key)
        if not found:
            return None
        region, instance = found[0]
        state = instance.get("State", {}).get("Name", "")
        ended = tg.transition_time(instance) if state == "terminated" else None
        reason = (instance.get("StateReason") or {}).get("Code", "") or state
        return AttemptFacts(started_at=tg.launch_time(instance), ended_at=ended, exit_code=None, how=reason,
                            source=f"EC2 {region} {instance['InstanceId']}")

    # -- stopping ------------------------------------------------------------------------
    def terminate(self, handle: AwsHandle) -> None:
        """terminate_instances, sent again at most once a minute while ``poll`` says it is still held."""
        if handle.final is not None:
            return
        if handle.pending is not None:  # still waiting for capacity: stop waiting, nothing to terminate
            handle.pending = None
            handle.final = Status(running=False, exit_code=None, billable_ms=0)
            return
        if handle.terminate_sent is not None and self.monotonic() - handle.terminate_sent < 60:
            return
        self._terminate(handle.region, [handle.instance_id])
        handle.terminate_sent = self.monotonic()

    def kill(self, handle: AwsHandle) -> None:
        """EC2 has nothing harder than terminate: send it now, whenever it was last sent."""
        handle.terminate_sent = None
        self.terminate(handle)

    def _terminate(self, region: str, ids: list[str]) -> None:
        ec2 = self.clients.ec2(region)
        try:
            call(ec2.terminate_instances, "TerminateInstances", sleep=self.sleep, InstanceIds=ids)
        except FatalProviderError as exc:
            if "InvalidInstanceID.NotFound" not in str(exc):
                raise

    def list_owned(self, tags: dict[str, str]) -> list[AwsHandle]:
        """Live instances carrying all of costtune's ``tags`` (every costtune instance when empty), in every
        region of the sweep."""
        out = []
        with self._lock:
            for region in self.aws.regions:
                for instance in self._describe(region, tg.filters(tags, live_only=True)):
                    key = tg.costtune_tags(instance).get("key", instance["InstanceId"])
                    out.append(self._handles.get(key) or self._adopt(region, instance))
        return out


def key_scope(tags: dict[str, str]) -> dict[str, str]:
    """The tags that, with the attempt's key, name its instance uniquely: its store and study."""
    return {name: tags[name] for name in ("store", "study") if tags.get(name)}


def _ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


__all__ = ["AwsHandle", "AwsProvider", "client_token", "error_code", "key_scope"]
