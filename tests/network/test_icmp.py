"""Liveness by the system ping (--liveness icmp and both): what it sees, what it cannot, and its errors.

- Without a working ``ping`` the peer says so in one line and exits 2 (a PATH
  that lacks it; a stand-in that cannot open its socket).
- On one host every neighbour is on loopback, which always answers: under
  ``icmp`` a peer warns once, and a crashed neighbour is never reported;
  under ``both`` the same crash is reported (its ``app`` half sees it).
- In network namespaces (root): a cut cable is seen by ``icmp`` and by
  ``both``; a hung process is not seen by ``icmp``, since its kernel still
  answers.  Without root or ``ip netns`` these are skipped, saying why.

The tests that run real pings are skipped, saying why, when this host has no
working ``ping`` (.ci/run installs iputils-ping).
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gossipnet.lab import cli as lab
from gossipnet.lab import net as labnet
from gossipnet.lab.faults import Scenario, parse_fault
from gossipnet.lab.run import Lab, Result
from gossipnet.logs import logformat
from gossipnet.node import icmp
from gossipnet.protocol.wire import Address
from gossipnet.run import launch
from gossipnet.run.options import add_network_arguments, add_run_arguments, make_plan

WARNING = "peer: warning: --liveness icmp: "
# Namespace runs: timings as tests/network/test_faults.py's, a ping a little less often (each
# is a process of its own; the machine is small and shared).
TIMINGS = {"gossip_interval": 0.3, "ping_interval": 1.0, "ping_misses": 3, "probe_timeout": 0.7}
RUN_TIMEOUT = 90.0


@functools.cache
def ping_unavailable() -> str | None:
    return icmp.ping_unavailable()


@pytest.fixture
def ping() -> None:
    if why := ping_unavailable():
        pytest.skip(f"the system ping: {why}")


# --- Without a working ping -------------------------------------------------------------------


def start_peer(tmp_path: Path, path: str, *flags: str) -> subprocess.CompletedProcess:
    (tmp_path / "config.txt").write_text("127.0.0.1:1\n")
    return subprocess.run([sys.executable, str(launch.ROOT / "peer.py"), "127.0.0.1", "0", "--config",
                           str(tmp_path / "config.txt"), "--log", str(tmp_path / "outputfile.txt"), *flags],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PATH": path})


@pytest.mark.parametrize("mode", ["icmp", "both"])
def test_without_ping_on_path_the_peer_says_so_in_one_line_and_exits_2(tmp_path, mode):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = start_peer(tmp_path, str(empty), "--liveness", mode)
    assert done.returncode == 2
    assert done.stderr == f"peer: error: {icmp.MISSING}\n"
    assert "no 'ping' on PATH" in done.stderr and "iputils-ping" in done.stderr
    assert not (tmp_path / "outputfile.txt").exists()  # it stopped before it listened or logged


def test_a_ping_that_cannot_open_its_socket_is_one_line_and_exit_2(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "ping"  # what iputils' ping says without the right to a raw or ICMP socket
    stand_in.write_text("#!/bin/sh\necho 'ping: socket: Operation not permitted' >&2\nexit 2\n")
    stand_in.chmod(0o755)
    done = start_peer(tmp_path, str(bin_dir), "--liveness", "icmp")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("peer: error: --liveness icmp: the system ping utility cannot open its socket")
    assert line.endswith("ping: socket: Operation not permitted")
    assert not (tmp_path / "outputfile.txt").exists()


def test_the_app_mode_needs_no_ping(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    # No seed answers at 127.0.0.1:1: the peer gets as far as registering, and fails there.
    done = start_peer(tmp_path, str(empty), "--liveness", "app")
    assert done.returncode == 1
    assert "ping" not in done.stderr and "registered with 0 of 1 seeds" in done.stderr


# --- On loopback -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["icmp", "both"])
def test_on_loopback_icmp_warns_once_and_never_sees_a_crash_which_both_does(network, ping, mode):
    interval, misses = 0.5, 3
    network.start_seeds(1)
    # Gossip goes on for the whole test: it is the clock of the icmp case below.
    peers = network.start_peers(4, "--gossip-interval", str(interval / 2), "--gossip-count", "400",
                                "--ping-interval", str(interval), "--ping-misses", str(misses), "--liveness", mode)

    def linked() -> set:
        return {address for link in network.links() for address in link}

    network.wait_until(lambda: linked() >= {peer.address for peer in peers}, 30, "every peer to be linked")

    def warned() -> dict:
        found: dict = {}
        for event in network.events(logformat.LIVENESS_WARNING):
            found.setdefault(event.node, []).append(event)
        return found

    if mode == "icmp":
        network.wait_until(lambda: len(warned()) == len(peers), 30, "every linked peer to warn")
    victim = max(peers, key=lambda peer: sum(peer.address in link for link in network.links()))
    neighbours = {other for link in network.links() if victim.address in link for other in link} - {victim.address}
    network.kill(victim)

    def reports() -> set:
        return {event.node for event in network.events(logformat.DEAD_NODE_REPORTED)
                if event.address("dead") == victim.address}

    if mode == "both":
        network.wait_until(lambda: reports() == neighbours, misses * interval + 30, "every neighbour's report")
        assert warned() == {}  # its app half sees a crash even on loopback: nothing to warn of
        return

    # icmp: each neighbour goes on (its own clock: two messages a ping interval) for misses + 2
    # ping intervals after the kill, more than it needs to report a death, and reports nothing.
    made_at_kill = {address: len(network.events(logformat.GOSSIP_GENERATED, address)) for address in neighbours}
    network.wait_until(lambda: all(len(network.events(logformat.GOSSIP_GENERATED, address))
                                   >= made_at_kill[address] + 2 * (misses + 2) for address in neighbours),
                       60, "the neighbours to gossip on for misses + 2 ping intervals")
    assert reports() == set()
    assert [event for event in network.events(logformat.PING_MISSED)
            if event.address("neighbour") == victim.address] == []
    # Once each, in the log and on stderr, naming a loopback neighbour.
    assert {peer: len(events) for peer, events in warned().items()} == {peer.address: 1 for peer in peers}
    for peer in peers:
        if peer is victim:
            continue
        lines = [line for line in peer.stderr().splitlines() if line.startswith(WARNING)]
        assert len(lines) == 1 and "is on a loopback address" in lines[0], peer.stderr()
        assert "Traceback" not in peer.stderr()


# --- In network namespaces ---------------------------------------------------------------------


@functools.cache
def namespaces_unavailable() -> str | None:
    return labnet.namespaces_unavailable()


@pytest.fixture
def namespaces(ping) -> None:
    if why := namespaces_unavailable():
        pytest.skip(f"namespace backend: {why}")


def scenario(mode: str, *faults: str) -> Scenario:
    plan = Scenario(3, 6, tuple(parse_fault(text) for text in faults), rng_seed=11, liveness=mode, **TIMINGS)
    return plan.lasting()


_outcomes: dict[tuple[str, str], Result] = {}


def outcome(mode: str, fault: str, tmp_path_factory: pytest.TempPathFactory) -> Result:
    """A lab run in namespaces of ``fault`` with every peer on ``--liveness mode`` (once per module)."""
    if (mode, fault) not in _outcomes:
        directory = tmp_path_factory.mktemp(f"{mode}-{fault.split(':')[0]}")
        lab = Lab(scenario(mode, fault), labnet.Namespaces(), directory / "outputfile.txt", directory,
                  timeout=RUN_TIMEOUT)
        _outcomes[(mode, fault)] = lab.run()
    result = _outcomes[(mode, fault)]
    assert not result.leftovers, f"left behind: {result.leftovers}"
    assert result.outcome in ("complete", "settled"), (result.outcome, result.problem)
    started = [event for event in result.run.events if event.event == logformat.STARTED and event.role == "peer"]
    assert started and {event.fields["liveness"] for event in started} == {mode}
    return result


CUT = "cut:2:5:2"


@pytest.mark.parametrize("mode", ["icmp", "both"])
def test_a_cut_cable_is_seen_by_icmp_and_by_both(namespaces, tmp_path_factory, mode):
    result = outcome(mode, CUT, tmp_path_factory)
    cut = [incident for incident in result.facts.incidents if incident.kind == "cut"]
    assert len(cut) == 2
    # Each side reported the other, within the bounds of lab/verdict.py, and nobody else was.
    failed = [str(result.check(name)) for name in ("cut detected", "no false reports") if not result.check(name).ok]
    assert not failed, "\n".join(failed)
    missed = [event for event in result.run.events if event.event == logformat.PING_MISSED]
    assert missed and all("icmp" in event.fields["failed"].split(",") for event in missed
                          if mode == "icmp")
    assert not [event for event in result.run.events if event.event == logformat.LIVENESS_WARNING]


def test_a_hung_process_still_answers_icmp_and_goes_unseen(namespaces, tmp_path_factory):
    result = outcome("icmp", "hang:2:6", tmp_path_factory)
    [hang] = [incident for incident in result.facts.incidents if incident.kind == "hang"]
    assert hang.end is not None and hang.end - hang.start >= 6  # 6 s: twice a detection time
    assert [event for event in result.run.reports if event.address("dead") == hang.node] == []
    assert [event for event in result.run.events if event.event == logformat.PING_MISSED
            and event.address("neighbour") == hang.node] == []
    detected = result.check("detected")
    assert not detected.ok and "never reported" in detected.detail


@pytest.mark.parametrize("mode", ["icmp", "both"])
def test_the_runners_and_the_lab_pass_the_mode_to_every_peer(mode):
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--peers", type=int)
    add_network_arguments(parser)
    add_run_arguments(parser, default_kill="0")
    plan = make_plan(parser, parser.parse_args(["-n", "3", "--liveness", mode]), default_kill=0)
    argv = plan.peer_args(2)
    assert argv[argv.index("--liveness") + 1] == mode
    default = make_plan(parser, parser.parse_args(["-n", "3"]), default_kill=0).peer_args(0)
    assert default[default.index("--liveness") + 1] == "app"
    assert lab.make_scenario(lab.build_parser().parse_args(["--liveness", mode])).liveness == mode
    assert lab.make_scenario(lab.build_parser().parse_args([])).liveness == "app"


def test_the_pinger_reports_an_echo_reply_off_the_callers_thread(ping):
    pinger = icmp.Pinger(ping_interval=2.0)
    answered: list[bool] = []
    ended = threading.Event()
    try:
        assert pinger.ping(Address("127.0.0.1", 9001), lambda reply: (answered.append(reply), ended.set()))
        assert ended.wait(30), "the ping of 127.0.0.1 did not end"
    finally:
        pinger.stop()
    assert answered == [True]


def test_the_pinger_runs_one_ping_at_a_time_per_neighbour_and_stop_kills_it():
    # A stand-in for a ping still waiting for its reply when the peer stops.
    pinger = icmp.Pinger(ping_interval=120.0, command=lambda ip, wait: ["sleep", "60"])
    answered: list[bool] = []
    neighbour, other = Address("127.0.0.1", 9001), Address("127.0.0.1", 9002)
    try:
        assert pinger.ping(neighbour, answered.append) is True
        assert pinger.ping(neighbour, answered.append) is False  # its last one has not ended
        assert pinger.ping(other, answered.append) is True  # another neighbour's may run meanwhile
        assert pinger.running() == {neighbour, other}
    finally:
        pinger.stop()
    assert pinger.running() == set()  # killed and joined, well before their 60 s
    assert answered == []  # stopped: no result follows
    assert pinger.ping(other, answered.append) is False
