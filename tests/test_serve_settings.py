"""The sweep file's ``server`` section, the user data, and bad flags of `costtune serve` / `costtune agent`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from costtune.agent.userdata import Install, controller_version, render_user_data
from costtune.cli.app import main
from costtune.errors import SpecError
from costtune.spec.server import parse_server

TOKEN = "tok_EN-123abc"


def test_server_section_values_and_defaults() -> None:
    got = parse_server({"bind": "0.0.0.0:8470", "public_url": "https://tune.example.org/", "lost_after": "10m",
                        "bundle_max_mb": 5})
    assert (got.host, got.port, got.url, got.lost_after_s, got.bundle_max_bytes) == (
        "0.0.0.0", 8470, "https://tune.example.org", 600.0, 5 * 1024 * 1024)
    default = parse_server(None)
    assert (default.port, default.lost_after_s, default.url) == (8470, 600.0, "http://127.0.0.1:8470")
    assert parse_server({"bind": "[::1]:9000", "lost_after": 90}).url == "http://[::1]:9000"
    assert parse_server({"lost_after": "1.5h"}).lost_after_s == 5400
    tuned = parse_server({"start": False, "heartbeat": "2s", "stop_grace": "90s"})
    assert (tuned.start, tuned.heartbeat_s, tuned.stop_grace_s) == (False, 2.0, 90.0)
    assert (default.start, default.heartbeat_s, default.stop_grace_s) == (True, 10.0, 60.0)


@pytest.mark.parametrize(("section", "field", "words"), [
    ({"bind": "0.0.0.0:99999"}, "server.bind", "port must be a number from 0 to 65535"),
    ({"bind": "bad host:80"}, "server.bind", "host must be"),
    ({"bind": 8470}, "server.bind", "must be host:port"),
    ({"public_url": "ftp://tune.example.org"}, "server.public_url", "http:// or https://"),
    ({"public_url": "https://tune.example.org:http"}, "server.public_url", "port"),
    ({"lost_after": "10 minutes"}, "server.lost_after", "duration such as 90s"),
    ({"lost_after": 0}, "server.lost_after", "> 0"),
    ({"lost_after": "400d"}, "server.lost_after", "duration"),
    ({"bundle_max_mb": 0}, "server.bundle_max_mb", ">= 1"),
    ({"tls": True}, "server.tls", "unknown field"),
    ({"start": "yes"}, "server.start", "must be true"),
    ({"heartbeat": "5m", "lost_after": "10m"}, "server.heartbeat", "a third of server.lost_after"),
    ({"stop_grace": -1}, "server.stop_grace", "> 0"),
])
def test_a_bad_server_field_is_named_with_its_value(section: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_server(section)
    assert str(caught.value).startswith(f"{field}: ") and words in str(caught.value)


def test_costtune_run_refuses_a_bad_server_section_before_the_store_exists(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "s", "objective": {"metric": "loss"}, "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
        "budget": {"trials": 1}, "command": ["python", "-c", "pass"], "server": {"lost_after": "soon"}}))
    db = tmp_path / "store.db"
    done = subprocess.run([sys.executable, "-m", "costtune.cli", "run", str(sweep), "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "server.lost_after" in done.stderr and "got soon" in done.stderr
    assert "Traceback" not in done.stderr and not db.exists()


@pytest.mark.parametrize(("args", "words"), [
    (["serve", "--bind", "localhost:http"], "--bind: port must be"),
    (["agent", "--server", "http://127.0.0.1:1", "--attempt", "1", "--token-file", "/nonexistent/token"],
     "--token-file: cannot read"),
])
def test_bad_flags_of_serve_and_agent_exit_2_naming_the_flag(args: list[str], words: str) -> None:
    result = CliRunner().invoke(main, args)
    assert (result.exit_code == 2 and words in result.output and result.exception is None) or \
        isinstance(result.exception, SystemExit), result.output


def test_user_data_holds_the_token_only_in_a_root_only_file_and_is_valid_bash(tmp_path: Path) -> None:
    script = render_user_data(server_url="https://tune.example.org", attempt_id=7, token=TOKEN, home="/var/lib/ct",
                              shutdown_command="shutdown -h now")
    assert script.startswith("#!/bin/bash\n") and "set -x" not in script and "umask 077" in script
    lines = script.splitlines()
    assert [i for i, line in enumerate(lines) if TOKEN in line] == [lines.index("cat > /var/lib/ct/token-7 "
                                                                                "<<'COSTTUNE_TOKEN_END'") + 1]
    agent = next(line for line in lines if line.startswith("exec "))
    assert "--token-file /var/lib/ct/token-7" in agent and "--attempt 7" in agent
    assert "trap 'shutdown -h now' ERR" in lines  # a failed bootstrap shuts the instance down
    assert f"costtune[aws]=={controller_version()}" in script  # the controller's version
    (tmp_path / "ud.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "ud.sh")], check=False).returncode == 0
    local = render_user_data(server_url="http://127.0.0.1:1", attempt_id=1, token=TOKEN,
                             install=Install(command=("/venv/bin/python", "-m", "costtune.cli")), metadata_url=None)
    assert "pip install" not in local and "exec /venv/bin/python -m costtune.cli agent" in local
    assert "--no-metadata" in local
    with pytest.raises(ValueError, match="token"):
        render_user_data(server_url="http://x", attempt_id=1, token="a'b")


def test_serve_on_an_address_in_use_exits_2_and_an_agent_that_cannot_start_still_shuts_down(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--bind", f"127.0.0.1:{port}", "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and "cannot listen on 127.0.0.1" in result.output, result.output
    marker = tmp_path / "shut-down"
    result = CliRunner().invoke(main, ["agent", "--server", "http://127.0.0.1:1", "--attempt", "1", "--token-file",
                                       str(tmp_path / "missing"), "--shutdown-command", f"touch {marker}"])
    assert result.exit_code == 2 and marker.exists()
