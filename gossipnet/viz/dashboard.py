"""The dashboard: a read-only web server that shows a run in a browser, live or replayed.

``visualizer.py --serve`` and ``runner.py --dashboard`` start it.  It serves
the page (``static/``: HTML, JavaScript and the vendored cytoscape.js, no
build step, no CDN) and the JSON endpoints the page draws from, which
scripts can use too (docs/DASHBOARD.md lists them):

- ``GET /state.json[?t=S][&msg=ID]``: peers, seeds, links, counters, the
  degree histogram with its power-law fit, and one message's spread, as of
  ``t`` seconds into the run (default: the latest line read);
- ``GET /messages.json[?t=S][&limit=N]``: the latest messages created by ``t``;
- ``GET /events.json[?since=LINE][&limit=N][&event=NAME,...]``: the log's
  events after line ``since``, as they were read, to poll for new ones.

One reader: :class:`Follower` reads the log a slice at a time through
runlog.LogTail (logformat's parser, runlog's facts) on its own thread, and
timeline.Timeline answers from them.  A log that grows is followed, one
that shrinks was replaced and is read again from its start, malformed lines
are counted.

Safe by default: it listens on 127.0.0.1 unless told otherwise, answers
GET and HEAD only, serves nothing but its own files (looked up by exact
name in a table made at start, so no path reaches the file system) and the
answers computed from the one log it was given, and on a loopback address
it refuses requests whose Host is not a loopback name (a web page elsewhere
cannot read it through DNS rebinding).  A bad request gets a one-line JSON
error; a failing handler is answered 500 and logged, and the server carries on.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import json
import math
import mimetypes
import os
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from gossipnet.logs import runlog
from gossipnet.protocol import topology
from gossipnet.viz.timeline import Timeline

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
STATIC = Path(__file__).resolve().parent / "static"
# Bytes read per step.  The reader holds the lock for one slice (about 7,000
# lines, 50-100 ms on the 2-core VM), so an answer never waits longer than that.
READ_SLICE = 1 << 20
READ_PAUSE = 0.25  # s between looks at a log read to its end (the page polls every second)
READ_RETRY = 2.0  # s before reading again after an unexpected error (shown on the page meanwhile)
EVENTS_DEFAULT, EVENTS_MAX = 200, 2000  # events per /events.json answer
EVENTS_SCANNED = 200_000  # events looked at per answer when filtering by name: bounded work per request
MESSAGES_DEFAULT, MESSAGES_MAX = 500, 10_000
CLIENT_TIMEOUT = 30.0  # s a client may take to send its request before its connection is closed
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class DashboardError(Exception):
    """A problem the user can fix (a bad address, a taken port), as one line."""


class BadRequest(Exception):
    """A request the server will not answer; ``status`` says why."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def looks_like_listen(text: str) -> bool:
    """Whether ``text`` is meant as ``[HOST:]PORT`` (it ends in a number) rather than a log's name."""
    return text.rpartition(":")[2].isdigit()


