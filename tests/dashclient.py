"""The dashboard for the tests: served on a free port from a log, read over HTTP, waited on with deadlines."""

from __future__ import annotations

import http.client
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from gossipnet.protocol import topology
from gossipnet.viz.dashboard import Dashboard
from synthlog import Scenario

Where = Dashboard | str  # a dashboard of this process, or the URL another process printed


def serve(log: Path) -> Dashboard:
    """A started dashboard of ``log`` on 127.0.0.1, port 0; stop it with .stop()."""
    return Dashboard(log, "127.0.0.1", 0).start()


def request(where: Where, path: str, method: str = "GET", headers: dict | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request, sent as given (no normalising of the path)."""
    url = urlsplit(where if isinstance(where, str) else where.url)
    host, port = url.hostname, url.port
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, {name.lower(): value for name, value in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def get_json(where: Where, path: str) -> dict:
    status, headers, body = request(where, path)
    assert status == 200, (path, status, body[:300])
    assert headers["content-type"] == "application/json"
    return json.loads(body)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> object:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` s saying ``what``."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)  # polling interval, not synchronisation
    return result


def read_whole(dashboard: Dashboard, log: Path, timeout: float = 60) -> dict:
    """The state once the dashboard has read every byte of ``log``."""
    size = log.stat().st_size

    def done():
        state = get_json(dashboard, "/state.json")
        return state if state["log"]["read"] == size and not state["log"]["reading"] else None

    return wait_for(done, f"the dashboard to read all of {log.name}", timeout)


def scenario(messages: int = 2) -> Scenario:
    """40 peers in a power-law overlay, ``messages`` each; peers 5 and 17 die after the gossip."""
    return Scenario(peers=40, edges=topology.grow(40, topology.PREFERENTIAL, random.Random(7)),
                    messages_per_peer=messages, dead=[5, 17], rng_seed=7)
