"""The dashboard's page in a real browser: Debian's Chromium, headless, driven by Playwright (PyPI).

A live run: the page shows every peer and link, and a killed peer reported, then removed.  A
finished log: the slider at t shows /state.json's state at t.  A log growing by 1 MB/s: the page
keeps drawing.  The page runs under its own Content-Security-Policy, as a user gets it.

Screenshots are saved as test artefacts in each test's tmp_path (pytest keeps the last three
runs' under /tmp/pytest-of-USER/pytest-N/TEST_NAME0/*.png).  Without Playwright or Chromium
(``apt-get install chromium``, as .ci/run does; or CHROMIUM=/path/to/it), these tests skip
with the reason.  Playwright never downloads a browser of its own here.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import pytest

from dashclient import get_json, scenario, serve
from gossipnet.logs import logformat, runlog
from synthlog import synthesize

VIEWPORT = {"width": 1400, "height": 850}
PAGE_TIMEOUT = 60.0  # s for the page to show what a wait asks for, on a loaded 2-core machine
LIVE_PEER_FLAGS = ("--gossip-interval", "0.2", "--gossip-count", "5", "--ping-interval", "0.5", "--ping-misses", "3")


def chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                                                                 "(pip install -r requirements-dev.txt)")
    path = chromium()
    if path is None:
        pytest.skip("no Chromium to drive: apt-get install chromium (as .ci/run does), or set CHROMIUM")
    with sync_api.sync_playwright() as playwright:
        # Chromium's sandbox refuses to run as root (CI runs as root).
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"] * (os.geteuid() == 0))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("console", lambda message: problems.append(f"console: {message.text}")
              if message.type == "error" else None)
    try:
        yield opened
    finally:
        context.close()
    assert not problems, problems  # no script error, nothing the CSP blocked, no failed load


def leave(page) -> None:
    """Take the page away from the dashboard before its server stops, so that no poll of the page's
    is cut off mid-request (a reset the page would rightly report as a failed load)."""
    page.goto("about:blank")


def wait_page(page, expression: str, what: str, timeout: float = PAGE_TIMEOUT):
    """Evaluate ``expression`` in the page until it is true; its value.  Polled from here, so that the
    page's CSP (no eval) stays on."""
    deadline = time.monotonic() + timeout
    while not (value := page.evaluate(expression)):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for the page to show {what}")
        time.sleep(0.1)  # polling interval, not synchronisation
    return value


def shown(page) -> tuple[set[str], set[frozenset[str]]]:
    peers = set(page.evaluate("window.dashboard.shownPeers()"))
    links = {frozenset(link[:2]) for link in page.evaluate("window.dashboard.shownLinks()")}
    return peers, links


def set_time(page, at: float) -> None:
    page.evaluate(f"window.dashboard.setTime({at!r})")
    wait_page(page, f"Math.abs(window.dashboard.view.last.time.t - {at!r}) < 1e-6", f"the state at t={at}")


def text(page, selector: str) -> str:
    return page.inner_text(selector)


def test_a_live_run_shows_every_peer_and_link_then_a_killed_peer_reported_then_removed(network, page, tmp_path):
    network.start_seeds(3)
    server = serve(network.log_path)
    try:
        peers = network.start_peers(6, *LIVE_PEER_FLAGS)
        page.goto(server.url)
        addresses = {str(peer.address) for peer in peers}
        network.wait_until(lambda: network.all_delivered(peers, 5), 60, "every message at every peer")
        links = {frozenset(map(str, link)) for link in network.links()}
        wait_page(page, "window.dashboard.shownPeers().length === 6", "every peer")
        wait_page(page, f"window.dashboard.shownLinks().length === {len(links)}", "every link")
        assert shown(page) == (addresses, links)
        assert text(page, "#c-peers") == "6 (6 live)"
        page.screenshot(path=tmp_path / "live-overlay.png")

        victim = str(peers[0].address)
        network.kill(peers[0], signal.SIGKILL)
        wait_page(page, f"document.querySelector('#deaths li[data-peer=\"{victim}\"]')?.dataset.state === 'removed'",
                  "the killed peer removed", timeout=90)
        assert victim not in shown(page)[0]  # it left the overlay
        page.screenshot(path=tmp_path / "live-removed.png")

        # The page showed it reported before removed: the timeline holds every moment of it.
        state = get_json(server, "/state.json")
        [dead] = [peer for peer in state["peers"] if peer["id"] == victim]
        reported = dead["reported_by"][0][1]
        removed = max(t for _, decision, _, t in dead["decisions"] if decision == "removed it from its Peer List")
        assert reported < removed
        first_miss = min(t for _, _, t in dead["missed_by"]) if dead["missed_by"] else None
        moments = [(reported + (removed - reported) / 2, "reported"), (removed + 0.001, "absent")]
        if first_miss is not None and first_miss < reported:
            moments.insert(0, ((first_miss + reported) / 2, "missed"))
        for at, expected in moments:
            set_time(page, at)
            assert page.evaluate(f"window.dashboard.peerState('{victim}')") == expected, at
            page.screenshot(path=tmp_path / f"live-{expected}.png")
        page.hover("#graph")  # the hover needs a node under the mouse: the deaths list carries the reasons
        assert "removed it from its Peer List" in page.get_attribute(f'#deaths li[data-peer="{victim}"]', "title")
    finally:
        leave(page)
        server.stop()
    assert sorted(tmp_path.glob("live-*.png"))


