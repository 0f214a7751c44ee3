"""EC2 without a cloud, for the AWS end-to-end tests: moto's instances played by local processes.

- ``moto_server()``: one ``ThreadedMotoServer`` on 127.0.0.1 for a test module; the controller reaches
  it through ``AWS_ENDPOINT_URL`` (in this process or a ``costtune run`` subprocess alike).
- ``InstancePlayer``: watches moto for instances carrying costtune's tags; each new one is played by a
  local process running its user data (read back from EC2, as cloud-init would) with the instance's
  world mapped onto the test's: the metadata address onto a ``FakeMetadata`` of its own, the agent's
  home onto a temporary folder, the OS's ``shutdown -h now`` onto a line in a log. When the process
  ends (the agent shut the instance down) the player terminates the instance in moto, as
  ``InstanceInitiatedShutdownBehavior: terminate`` does on EC2, or marks it a spot interruption when
  the test asked for one (``interrupt``). When moto says an instance terminated (the controller or the
  reaper did it), the player kills its process group, as EC2 pulls the plug.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from awstools import preempt
from remotefakes import FakeMetadata

REGION = "us-east-1"
# what a played instance sees of our environment: the paths, and the fake AWS (S3 checkpoints go to moto)
_KEPT_ENV = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV", "COSTTUNE_HOME",
             "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
             "AWS_DEFAULT_REGION",
             "AWS_EC2_METADATA_DISABLED", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


class InstancePlayer:
    def __init__(self, ec2: Any, root: Path, *, interval_s: float = 0.2) -> None:
        self.ec2 = ec2  # a boto3 EC2 client on the moto server
        self.root = root
        self.interval_s = interval_s
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.metadata: dict[str, FakeMetadata] = {}
        self.user_data: dict[str, str] = {}
        self.to_interrupt: set[str] = set()
        self.shutdowns = root / "shutdowns.log"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="instance-player")
        self.errors: list[BaseException] = []

    def __enter__(self) -> InstancePlayer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for metadata in self.metadata.values():
            metadata.close()

    def notice(self, instance_id: str) -> None:
        """Serve a spot interruption notice to this instance; it is marked interrupted when it goes."""
        self.to_interrupt.add(instance_id)
        self.metadata[instance_id].notice = {"action": "terminate",
                                             "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def pull_plug(self, instance_id: str) -> None:
        """EC2 reclaims the spot instance at once, without a notice (its process is killed next tick)."""
        preempt(instance_id, datetime.now(UTC))

    def log(self, instance_id: str) -> str:
        path = self.root / "instances" / f"{instance_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._tick()
            except BaseException as exc:
                self.errors.append(exc)

    def _tick(self) -> None:
        page = self.ec2.describe_instances(Filters=[{"Name": "tag-key", "Values": ["costtune:study"]}])
        for instance in (i for r in page["Reservations"] for i in r["Instances"]):
            instance_id, state = instance["InstanceId"], instance["State"]["Name"]
            process = self.processes.get(instance_id)
            if process is None and state in ("pending", "running"):
                self._boot(instance_id)
            elif process is not None and state == "terminated" and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # EC2 pulled the plug
            elif process is not None and state != "terminated" and process.poll() is not None:
                if instance_id in self.to_interrupt:
                    preempt(instance_id, datetime.now(UTC))
                else:
                    self.ec2.terminate_instances(InstanceIds=[instance_id])  # shut down from inside

    def _boot(self, instance_id: str) -> None:
        data = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        script = base64.b64decode(data["UserData"]["Value"]).decode()
        self.user_data[instance_id] = script
        metadata = self.metadata[instance_id] = FakeMetadata()
        home = self.root / "hosts" / instance_id
        home.mkdir(parents=True, exist_ok=True)
        played = (script.replace("http://169.254.169.254", metadata.url)
                  .replace("/var/lib/costtune", str(home))
                  .replace("shutdown -h now", f"echo {instance_id} >> {self.shutdowns}"))
        logs = self.root / "instances"
        logs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k in _KEPT_ENV}
        with open(logs / f"{instance_id}.log", "ab") as out:
            self.processes[instance_id] = subprocess.Popen(
                ["bash", "-c", played], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until every played instance's process has ended."""
        until = time.monotonic() + timeout
        while any(p.poll() is None for p in self.processes.values()):
            if time.monotonic() > until:
                raise AssertionError("instances still running")
            time.sleep(0.05)


__all__ = ["REGION", "InstancePlayer"]
