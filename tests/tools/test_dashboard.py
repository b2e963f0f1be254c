"""The dashboard's server without a browser (visualizer.py --serve, runner.py --dashboard): its JSON
agrees with the run facts and the text report, at the end and at any time t; it refuses bad queries
and paths outside its folder with a clear error; it keeps working on a log that grows by 1 MB/s,
is truncated, or holds malformed or endless lines; it starts and stops with its command."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import visualizer
from dashclient import get_json, read_whole, request, scenario, serve, wait_for
from gossipnet.logs import logformat, runlog, textlines
from gossipnet.protocol import topology
from gossipnet.viz import dashboard
from scripted import cleanup, free_ports, write_config
from synthlog import Scenario, peer_address, synthesize

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def finished(tmp_path):
    """A finished synthetic run's log, its facts, and a dashboard that has read all of it."""
    synth = synthesize(scenario())
    log = synth.write(tmp_path / "outputfile.txt")
    server = serve(log)
    try:
        read_whole(server, log)
        yield synth, log, server
    finally:
        server.stop()


def summary_of(counters: dict) -> tuple:
    return (counters["peers"], counters["live"], counters["links"], counters["degree_min"],
            counters["degree_median"], counters["degree_max"], counters["delivered"], counters["expected"],
            counters["dissemination_median"], counters["dissemination_p99"], counters["false_reports"])


def expected_summary(summary: runlog.Summary) -> tuple:
    return (summary.peers, summary.live_peers, summary.links, summary.degree_min, summary.degree_median,
            summary.degree_max, summary.delivered, summary.expected, summary.dissemination_median,
            summary.dissemination_p99, summary.false_reports)


# --- The state agrees with the run facts and the text report ----------------------------------