def test_a_finished_log_replays_the_state_at_each_time(page, tmp_path):
    synth = synthesize(scenario())
    log = synth.write(tmp_path / "outputfile.txt")
    run = runlog.Run.load(log)
    start = min(event.timestamp for event in run.events)
    server = serve(log)
    try:
        page.goto(server.url)
        wait_page(page, f"window.dashboard.view.last?.log.lines === {len(synth.lines)} && "
                        "!window.dashboard.view.last.log.reading", "the whole log read")
        middle = sorted(synth.messages.values())[len(synth.messages) // 2] - start + 0.004
        death = min(synth.first_report.values()) - start + 0.0005
        for at in (0.4, middle, death, run.events[-1].timestamp - start):
            set_time(page, at)
            state = get_json(server, f"/state.json?t={at}")
            peers = {peer["id"] for peer in state["peers"] if peer["state"] != "removed"}
            links = {frozenset(link[:2]) for link in state["links"]}
            assert shown(page) == (peers, links), at
            prefix = runlog.Run([event for event in run.events if event.timestamp <= start + at]).summary()
            assert text(page, "#c-peers") == f"{prefix.peers} ({prefix.live_peers} live)"
            assert text(page, "#c-delivery").startswith(f"{100 * prefix.delivery:.1f}% ({prefix.delivered} of "
                                                        f"{prefix.expected})")
            assert text(page, "#clock").startswith(f"t = {at:.2f} s")
            page.screenshot(path=tmp_path / f"replay-{at:.3f}.png")
        # Picked in the list, a message mid-spread lights up the peers that have it, and only those.
        key, created = sorted(synth.messages.items(), key=lambda item: item[1])[len(synth.messages) // 2]
        spreading = sorted(time for time, _, _ in synth.receipts[key].values())[19] - start
        set_time(page, spreading)
        message_id = f"{key[0]}/{key[1]}"
        page.focus("#message")  # the list is fetched for the slider's time
        wait_page(page, f"[...document.querySelectorAll('#message option')].some((o) => o.value === '{message_id}')",
                  "the message in the list")
        page.select_option("#message", message_id)
        wait_page(page, f"window.dashboard.view.last.message?.id === '{message_id}'", "the message picked")
        message = get_json(server, f"/state.json?t={spreading}&msg={message_id}")["message"]
        lit = set(page.evaluate("window.dashboard.cy.nodes('.got').map((node) => node.id())"))
        assert lit == {peer for peer, _, _ in message["received"]} and len(lit) == 20
        assert page.evaluate("window.dashboard.cy.nodes('.origin').map((node) => node.id())") == [str(key[0])]
        assert f"from {key[0]}" in text(page, "#message-info")
        page.screenshot(path=tmp_path / "replay-message.png")
        middle = spreading
        # Play runs the slider forward from where it stands.
        page.click("#play")
        wait_page(page, f"window.dashboard.view.t > {middle + 0.05}", "the replay moving on")
        page.click("#play")
        assert "paused" in text(page, "#status")
    finally:
        leave(page)
        server.stop()


def test_the_page_keeps_drawing_a_log_growing_by_1_mb_a_second(page, tmp_path):
    synth = synthesize(scenario(messages=16))  # about 3.6 MB: 3.6 s of growth
    log = tmp_path / "outputfile.txt"
    log.write_text("")
    data = "".join(line + "\n" for line in synth.lines).encode()
    chunks = [data[index:index + (1 << 17)] for index in range(0, len(data), 1 << 17)]

    def write() -> None:  # 1 MB/s, in 128 KiB pieces cut anywhere, and one malformed line
        with open(log, "ab") as handle:
            for number, chunk in enumerate(chunks):
                handle.write(chunk)
                if number == 2 and chunk.endswith(b"\n"):
                    handle.write(b"garbage\n")
                handle.flush()
                time.sleep(0.125)  # the writer's pace, not synchronisation

    writer = threading.Thread(target=write)
    server = serve(log)
    try:
        page.goto(server.url)
        wait_page(page, "window.dashboard.view.renders > 0", "a first drawing")
        writer.start()
        renders = []
        while writer.is_alive():
            renders.append(page.evaluate("window.dashboard.view.renders"))
            time.sleep(0.5)  # sampling the page, not synchronisation
        writer.join()
        assert renders == sorted(renders) and renders[-1] > renders[0]  # it kept drawing while the log grew
        wait_page(page, f"window.dashboard.view.last.log.read === {log.stat().st_size} && "
                        "window.dashboard.view.last.counters.removed === 2", "the whole log")
        assert len(shown(page)[0]) == 38
        bad = 1 if chunks[2].endswith(b"\n") else 0
        assert text(page, "#c-log") == f"{len(synth.lines) + bad} lines, {bad} malformed"
        page.screenshot(path=tmp_path / "growing.png")
    finally:
        leave(page)
        server.stop()
        if writer.is_alive():
            writer.join()
    assert logformat.parse_log(log).events