def parse_listen(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); PORT 0 picks a free port.  DashboardError when malformed."""
    host, colon, port_text = text.rpartition(":")
    host = host if colon else DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        raise DashboardError(f"{text!r}: expected [HOST:]PORT, e.g. 8000 or 127.0.0.1:8000") from None
    if not 0 <= port <= 65535:
        raise DashboardError(f"{text!r}: port must be 0-65535")
    if not host:
        raise DashboardError(f"{text!r}: empty host")
    return host, port


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# --- Reading the log ------------------------------------------------------------------------


class Follower:
    """The log, read a slice at a time on a thread of its own, and its :class:`Timeline`.

    Readers of ``timeline`` hold ``lock``.  ``generation`` counts the times
    the log was found shorter than what had been read (a new run's log): the
    page starts over when it changes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tail = runlog.LogTail(self.path)
        self.timeline = Timeline(self.tail.run)
        self.generation = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.size = 0
        self.error = ""  # why the log cannot be read now, for the page

    def step(self) -> bool:
        """Read one slice; whether more is waiting."""
        with self.lock:
            try:
                self.size = os.stat(self.path).st_size
                self.tail.poll(READ_SLICE)
                self.error = ""
            except FileNotFoundError:
                self.size, self.error = 0, f"waiting for {self.path.name} to appear"
                return False
            except OSError as exc:
                self.error = f"cannot read {self.path.name}: {exc.strerror or exc}"
                return False
            if self.tail.run is not self.timeline.run:  # the log shrank: LogTail started over
                self.generation += 1
                self.timeline = Timeline(self.tail.run)
            added = self.timeline.update()
        if added:
            # What was read stays for the server's life and holds no reference cycles (runlog.collector_paused):
            # kept out of the collector's passes, which would otherwise rescan millions of objects again and again.
            gc.freeze()
        return self.tail.offset < self.size

    def follow(self) -> None:
        """Read until stopped: slice after slice while there is more, then a look every READ_PAUSE."""
        with contextlib.suppress(Exception):  # the fit's library loads slowly: here, not in the first answer
            topology.fit_power_law([1, 1, 2, 2, 3, 5, 8])
        while not self.stopping.is_set():
            try:
                more = self.step()
            except Exception as exc:  # a bug must not end the reading silently: say it, and try again
                with self.lock:
                    self.error = f"reading failed: {type(exc).__name__}: {exc}"
                print(f"dashboard: {self.error}", file=sys.stderr, flush=True)
                self.stopping.wait(READ_RETRY)
                continue
            if not more:
                self.stopping.wait(READ_PAUSE)

    def status(self) -> dict:
        """How far the log has been read (call with ``lock`` held)."""
        run = self.tail.run
        return {"path": self.path.name, "lines": self.tail.lines, "events": len(run.events),
                "malformed": len(run.errors), "read": self.tail.offset, "size": self.size,
                "reading": self.tail.offset < self.size, "generation": self.generation, "error": self.error}


# --- Answers ----------------------------------------------------------------------------------


def _query(url_query: str, allowed: set[str]) -> dict[str, str]:
    try:
        values = parse_qs(url_query, keep_blank_values=True, strict_parsing=bool(url_query), max_num_fields=20)
    except ValueError as exc:
        raise BadRequest(f"malformed query: {exc}") from None
    unknown = sorted(set(values) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(f"unknown parameter {unknown[0]!r}; this endpoint takes: {takes}")
    repeated = sorted(name for name, given in values.items() if len(given) > 1)
    if repeated:
        raise BadRequest(f"parameter {repeated[0]!r} given more than once")
    return {name: given[0] for name, given in values.items()}


def _seconds(query: dict[str, str]) -> float | None:
    text = query.get("t")
    if text is None or text in ("", "now"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadRequest(f"t={text[:40]!r}: expected seconds into the run, a number >= 0 (or 'now')")
    return value


def _count(query: dict[str, str], name: str, default: int, most: int, least: int = 1) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not least <= int(text) <= most:
        raise BadRequest(f"{name}={text[:40]!r}: expected a whole number from {least} to {most}")
    return int(text)


def state_answer(follower: Follower, query: dict[str, str]) -> dict:
    at, message = _seconds(query), query.get("msg") or None
    with follower.lock:
        if message is not None and message not in follower.timeline.ids:
            raise BadRequest(f"no message {message[:120]!r} in the run (see /messages.json)", HTTPStatus.NOT_FOUND)
        state = follower.timeline.state(at, message)
        state["log"] = follower.status()
    return state


def messages_answer(follower: Follower, query: dict[str, str]) -> dict:
    at = _seconds(query)
    limit = _count(query, "limit", MESSAGES_DEFAULT, MESSAGES_MAX)
    with follower.lock:
        return {"messages": follower.timeline.messages(at, limit), "log": follower.status()}


def events_answer(follower: Follower, query: dict[str, str]) -> dict:
    since = _count(query, "since", 0, 1 << 62, least=0)
    limit = _count(query, "limit", EVENTS_DEFAULT, EVENTS_MAX)
    names = {name for name in query.get("event", "").split(",") if name}
    with follower.lock:
        events = follower.tail.run.events
        start = follower.timeline.start or 0.0
        index = _first_after(events, since)
        found, last, end = [], since, min(len(events), index + EVENTS_SCANNED)
        while index < end and len(found) < limit:
            event = events[index]
            if not names or event.event in names:
                found.append({"line": event.line, "t": round(event.timestamp - start, 6), "role": event.role,
                              "node": str(event.node), "event": event.event, "fields": event.fields})
            last = event.line
            index += 1
        return {"events": found, "next": last, "more": index < len(events), "log": follower.status()}


def _first_after(events: list, line: int) -> int:
    """Index of the first event whose line number is above ``line`` (events are in line order)."""
    low, high = 0, len(events)
    while low < high:
        middle = (low + high) // 2
        if events[middle].line <= line:
            low = middle + 1
        else:
            high = middle
    return low


ENDPOINTS = {
    "/state.json": (state_answer, {"t", "msg"}),
    "/messages.json": (messages_answer, {"t", "limit"}),
    "/events.json": (events_answer, {"since", "limit", "event"}),
}


def static_files(folder: Path = STATIC) -> dict[str, Path]:
    """URL path -> file, for every file under ``folder`` (names starting with a dot left out); ``/`` is index.html."""
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files["/static/" + relative.as_posix()] = path
    files["/"] = folder / "index.html"
    return files


# --- The server -------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """One request: a file of ``static/`` or a JSON answer; anything else a JSON error."""

    server: DashboardServer
    server_version = "gossipnet-dashboard"
    timeout = CLIENT_TIMEOUT

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _refuse_method(self) -> None:
        self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} not allowed: the dashboard is "
                                                                 "read-only (GET and HEAD only)"},
                        True, {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        pass  # a page polling every second would flood the terminal; errors are logged in _answer

    def _answer(self, body: bool) -> None:
        try:
            self._check_host()
            url = urlsplit(self.path)
            endpoint = ENDPOINTS.get(url.path)
            if endpoint is not None:
                answer, allowed = endpoint
                self._send_json(HTTPStatus.OK, answer(self.server.follower, _query(url.query, allowed)), body)
                return
            path = self.server.files.get(url.path)
            if path is None:
                raise BadRequest(f"no such page: {url.path[:200]} (the dashboard serves /, /static/..., "
                                 f"{', '.join(ENDPOINTS)})", HTTPStatus.NOT_FOUND)
            self._send_file(path, body)
        except BadRequest as exc:
            self._send_json(exc.status, {"error": str(exc)}, body)
        except (ConnectionError, TimeoutError):
            pass  # the client went away
        except Exception as exc:  # a bug answers this request only; the server carries on
            print(f"dashboard: {self.command} {self.path[:200]}: {type(exc).__name__}: {exc}", file=sys.stderr,
                  flush=True)
            with contextlib.suppress(OSError):
                self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"}, body)

    def _check_host(self) -> None:
        if not self.server.loopback:
            return
        header = self.headers.get("Host") or ""
        host = header.split("]")[0] + "]" if header.startswith("[") else header.rsplit(":", 1)[0]
        if host.lower() not in LOOPBACK_NAMES and not _is_loopback(host):
            raise BadRequest(f"Host {header[:100]!r} refused: this dashboard answers on loopback names only",
                             HTTPStatus.FORBIDDEN)

    def _headers(self, status: HTTPStatus, content_type: str, length: int, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; "
                                                    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_json(self, status: HTTPStatus, data: dict, body: bool, extra: dict[str, str] | None = None) -> None:
        payload = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
        self._headers(status, "application/json", len(payload), extra or {})
        if body:
            self.wfile.write(payload)

    def _send_file(self, path: Path, body: bool) -> None:
        data = path.read_bytes()
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind == "application/javascript":
            kind += "; charset=utf-8"
        self._headers(HTTPStatus.OK, kind, len(data), {})
        if body:
            self.wfile.write(data)


class DashboardServer(ThreadingHTTPServer):
    """The HTTP server, one thread a request, with the Follower every answer reads."""

    daemon_threads = True  # a page's open connection must not hold the process at exit
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], follower: Follower) -> None:
        self.follower = follower
        self.files = static_files()
        self.loopback = _is_loopback(address[0])
        super().__init__(address, Handler)


class Dashboard:
    """The server and the log reader, started and stopped together.  ``stop`` is safe to call twice."""

    def __init__(self, log: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        if Path(log).is_dir():
            raise DashboardError(f"{log} is a directory, not a log file")
        self.follower = Follower(log)
        try:
            self.server = DashboardServer((host, port), self.follower)
        except OSError as exc:
            raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> Dashboard:
        for name, target in (("dashboard-reader", self.follower.follow),
                             ("dashboard-server", lambda: self.server.serve_forever(poll_interval=0.2))):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        if self.follower.stopping.is_set():
            return
        self.follower.stopping.set()
        if self._threads:
            self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(log: str | Path, host: str, port: int, stop) -> int:
    """``visualizer.py --serve``: start, print the URL, and run until ``stop`` (launch.StopRequest) is set."""
    with Dashboard(log, host, port) as dashboard:
        if not Path(log).exists():
            print(f"dashboard: waiting for {log} to appear", file=sys.stderr, flush=True)
        where = "" if dashboard.server.loopback else " (not a loopback address: anyone who can reach it may look)"
        print(f"dashboard of {log}: {dashboard.url}{where}  (Ctrl-C to stop)", flush=True)
        while not stop:
            stop.sleep(1.0)
    return 0
