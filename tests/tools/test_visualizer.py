"""visualizer.py: the figures and the printed facts of a real run and of synthetic runs
whose every fact is known; malformed lines, bad command lines, the live view.
Also the runlog pieces it added: hop counts and reading a growing log."""

from __future__ import annotations

import os
import random
import re
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import visualizer
from gossipnet.logs import logformat, runlog
from gossipnet.protocol import topology
from synthlog import Scenario, peer_address, synthesize

REPO = Path(__file__).resolve().parents[2]
FIGURES = ("topology", "degrees", "propagation", "timeline")
GOSSIP_COUNT = 5


def run_cli(*args: str, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "visualizer.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def assert_pngs(out: Path) -> None:
    """Each figure is a whole PNG of a sensible size, with something drawn in it."""
    for name in FIGURES:
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
        assert width >= 800 and height >= 500, (name, width, height)
        assert len(data) > 30_000, (name, len(data))  # an empty figure of that size is a few kB
    assert not list(out.glob(".*partial")), "a temporary file was left behind"


def facts(stdout: str) -> dict[str, list[str]]:
    """The printed report, ``key: value`` lines, by key."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            found.setdefault(key, []).append(value)
    return found


def degree_line(degrees: list[int]) -> str:
    return f"min {min(degrees)}, median {statistics.median(degrees):g}, max {max(degrees)}"


# --- A real run --------------------------------------------------------------------------


def test_real_run_figures_and_facts(network, tmp_path):
    network.start_seeds(3)
    peers = network.start_peers(6, "--gossip-interval", "0.2", "--gossip-count", str(GOSSIP_COUNT),
                                "--ping-interval", "0.5", "--ping-misses", "3")
    network.wait_until(lambda: network.all_delivered(peers, GOSSIP_COUNT), 60, "every message at every peer")
    victim = peers[0]
    network.kill(victim, signal.SIGKILL)
    network.wait_until(lambda: any(event.address("peer") == victim.address
                                   for event in network.events(logformat.PL_REMOVED)), 30, "the victim's removal")
    links = network.links()
    network.close()

    out = tmp_path / "figures"
    result = run_cli(network.log_path, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_pngs(out)
    printed = facts(result.stdout)
    assert printed["peers"] == ["6 (5 live, 1 dead); seeds: 3"]
    dead_links = sum(1 for link in links if victim.address in link)
    assert printed["links"] == [f"{len(links)} ({dead_links} to dead peers)"]
    degrees = [sum(1 for link in links if peer.address in link) for peer in peers]
    assert printed["degree"] == [degree_line(degrees)]
    expected = 5 * 4 * GOSSIP_COUNT + 5 * GOSSIP_COUNT  # live peers get each other's and the victim's messages
    assert printed["delivery"] == [f"100.0% ({expected} of {expected} receipts expected at live peers); "
                                   "duplicates: 0"]
    [detection] = printed["detection"]
    assert detection.startswith(f"{victim.address} last seen -> first report ")
    assert re.search(r"\(\d+ reporters, \d seeds removed it\)$", detection)
    assert printed["hops"][0].startswith("median ")
    assert "exponent" in printed and "diameter" in printed


# --- Synthetic runs whose facts are known ---------------------------------------------


def wheel() -> Scenario:
    """Peer 0 is a hub linked to 1..7, which also form a ring; peer 3 dies after the gossip."""
    edges = [(0, spoke) for spoke in range(1, 8)] + [(a, a % 7 + 1) for a in range(1, 8)]
    return Scenario(peers=8, edges=[tuple(sorted(edge)) for edge in edges], messages_per_peer=2, dead=[3])


def test_known_graph_figures_and_facts(tmp_path, capsys):
    synth = synthesize(wheel())
    log = synth.write(tmp_path / "outputfile.txt")
    out = tmp_path / "figures"
    assert visualizer.main([str(log), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert_pngs(out)
    printed = facts(captured.out)
    dead = peer_address(3)
    assert printed["peers"] == ["8 (7 live, 1 dead); seeds: 3"]
    assert printed["links"] == ["14 (3 to dead peers)"]
    assert printed["degree"] == ["min 3, median 3, max 7"]
    # the hub still reaches every live peer in one hop
    assert printed["diameter"] == ["2 (largest connected component of live peers: 7 of 7)"]
    assert printed["delivery"] == ["100.0% (98 of 98 receipts expected at live peers); duplicates: 0"]
    assert printed["dissemination"][0].endswith("(16 of 16 messages reached every live peer)")
    report = synth.first_report[dead] - synth.last_seen[dead]
    removal = max(synth.removed[dead].values()) - synth.last_seen[dead]
    assert printed["detection"] == [f"{dead} last seen -> first report {report:.3f} s, -> last removal "
                                    f"{removal:.3f} s (3 reporters, 2 seeds removed it)"]
    hops = [count for key, got in synth.receipts.items() for peer, (_, _, count) in got.items() if peer != dead]
    assert printed["hops"] == [f"median {statistics.median(hops):g}, max {max(hops)} "
                               f"(over {len(hops)} first receipts at live peers)"]


def test_hop_counts_follow_the_chain_of_first_receipts(tmp_path):
    synth = synthesize(Scenario(peers=40, edges=topology.grow(40, topology.PREFERENTIAL, random.Random(4)),
                                messages_per_peer=1, rng_seed=4))
    run = runlog.Run.load(synth.write(tmp_path / "outputfile.txt"))
    counts = run.hop_counts()
    assert set(counts) == set(synth.receipts)
    for key, got in synth.receipts.items():
        assert counts[key] == {key[0]: 0, **{peer: hops for peer, (_, _, hops) in got.items()}}


def test_hop_counts_skip_broken_chains():
    origin, a, b, c, d = (peer_address(i) for i in range(5))
    lines = [
        (a, origin), (b, a),  # origin -> a -> b
        (c, d), (d, c),  # a loop, as only a damaged log could show
    ]
    events = [logformat.parse_line(f"{logformat.format_time(1e9 + i)} peer {peer} GOSSIP_RECEIVED "
                                   f"msg=1.0:127.0.0.1:1 origin={origin} from={sender}", i + 1)
              for i, (peer, sender) in enumerate(lines)]
    assert runlog.Run(events).hop_counts() == {(origin, "1.0:127.0.0.1:1"): {origin: 0, a: 1, b: 2}}


def test_receipts_with_a_bad_sender_or_origin():
    # A first receipt whose from= is not an address is an error and no receipt; a
    # duplicate's from= is not read; each text is judged alone, whatever came before.
    origin, a, b = (peer_address(i) for i in range(3))
    lines = [(a, origin, "nowhere"), (a, origin, origin), (a, origin, "nowhere"), (b, origin, "nowhere"),
             (b, "nowhere", origin), (b, origin, a), (b, origin, None), (a, origin, "127.0.0.1:0")]
    events = [logformat.parse_line(f"{logformat.format_time(1e9 + i)} peer {peer} GOSSIP_RECEIVED "
                                   f"msg=1.0:127.0.0.1:1 origin={origin_text}"
                                   + ("" if sender is None else f" from={sender}"), i + 1)
              for i, (peer, origin_text, sender) in enumerate(lines)]
    run = runlog.Run(events)
    key = (origin, "1.0:127.0.0.1:1")
    assert list(run.receipts) == [key]
    assert run.receipts[key] == {a: runlog.Receipt(a, origin, 1e9 + 1, 2), b: runlog.Receipt(b, a, 1e9 + 5, 6)}
    assert [event.line for event in run.duplicates] == [3, 7, 8]
    assert [(line, reason.split(":")[0]) for line, reason, _ in run.errors] == [
        (1, "bad GOSSIP_RECEIVED line"), (4, "bad GOSSIP_RECEIVED line"), (5, "bad GOSSIP_RECEIVED line")]
    assert "field 'from'" in run.errors[0][1] and "field 'origin'" in run.errors[2][1]


def test_large_preferential_graph_exponent(tmp_path):
    count = 1000
    edges = topology.grow(count, topology.PREFERENTIAL, random.Random(3))
    synth = synthesize(Scenario(peers=count, edges=edges, origins=[0, 500, 999], join_gap=0.005))
    out = tmp_path / "figures"
    result = run_cli(synth.write(tmp_path / "outputfile.txt"), "--out", out)
    assert result.returncode == 0, result.stderr
    assert_pngs(out)
    printed = facts(result.stdout)
    fit = topology.fit_power_law(synth.degrees().values())
    [exponent] = printed["exponent"]
    alpha = float(re.match(r"alpha (\d+\.\d+) for k >= (\d+)", exponent).group(1))
    assert alpha == pytest.approx(fit.alpha, abs=0.005)
    assert 2 <= alpha <= 3.5
    assert f"for k >= {fit.k_min} " in exponent
    assert exponent.endswith(f"power law vs exponential: {fit.verdict}")
    assert fit.favours_power_law
    assert printed["links"] == [f"{len(edges)} (0 to dead peers)"]
    assert printed["degree"] == [degree_line(list(synth.degrees().values()))]


# --- Bad input ---------------------------------------------------------------------------


def test_malformed_lines_are_reported_with_their_numbers_and_skipped(tmp_path):
    synth = synthesize(wheel())
    clean = synth.write(tmp_path / "clean.txt")
    lines = list(synth.lines)
    lines.insert(2, "garbage")  # line 3
    lines.insert(9, "2026-09-21T14:13:20.100000Z peer 127.0.0.999:9001 STOPPED")  # line 10: bad address
    lines.append(lines[-1][:30])  # a half-written last line
    dirty = tmp_path / "dirty.txt"
    dirty.write_text("\n".join(lines) + "\n")
    out = tmp_path / "figures"
    result = run_cli(dirty, "--out", out)
    assert result.returncode == 0, result.stderr
    reported = [int(number) for number in re.findall(rf"^visualizer: {re.escape(str(dirty))}:(\d+): skipped malformed",
                                                     result.stderr, re.MULTILINE)]
    assert reported == [3, 10, len(lines)]
    assert "Traceback" not in result.stderr
    assert_pngs(out)
    assert "3 malformed lines skipped" in result.stdout
    # the other lines tell the same story as the clean log
    clean_result = run_cli(clean, "--text-only")
    assert clean_result.returncode == 0
    skip = {"log", "figures"}
    assert ({k: v for k, v in facts(result.stdout).items() if k not in skip}
            == {k: v for k, v in facts(clean_result.stdout).items() if k not in skip})


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("", "is empty"),
    ("not a log line\n", "no valid log lines (1 malformed)"),
    ("2026-01-01T00:00:00.000000Z seed 127.0.0.1:8080 STARTED listen=127.0.0.1:8080\n", "no peer lines"),
])
def test_unusable_logs_fail_in_one_line(tmp_path, content, message):
    log = tmp_path / "outputfile.txt"
    if content is not None:
        log.write_text(content)
    result = run_cli(log, "--out", tmp_path / "figures")
    assert result.returncode == 1
    *skipped, error = result.stderr.strip().splitlines()
    assert error.startswith("visualizer: error: ") and message in error, result.stderr
    assert len(skipped) == (1 if "malformed" in message else 0)  # the malformed line, with its number
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "figures").exists()


def test_help_and_bad_arguments():
    result = run_cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps to the terminal's width
    for words in ("--out DIR", "--live", "--interval S", "--text-only", "topology.png", "Exit status"):
        assert words in text
    result = run_cli("--interval", "0")
    assert result.returncode == 2 and "must be above 0" in result.stderr


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="a display is always there")
def test_live_window_without_a_display_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = run_cli(tmp_path / "outputfile.txt", "--live", env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no display" in result.stderr and "--out DIR" in result.stderr


# --- The live view -----------------------------------------------------------------------


def test_live_view_follows_a_growing_log_and_stops_cleanly(tmp_path):
    synth = synthesize(wheel())
    log, out = tmp_path / "outputfile.txt", tmp_path / "figures"
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "w") as out_file, open(stderr, "w") as err_file:
        process = subprocess.Popen([sys.executable, str(REPO / "visualizer.py"), str(log), "--live", "--out",
                                    str(out), "--interval", "0.2"], stdout=out_file, stderr=err_file)
    try:
        def wait_for(condition, what: str, timeout: float = 30) -> None:
            deadline = time.monotonic() + timeout
            while not condition():
                assert process.poll() is None, stderr.read_text()
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                time.sleep(0.1)

        wait_for(lambda: "waiting for" in stderr.read_text(), "the 'waiting' notice")
        half = len(synth.lines) // 2
        with open(log, "a") as handle:
            handle.write("".join(line + "\n" for line in synth.lines[:half]) + synth.lines[half][:25])
        wait_for(lambda: (out / "timeline.png").exists(), "the first figures")
        with open(log, "a") as handle:
            handle.write(synth.lines[half][25:] + "\n" + "".join(line + "\n" for line in synth.lines[half + 1:]))
        wait_for(lambda: f"{len(synth.lines)} lines: 8 peers (1 dead), 14 links" in stdout.read_text(),
                 "the whole log to be drawn")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert_pngs(out)
    printed = facts(stdout.read_text())
    assert printed["links"] == ["14 (3 to dead peers)"]
    assert "Traceback" not in stderr.read_text()
    assert "malformed" not in stderr.read_text()  # the half-written line was waited for, not misread


def test_log_tail_reads_complete_lines_numbered_as_parse_log(tmp_path):
    synth = synthesize(wheel())
    log = tmp_path / "outputfile.txt"
    text = "\n".join([*synth.lines[:5], "", "junk", *synth.lines[5:]]) + "\n"
    tail = runlog.LogTail(log)
    assert tail.poll() == 0  # no file yet
    cut = text.index("\n", 300) + 10
    log.write_text(text[:cut])
    first = tail.poll()
    assert tail.lines == text[:cut].count("\n")
    with open(log, "a") as handle:
        handle.write(text[cut:])
    assert first + tail.poll() == len(synth.lines) + 1
    whole = logformat.parse_log(log)
    assert [event.line for event in tail.run.events] == [event.line for event in whole.events]
    assert tail.run.errors == whole.errors == [(7, whole.errors[0][1], "junk")]
    assert tail.run.summary() == runlog.Run(whole.events).summary()
    log.write_text(synth.lines[0] + "\n")  # a new run's log replaces the file
    assert tail.poll() == 1 and len(tail.run.events) == 1 and tail.lines == 1
