"""Background loops are guarded: an unexpected exception is logged with the loop's name, and the
loop goes on; one that keeps failing stops the node with a one-line error and a non-zero exit."""

from __future__ import annotations

import random
import signal
import threading
from dataclasses import replace

import pytest

from gossipnet.config import LOOP_RESTARTS, PeerSettings
from gossipnet.logs import logformat
from gossipnet.node import peer as peer_module
from gossipnet.node import transport
from gossipnet.node.peer import Peer
from gossipnet.node.transport import NodeFailure, NodeServer
from netharness import wait_for


@pytest.fixture
def node(tmp_path):
    server = NodeServer("127.0.0.1", 0, handler=lambda conn: None)
    log = logformat.NodeLog("peer", server.address, tmp_path / "log.txt", console=False)
    server.log = log
    settings = replace(PeerSettings(auth=False), ping_interval=0.05)
    node = Peer(server, log, seeds=[], settings=settings, rng=random.Random(1))
    server.start()
    try:
        yield node
    finally:
        node.stop()
        log.close()


def failures(node: Peer) -> list[logformat.LogEvent]:
    return [event for event in logformat.parse_log(node.log.path).events if event.event == logformat.LOOP_FAILED]


def test_a_loop_that_fails_once_is_logged_by_name_and_goes_on(node, monkeypatch):
    real = peer_module.LivenessRequest
    calls = []

    def flaky(*args):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("injected")
        return real(*args)

    monkeypatch.setattr(peer_module, "LivenessRequest", flaky)
    node._start(node._ping_loop, "liveness")
    wait_for(lambda: len(calls) >= 3, "the liveness loop to run again after its failure")
    [failed] = failures(node)
    assert failed.fields["loop"] == "liveness"
    assert failed.fields["error"] == "RuntimeError: injected"
    assert failed.fields["restarts_left"] == str(LOOP_RESTARTS)
    assert not node.stopped.is_set() and node.failure.reason is None


def test_a_loop_that_keeps_failing_stops_the_node_with_a_reason(node):
    def broken():
        raise KeyError("always")

    node._start(broken, "gossip")
    assert node.stopped.wait(30), "the node did not stop"
    assert len(failures(node)) == LOOP_RESTARTS + 1
    assert node.failure.reason.startswith(f"the gossip loop failed {LOOP_RESTARTS + 1} times")


@pytest.fixture
def own_signal_handlers():
    """run_until_signalled takes over SIGINT, SIGTERM and SIGHUP, and ignores them once it
    returns, as a node's process ends then: give pytest its own handlers back."""
    signums = transport.SignalWatch.SIGNALS
    saved = [signal.getsignal(signum) for signum in signums]
    yield
    for signum, handler in zip(signums, saved, strict=True):
        signal.signal(signum, handler)


def test_a_failed_loop_makes_the_node_exit_non_zero_with_one_line(tmp_path, capsys, own_signal_handlers):
    stopped = threading.Event()
    failure = NodeFailure(stopped)
    log = logformat.NodeLog("seed", "127.0.0.1:1", tmp_path / "log.txt", console=False)

    def start():
        threading.Thread(target=transport.run_loop, args=("announce", lambda: 1 / 0, log, failure)).start()

    status = transport.run_until_signalled(stopped, start, lambda: None, log, "seed", failure)
    assert status == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seed: error: the announce loop failed")


def test_errors_while_stopping_are_not_logged(tmp_path):
    stopped = threading.Event()
    failure = NodeFailure(stopped)
    log = logformat.NodeLog("peer", "127.0.0.1:1", tmp_path / "log.txt", console=False)

    def body():
        stopped.set()
        raise OSError("socket closed under us")

    transport.run_loop("gossip", body, log, failure)
    log.close()
    assert failure.reason is None
    assert not [e for e in logformat.parse_log(log.path).events if e.event == logformat.LOOP_FAILED]
