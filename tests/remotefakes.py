"""A cloud without a cloud, for the worker API's end-to-end tests (on the pytest path via pythonpath).

- ``ProcessCloud``: a ``RemoteProvider`` whose "instances" are local processes running the rendered
  user data with bash, in their own session (terminate: SIGKILL to the session, as a cloud would
  pull the plug). Its facts are the processes' start and end, wall clock.
- ``FakeMetadata``: an IMDSv2 endpoint on 127.0.0.1 (PUT token, GET spot/instance-action), whose
  notice a test sets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from costtune.providers.base import LaunchRequest
from costtune.providers.remote import InstanceFacts, RemoteProvider


class ProcessCloud(RemoteProvider):
    name = "processcloud"

    def __init__(self, *args, logs: Path, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.logs = logs
        self.instances: dict[str, tuple[subprocess.Popen[bytes], datetime]] = {}
        self.ended: dict[str, datetime] = {}
        self.preempt: set[str] = set()
        self.user_data: dict[str, str] = {}
        self.starts = 0
        self.frozen = False  # the controller has lost the cloud too: nothing is terminated, all looks running

    def start_instance(self, request: LaunchRequest, key: str, user_data: str) -> str:
        self.starts += 1
        instance_id = f"i-{key}"
        self.user_data[instance_id] = user_data
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{instance_id}.log", "ab")  # noqa: SIM115 - handed to the child
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV",
                                                             "COSTTUNE_HOME")}
        process = subprocess.Popen(["bash", "-c", user_data], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        out.close()
        self.instances[instance_id] = (process, datetime.now(UTC))
        return instance_id

    def find_instance(self, key: str, tags: dict[str, str] | None = None) -> str | None:
        return f"i-{key}" if f"i-{key}" in self.instances else None

    def describe_instances(self, instance_ids: list[str]) -> dict[str, InstanceFacts]:
        out = {}
        for instance_id in instance_ids:
            if instance_id not in self.instances:
                continue
            process, launched = self.instances[instance_id]
            if process.poll() is None or self.frozen:
                out[instance_id] = InstanceFacts(state="running", launched_at=launched)
                continue
            ended = self.ended.setdefault(instance_id, datetime.now(UTC))
            preempted = instance_id in self.preempt
            out[instance_id] = InstanceFacts(state="ended", launched_at=launched, ended_at=ended, preempted=preempted,
                                             reason="Server.SpotInstanceTermination" if preempted else "shutdown")
        return out

    def terminate_instance(self, instance_id: str) -> None:
        found = self.instances.get(instance_id)
        if found is not None and found[0].poll() is None and not self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(found[0].pid, signal.SIGKILL)
            found[0].wait(timeout=10)

    def list_instances(self, tags: dict[str, str]) -> list[tuple[str, str]]:
        return [(i[2:], i) for i, (p, _) in self.instances.items() if p.poll() is None]


class FakeMetadata:
    """IMDSv2 on 127.0.0.1: ``notice`` (a dict) is served once set; requests without the session token get 401."""

    def __init__(self) -> None:
        self.notice: dict[str, str] | None = None
        self.token_requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_PUT(self) -> None:
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    owner.token_requests += 1
                    self._send(200, b"session-token")
                else:
                    self._send(400, b"")

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != "session-token":
                    self._send(401, b"")
                elif self.path == "/latest/meta-data/spot/instance-action" and owner.notice is not None:
                    self._send(200, json.dumps(owner.notice).encode())
                else:
                    self._send(404, b"")

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# The start of a trial script that checkpoints its step on SIGTERM (a spot notice, a stop) and
# resumes from it; a test appends its own loop over ``step``.
CHECKPOINTING_TRIAL_HEAD = """
import json, os, pathlib, signal, sys, time
import costtune

ckpt = pathlib.Path(os.environ["COSTTUNE_CHECKPOINT_DIR"]) / "state.json"
first = json.loads(ckpt.read_text())["step"] + 1 if ckpt.exists() else 0
step = first

def on_term(*_):
    ckpt.write_text(json.dumps({"step": step}))
    print("checkpointed at step", step, flush=True)
    sys.exit(143)

signal.signal(signal.SIGTERM, on_term)
print("resumed from step", first, flush=True)
"""
