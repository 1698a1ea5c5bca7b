"""Which Prefect API a one-off run uses, and when its temporary server starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _fake_server(version: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps(version).encode()
            self.send_response(200 if self.path == "/api/admin/version" else 404)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("same_version", [True, False], ids=["ours", "another version"])
def test_a_running_server_is_used_only_when_it_is_a_prefect_of_our_version(same_version):
    import prefect

    from flows.runner import running_local_api

    fake = _fake_server(prefect.__version__ if same_version else "2.0.0")
    port = fake.server_address[1]
    try:
        found = running_local_api(port)
    finally:
        fake.shutdown()
    assert found == (f"http://127.0.0.1:{port}/api" if same_version else None)
    assert running_local_api(port) is None  # nothing listens there any more


_STARTS_IN_BACKGROUND = """
import json, time, httpx
from flows.runner import PrefectApi
import flows.runner as runner
runner.running_local_api = lambda port=0: None  # a developer's own serve must not count
started = time.perf_counter()
api = PrefectApi()
made_s = time.perf_counter() - started
try:
    httpx.get(api.server.api_url + "/health", timeout=0.5)
    answered_at_once = True
except httpx.HTTPError:
    answered_at_once = False
url = api.url()
time.sleep(1.0)  # still up once the thread that started it is done waiting
health = httpx.get(url + "/health", timeout=5).status_code
process = api.server.server_process
api.stop()
print(json.dumps({"temporary": api.temporary, "answered_at_once": answered_at_once,
                  "health": health, "made_s": made_s, "exit": process.wait(timeout=10)}))
"""


def test_the_temporary_server_starts_in_the_background_and_is_stopped(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", _STARTS_IN_BACKGROUND],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Made at once, the server still coming up: the caller loads its model meanwhile.
    assert result["answered_at_once"] is False
    assert result["health"] == 200
    assert result["temporary"] is False  # stopped: nothing of ours left
    assert result["exit"] is not None


def test_a_configured_api_is_used_as_it_is_and_never_stopped(monkeypatch):
    from flows.runner import PrefectApi

    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    api = PrefectApi()
    assert api.url() == "http://prefect.example:4200/api"
    assert api.temporary is False
    api.stop()  # nothing to stop
    assert os.environ["PREFECT_API_URL"] == "http://prefect.example:4200/api"