def test_state_at_the_end_is_the_run_facts_and_the_text_report(finished, capsys):
    synth, log, server = finished
    state = get_json(server, "/state.json")
    run = runlog.Run.load(log)
    assert summary_of(state["counters"]) == expected_summary(run.summary())
    assert {peer["id"] for peer in state["peers"]} == {str(peer) for peer in synth.peers}
    states = {peer["id"]: peer["state"] for peer in state["peers"]}
    assert {peer for peer, condition in states.items() if condition == "removed"} == {str(p) for p in synth.dead}
    assert state["counters"]["reported"] == state["counters"]["removed"] == 2
    assert {seed["id"] for seed in state["seeds"]} == {str(seed) for seed in synth.seeds}
    # Removed peers' links are not drawn; every other link is up.
    drawn = {frozenset(link[:2]) for link in state["links"]}
    assert drawn == {frozenset(map(str, link)) for link in synth.links if not link & synth.dead}
    assert state["log"] == {**state["log"], "malformed": 0, "lines": len(synth.lines), "reading": False}

    # The same numbers as the text report prints.
    assert visualizer.main([str(log), "--text-only"]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    c = state["counters"]
    assert printed["peers"].startswith(f"{c['peers']} ({c['live']} live, {c['peers'] - c['live']} dead)")
    assert printed["links"].startswith(f"{c['links']} (")
    assert printed["degree"] == f"min {c['degree_min']}, median {c['degree_median']:g}, max {c['degree_max']}"
    assert printed["delivery"].startswith(f"{c['delivery']:.1%} ({c['delivered']} of {c['expected']} ")
    assert printed["dissemination"].startswith(f"median {c['dissemination_median']:.3f} s, "
                                               f"p99 {c['dissemination_p99']:.3f} s")
    fit = topology.fit_power_law(run.degrees().values())
    assert state["degrees"]["fit"]["alpha"] == pytest.approx(fit.alpha, abs=1e-4)
    assert state["degrees"]["fit"]["k_min"] == fit.k_min
    histogram = state["degrees"]["histogram"]
    assert sum(live + dead for _, live, dead in histogram) == 40
    assert sum(dead for _, _, dead in histogram) == 2


def test_state_at_t_is_the_run_up_to_t(finished):
    synth, log, server = finished
    run = runlog.Run.load(log)
    start = min(event.timestamp for event in run.events)
    created = sorted(synth.messages.values())
    deaths = sorted(synth.first_report.values())
    # While peers join, while gossip spreads, between the reports and after them.
    moments = [0.5, created[0] - start + 0.003, created[len(created) // 2] - start + 0.005,
               created[-1] - start + 0.001, deaths[0] - start + 0.0001, deaths[-1] - start + 0.5]
    for at in moments:
        state = get_json(server, f"/state.json?t={at}")
        prefix = runlog.Run([event for event in run.events if event.timestamp <= start + at])
        assert summary_of(state["counters"]) == expected_summary(prefix.summary()), at
        assert {peer["id"] for peer in state["peers"]} == {str(peer) for peer in prefix.peers}, at
        assert state["time"]["t"] == pytest.approx(at, abs=1e-6)
    assert 0 < get_json(server, f"/state.json?t={moments[2]}")["counters"]["delivery"] < 1  # caught mid-spread


def test_a_death_goes_missed_then_reported_then_removed(finished):
    synth, log, server = finished
    run = runlog.Run.load(log)
    start = min(event.timestamp for event in run.events)
    dead = peer_address(5)
    first_miss = min(event.timestamp for event in run.events
                     if event.event == logformat.PING_MISSED and event.fields["neighbour"] == str(dead)) - start
    report = synth.first_report[dead] - start
    removal = max(synth.removed[dead].values()) - start

    def condition(at: float) -> dict:
        state = get_json(server, f"/state.json?t={at}")
        return next(peer for peer in state["peers"] if peer["id"] == str(dead))

    assert condition(first_miss - 0.001)["state"] == "live"  # killed, but no ping missed yet
    missed = condition(first_miss + 0.001)
    assert missed["state"] == "missed" and missed["missed_by"] and not missed["reported_by"]
    reported = condition(report + 0.001)
    assert reported["state"] == "reported" and reported["reported_by"][0][1] == pytest.approx(report, abs=1e-6)
    removed = condition(removal + 0.001)
    assert removed["state"] == "removed"
    reasons = [reason for _, decision, reason, _ in removed["decisions"] if decision == "removed it from its Peer List"]
    assert reasons == ["dead, confirmed by probe"] * len(synth.removed[dead])


def test_a_message_spreads_with_its_hop_counts(finished):
    synth, log, server = finished
    start = min(runlog.Run.load(log).events, key=lambda event: event.timestamp).timestamp
    key, created = sorted(synth.messages.items(), key=lambda item: item[1])[3]
    receipts = synth.receipts[key]
    middle = sorted(time for time, _, _ in receipts.values())[len(receipts) // 2]
    message_id = f"{key[0]}/{key[1]}"
    listed = get_json(server, f"/messages.json?t={middle - start}")["messages"]
    assert message_id in [message["id"] for message in listed]
    state = get_json(server, f"/state.json?t={middle - start}&msg={message_id.replace(':', '%3A')}")
    message = state["message"]
    assert message["id"] == message_id and message["origin"] == str(key[0])
    assert message["age"] == pytest.approx(middle - created, abs=1e-5)
    got = {peer: (delay, hops) for peer, delay, hops in message["received"]}
    want = {str(peer): (time - created, hops) for peer, (time, _, hops) in receipts.items() if time <= middle}
    assert got.keys() == want.keys() and 0 < len(got) < len(receipts)
    for peer, (delay, hops) in want.items():
        assert got[peer][0] == pytest.approx(delay, abs=1e-5) and got[peer][1] == hops


def test_events_are_paged_in_log_order(finished):
    synth, log, server = finished
    wanted = [number for number, line in enumerate(synth.lines, start=1) if " PL_ADDED " in line]
    seen, since = [], 0
    for _ in range(100):
        page = get_json(server, f"/events.json?since={since}&limit=7&event=PL_ADDED")
        seen += [event["line"] for event in page["events"]]
        assert all(event["event"] == "PL_ADDED" and event["role"] == "seed" for event in page["events"])
        since = page["next"]
        if not page["more"]:
            break
    assert seen == wanted
    last = get_json(server, f"/events.json?since={len(synth.lines) - 2}")
    assert [event["line"] for event in last["events"]] == [len(synth.lines) - 1, len(synth.lines)]


# --- Hostile requests --------------------------------------------------------------------------


@pytest.mark.parametrize("query, words", [
    ("t=-1", "t='-1'"), ("t=abc", "t='abc'"), ("t=nan", "t='nan'"), ("t=inf", "t='inf'"),
    ("t=1&t=2", "more than once"), ("when=3", "unknown parameter 'when'"), ("t=%ZZ", "t='%ZZ'"),
    ("msg=nowhere", "no message 'nowhere'"),
])
def test_a_bad_query_is_a_clear_error(finished, query, words):
    _, _, server = finished
    status, headers, body = request(server, f"/state.json?{query}")
    assert status == (404 if query.startswith("msg") else 400)
    assert headers["content-type"] == "application/json"
    assert words in json.loads(body)["error"]
    for path, error in (("/events.json?limit=0", "limit='0'"), ("/events.json?since=-4", "since='-4'"),
                        ("/messages.json?limit=" + "9" * 30, "limit="), ("/messages.json?msg=x", "unknown")):
        status, _, body = request(server, path)
        assert status == 400 and error in json.loads(body)["error"], path
    assert get_json(server, "/state.json?t=1e9")["time"]["t"] == get_json(server, "/state.json")["time"]["end"]


@pytest.mark.parametrize("path", [
    "/static/../dashboard.py", "/static/%2e%2e/dashboard.py", "/static/vendor/../../timeline.py",
    "/../../../../etc/passwd", "/static//etc/passwd", "//etc/passwd", "/static/", "/static/vendor",
    "/static/.hidden", "/outputfile.txt", "/static/../../../outputfile.txt", "/%2e%2e/%2e%2e/etc/passwd",
    "http://127.0.0.1/etc/passwd", "/static/dashboard.js/../../dashboard.py",
])
def test_a_path_outside_the_served_folder_is_not_found(finished, path):
    _, _, server = finished
    status, headers, body = request(server, path)
    assert status == 404
    assert "no such page" in json.loads(body)["error"]
    assert b"import" not in body and b"root:" not in body and b"GOSSIP" not in body


def test_only_the_pages_own_files_are_served_read_only_and_on_loopback_names(finished):
    _, _, server = finished
    files = dashboard.static_files()
    assert {"/", "/static/index.html", "/static/dashboard.js", "/static/vendor/cytoscape.min.js",
            "/static/vendor/VENDORED.md"} <= files.keys()
    for path, file in files.items():
        status, headers, body = request(server, path)
        assert status == 200 and body == file.read_bytes(), path
        assert headers["x-content-type-options"] == "nosniff" and "default-src 'self'" in \
            headers["content-security-policy"]
    assert request(server, "/")[1]["content-type"] == "text/html; charset=utf-8"
    assert "javascript" in request(server, "/static/dashboard.js")[1]["content-type"]
    assert request(server, "/state.json", method="HEAD")[2] == b""
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, body = request(server, "/state.json", method=method)
        assert status == 405 and headers["allow"] == "GET, HEAD" and b"read-only" in body
    # A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) gets nothing.
    status, _, body = request(server, "/state.json", headers={"Host": "attacker.example:8000"})
    assert status == 403 and b"loopback names only" in body
    assert request(server, "/state.json", headers={"Host": "localhost:8000"})[0] == 200


# --- A log that grows, shrinks, or is damaged ---------------------------------------------------


def test_a_log_growing_by_1_mb_a_second_is_followed_and_answers_keep_coming(tmp_path):
    synth = synthesize(scenario(messages=16))  # about 3.6 MB: 3.6 s of growth
    log = tmp_path / "outputfile.txt"
    log.write_text("")
    data = "".join(line + "\n" for line in synth.lines).encode()
    malformed = b"this line is not a log line\n"
    chunks = [data[index:index + (1 << 17)] for index in range(0, len(data), 1 << 17)]  # 128 KiB, 8 a second
    done = threading.Event()

    def write() -> None:  # 1 MB/s, cut anywhere (mid-line too), a malformed line every 8th chunk
        with open(log, "ab") as handle:
            for number, chunk in enumerate(chunks):
                handle.write(chunk)
                if number % 8 == 7 and chunk.endswith(b"\n"):
                    handle.write(malformed)
                handle.flush()
                time.sleep(0.125)  # the pace of the test's writer, not synchronisation
        done.set()

    writer = threading.Thread(target=write)
    server = serve(log)
    try:
        writer.start()
        answers = []
        while not done.is_set():
            state = get_json(server, "/state.json")  # asserts 200 each time
            answers.append(state["log"]["lines"])
        writer.join()
        assert len(answers) >= 5 and answers == sorted(answers)  # it kept answering, and the log only grew
        expected_bad = sum(1 for number, chunk in enumerate(chunks) if number % 8 == 7 and chunk.endswith(b"\n"))
        state = read_whole(server, log)
        assert state["log"]["malformed"] == expected_bad
        assert state["counters"]["peers"] == 40 and state["counters"]["removed"] == 2
        assert summary_of(state["counters"]) == expected_summary(runlog.Run.load(log).summary())
    finally:
        server.stop()
        writer.join()


def test_a_truncated_log_is_read_again_from_its_start(tmp_path):
    first = synthesize(scenario())
    log = first.write(tmp_path / "outputfile.txt")
    server = serve(log)
    try:
        before = read_whole(server, log)
        assert before["log"]["generation"] == 0 and before["counters"]["peers"] == 40
        small = synthesize(Scenario(peers=6, edges=[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], rng_seed=2))
        small.write(log)  # a new run's log replaces the old one: shorter
        after = wait_for(lambda: (state := get_json(server, "/state.json"))["log"]["generation"] == 1
                         and state["counters"]["peers"] == 6 and state, "the dashboard to start over")
        assert {peer["id"] for peer in after["peers"]} == {str(peer) for peer in small.peers}
        assert len(after["links"]) == 5
    finally:
        server.stop()


def test_an_endless_line_is_counted_not_kept(tmp_path):
    log = tmp_path / "outputfile.txt"
    synth = synthesize(Scenario(peers=4, edges=[(0, 1), (1, 2), (2, 3)]))
    log.write_bytes(b"x" * (textlines.MAX_LINE_BYTES * 3))  # no line break yet
    server = serve(log)
    try:
        state = read_whole(server, log)
        assert state["log"]["malformed"] == 1 and state["peers"] == []
        assert len(server.follower.tail._partial) <= textlines.MAX_LINE_BYTES  # bounded memory
        with open(log, "a") as handle:  # the endless line ends, and a run follows
            handle.write("tail of it\n" + "".join(line + "\n" for line in synth.lines))
        state = read_whole(server, log)
        assert state["log"]["malformed"] == 1 and state["counters"]["peers"] == 4
        assert state["log"]["lines"] == 1 + len(synth.lines)
    finally:
        server.stop()


def test_a_missing_log_is_waited_for(tmp_path):
    log = tmp_path / "later.txt"
    server = serve(log)
    try:
        state = wait_for(lambda: (answer := get_json(server, "/state.json"))["log"]["error"] and answer,
                         "the reader's first look")
        assert state["log"]["error"] == "waiting for later.txt to appear" and state["peers"] == []
        synthesize(Scenario(peers=3, edges=[(0, 1), (1, 2)])).write(log)
        wait_for(lambda: get_json(server, "/state.json")["counters"]["peers"] == 3, "the log to be read")
    finally:
        server.stop()


def test_stop_is_safe_twice_and_frees_the_port(tmp_path):
    server = serve(tmp_path / "outputfile.txt")
    port = server.server.server_address[1]
    server.stop()
    server.stop()
    with pytest.raises(OSError):
        request(server, "/state.json")
    dashboard.Dashboard(tmp_path / "outputfile.txt", "127.0.0.1", port).stop()  # the port is free again


# --- The command lines --------------------------------------------------------------------------


def run_visualizer(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "visualizer.py"), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_serve_bad_command_lines_are_one_line_errors(tmp_path):
    for args, status, words in ((["--serve", "70000"], 2, "port must be 0-65535"),
                                (["--serve", "0", "--live"], 2, "cannot be combined with --live"),
                                (["--serve", "0", "--out", "x"], 2, "cannot be combined with --out"),
                                (["--serve", "a.txt", "b.txt"], 2, "expected [HOST:]PORT"),
                                (["--serve", "0", str(tmp_path)], 1, "is a directory")):
        result = run_visualizer(*args)
        assert result.returncode == status, (args, result.stderr)
        assert words in result.stderr.strip().splitlines()[-1], (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_serve_on_a_taken_port_is_a_one_line_error(tmp_path):
    with serve(tmp_path / "outputfile.txt") as taken:
        result = run_visualizer("--serve", str(taken.server.server_address[1]))
    assert result.returncode == 1
    assert re.fullmatch(r"visualizer: error: cannot listen on 127\.0\.0\.1:\d+: .+\n", result.stderr)


def test_serve_prints_its_url_answers_and_stops_on_ctrl_c(tmp_path):
    log = synthesize(Scenario(peers=5, edges=[(0, 1), (1, 2), (2, 3), (3, 4)])).write(tmp_path / "run.txt")
    process = subprocess.Popen([sys.executable, str(REPO / "visualizer.py"), "--serve", "127.0.0.1:0", str(log)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        wait_for(lambda: get_json(url.group(0), "/state.json")["counters"]["peers"] == 5, "the page's data")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert "Traceback" not in process.stderr.read()
        with pytest.raises(OSError):
            request(url.group(0), "/state.json")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_runner_dashboard_serves_the_run_and_stops_with_it(tmp_path):
    config = write_config(tmp_path, free_ports(3))
    log = tmp_path / "outputfile.txt"
    process = subprocess.Popen([sys.executable, str(REPO / "runner.py"), "--peers", "4", "--fast", "--kill", "1",
                                "--config", str(config), "--log", str(log), "--dashboard", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = process.stdout.readline()
        url = re.fullmatch(r"dashboard: (http://127\.0\.0\.1:\d+/)\n", line)
        assert url, line
        wait_for(lambda: get_json(url.group(1), "/state.json")["counters"]["peers"] == 4, "the run's peers", 120)
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        assert "Verdict: PASS" in out
        with pytest.raises(OSError):
            request(url.group(1), "/state.json")
    finally:
        cleanup(process, log)
    assert any(event.event == logformat.PL_REMOVED for event in logformat.parse_log(log).events)
