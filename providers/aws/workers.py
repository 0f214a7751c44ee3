"""Trials on EC2 instances, each run by the worker agent against the controller's worker API.

``AwsWorkers`` is the provider `costtune run` uses for ``provider: aws``: a ``RemoteProvider`` (the
agent, the token, the bundle, metric lines over HTTP, stop decisions in heartbeat answers) whose
instances ``AwsProvider`` launches (tagged look-up first, then fail-over over zones, regions and
markets), describes (one ``describe_instances`` per region for every live attempt) and terminates.

- Billing: from the instance's ``LaunchTime`` to the time in its ``StateTransitionReason`` once
  terminated, as EC2 reports them; a ``Server.SpotInstanceTermination`` state reason is a preemption.
- Rate: ``placement`` prices the offer the attempt really landed on (``providers/aws/rates.py``).
- Strikes toward ``spot-then-on-demand``'s fall-back (spot capacity errors, preemptions) are kept in
  the store per attempt, so a restarted controller counts them too.
- While fail-over waits for capacity the attempt has no instance yet: ``poll`` runs the next round
  when it is due, never sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from costtune.providers.aws import tags as tg
from costtune.providers.aws.ec2 import AwsHandle, AwsProvider, key_scope
from costtune.providers.aws.errors import boundary
from costtune.providers.base import LaunchRequest, Placement, RetryableError, Status
from costtune.providers.remote import InstanceFacts, RemoteHandle, RemoteProvider

from costtune.agent.userdata import Install
from costtune.prices.catalog import PriceNotFound
from costtune.spec.aws import AwsResources
from costtune.spec.server import ServerSettings

_CHUNK = 200  # instance ids per describe_instances filter


class AwsWorkers(RemoteProvider):
    """See the module's notes. ``store`` is the controller's, ``settings`` the sweep's ``server`` section;
    ``options`` go to ``RemoteProvider`` (heartbeat_s, grace_s, describe_every_s, ...)."""

    name = "aws"
    end_wait_s = 120.0  # EC2 shows an instance shutting-down for up to a minute or two before terminated

    def __init__(self, store: Any, settings: ServerSettings, aws: AwsResources, *, session: Any = None,
                 ec2: AwsProvider | None = None, install: Install = Install(),  # noqa: B008
                 price_overrides: str | None = None, **options: Any) -> None:
        super().__init__(store, settings, install=install, setup=aws.setup, checkpoint_uri=aws.checkpoint_uri,
                         **options)
        self.aws = aws
        self.price_overrides = price_overrides
        self._user_data: dict[str, str] = {}
        self.ec2 = ec2 if ec2 is not None else AwsProvider(aws, session=session)
        self.ec2.user_data = self._user_data_of
        self._launches: dict[str, AwsHandle] = {}  # key -> EC2's handle, for attempts this controller launched
        self._regions: dict[str, str] = {}  # instance id -> region
        self._last: dict[str, InstanceFacts] = {}  # instance id -> last description (served while throttled)
        self._ended: dict[str, datetime] = {}  # when we first saw a terminated instance without a time

    def validate(self, instance_types: list[str]) -> None:
        """What only EC2 can tell about the sweep's resources (``AwsProvider.validate``)."""
        self.ec2.validate(instance_types)

    def _user_data_of(self, _request: LaunchRequest, key: str) -> str:
        return self._user_data.get(key, "")

    # -- RemoteProvider's adapter methods ------------------------------------------------------
    def launch(self, request: LaunchRequest, idempotency_key: str) -> RemoteHandle:
        handle = super().launch(request, idempotency_key)
        launched = self._launches.get(idempotency_key)
        if launched is not None:
            handle.note = launched.note
        return handle

    def start_instance(self, request: LaunchRequest, key: str, user_data: str) -> str | None:
        attempt_id = self.store.attempt_id_for_key(key)
        trial = (request.tags.get("study", ""), request.tags.get("trial", key))
        if attempt_id is not None:
            self.ec2.remember_strikes(trial, self.store.trial_spot_strikes(attempt_id))
        self._user_data[key] = user_data
        try:
            handle = self.ec2.launch(request, key)
        finally:
            self._user_data.pop(key, None)  # a later fail-over round reuses what launch rendered
        self._launches[key] = handle
        self._keep(handle, attempt_id)
        return handle.instance_id or None

    def _keep(self, handle: AwsHandle, attempt_id: int | None) -> None:
        if handle.instance_id:
            self._regions[handle.instance_id] = handle.region
        strikes = sum(t.outcome == "no-capacity" and t.offer.market == "spot" for t in handle.tries)
        if attempt_id is not None and strikes:
            self.store.set_remote_strikes(attempt_id, strikes)

    def find_instance(self, key: str, tags: dict[str, str]) -> str | None:
        found = self.ec2.find(key, key_scope(tags))
        if not found:
            return None
        region, instance = found[0]
        self._regions[instance["InstanceId"]] = region
        return str(instance["InstanceId"])

    def describe_instances(self, instance_ids: list[str]) -> dict[str, InstanceFacts]:
        by_region: dict[str, list[str]] = {}
        for instance_id in instance_ids:
            known = self._regions.get(instance_id)
            for region in [known] if known else self.aws.regions:
                by_region.setdefault(region, []).append(instance_id)
        out: dict[str, InstanceFacts] = {}
        for region, ids in by_region.items():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                try:
                    with boundary("DescribeInstances"):
                        found = self.ec2.describe_once(region, [{"Name": "instance-id", "Values": chunk}])
                except RetryableError:  # throttled: the last description serves until the next look
                    out.update({i: self._last[i] for i in chunk if i in self._last})
                    continue
                for instance in found:
                    instance_id = instance["InstanceId"]
                    self._regions[instance_id] = region
                    out[instance_id] = self._last[instance_id] = self._instance_facts(instance)
        return out

    def _instance_facts(self, instance: dict[str, Any]) -> InstanceFacts:
        state = instance.get("State", {}).get("Name", "pending")
        launched = tg.launch_time(instance)
        if state != "terminated":
            return InstanceFacts(state="pending" if state == "pending" else "running", launched_at=launched)
        reason = (instance.get("StateReason") or {}).get("Code", "") or "terminated"
        ended = tg.transition_time(instance) or self._ended.setdefault(instance["InstanceId"], datetime.now(UTC))
        return InstanceFacts(state="ended", launched_at=launched, ended_at=max(ended, launched),
                             preempted=reason == tg.SPOT_INTERRUPTION, reason=reason)

    def terminate_instance(self, instance_id: str) -> None:
        self.ec2.terminate_ids(self._regions.get(instance_id, self.aws.region), [instance_id])

    def list_instances(self, tags: dict[str, str]) -> list[tuple[str, str]]:
        return [(h.key, h.instance_id) for h in self.list_owned(tags)]

    def list_owned(self, tags: dict[str, str]) -> list[RemoteHandle]:
        """Live instances carrying all of ``tags``, each with its own tags (``owner`` says whose it is);
        their lines are not read (recovery only stops them and bills them from EC2's facts)."""
        out = []
        for found in self.ec2.list_owned(tags):
            self._regions[found.instance_id] = found.region
            attempt_id = self.store.attempt_id_for_key(found.key) or 0
            out.append(RemoteHandle(key=found.key, attempt_id=attempt_id, instance_id=found.instance_id,
                                    tags=dict(found.tags), launched=found.launched_at.timestamp(), reads=False))
        return out

    # -- waiting for capacity --------------------------------------------------------------
    def poll(self, handle: RemoteHandle) -> Status:
        """As ``RemoteProvider.poll``, running the next fail-over round while the attempt waits for
        capacity. It writes to the store: call it from the controller's thread only."""
        waiting = self._launches.get(handle.key)
        if waiting is not None and not handle.instance_id:
            status = self.ec2.poll(waiting)  # runs the next fail-over round when it is due
            self._keep(waiting, handle.attempt_id)
            if not waiting.instance_id:
                if status.running:
                    handle.launched = time.time()  # the agent's silence counts from its instance's launch
                    return Status(running=True, exit_code=None, billable_ms=0)
                self._handles.pop(handle.key, None)
                self.store.erase_remote_env(handle.attempt_id)
                return Status(running=False, exit_code=-1 if status.error else None, billable_ms=0,
                              error=status.error)
            handle.instance_id = waiting.instance_id
            handle.launched = time.time()
            handle.note = waiting.note
            self.store.set_remote_instance(handle.attempt_id, waiting.instance_id)
            self.store.add_attempt_note(handle.attempt_id, waiting.note)
            self._described = 0.0
        return super().poll(handle)

    def terminate(self, handle: RemoteHandle) -> None:
        waiting = self._launches.get(handle.key)
        if waiting is not None and not handle.instance_id:
            self.ec2.terminate(waiting)  # stop waiting for capacity: nothing runs, nothing is billed
            return
        super().terminate(handle)

    def kill(self, handle: RemoteHandle) -> None:
        waiting = self._launches.get(handle.key)
        if waiting is not None and not handle.instance_id:
            self.ec2.terminate(waiting)
            return
        super().kill(handle)

    # -- the rate ------------------------------------------------------------------------------
    def placement(self, handle: RemoteHandle) -> Placement | None:
        """Where the attempt runs and its offer's rate; None while it waits for capacity. An attempt adopted
        after a restart, or one whose offer has no known price, keeps the rate it was booked at (rate 0)."""
        launched = self._launches.get(handle.key)
        if launched is None:
            return Placement(market="", region=None, rate_micros_per_hour=0)
        if not launched.instance_id:
            return None if launched.final is None else Placement(market="", region=None, rate_micros_per_hour=0)
        from costtune.providers.aws.rates import placement_price

        try:
            priced = placement_price(launched.instance_type, launched.market, launched.region, launched.zone,
                                     overrides=self.price_overrides)
        except PriceNotFound:
            return Placement(market=launched.market, region=launched.region, rate_micros_per_hour=0)
        return Placement(market=launched.market, region=launched.region,
                         rate_micros_per_hour=priced.price.usd_per_hour_micros, source=priced.source,
                         warning=priced.warning)


__all__ = ["AwsWorkers"]
