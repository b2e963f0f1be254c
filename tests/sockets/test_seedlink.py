"""A peer's held seed connection (seedlink.py) against a stand-in seed on a free port.

The stand-in answers as a seed does and records what it was sent, on which
connection; the tests close its connections or make it silent to see the
link notice, log SEED_LOST and register again.
"""

from __future__ import annotations

import queue
import random
import threading

import pytest

from gossipnet.logs import logformat
from gossipnet.node.seedlink import SeedLink
from gossipnet.node.transport import Connection, NodeServer
from gossipnet.protocol.wire import (
    Address,
    Keys,
    KeysRequest,
    LivenessRequest,
    Message,
    PeerList,
    ProtocolError,
    Register,
)

PEER = Address("127.0.0.1", 9001)


class StandInSeed:
    """Answers REGISTER with an empty PEER_LIST, GET_KEYS with no keys and keepalives as a seed does;
    ``silent`` makes it stop answering.  ``lines`` gets (connection number, message) for each line."""

    def __init__(self) -> None:
        self.server = NodeServer("127.0.0.1", 0, handler=self.handle)
        self.lines: queue.Queue[tuple[int, Message]] = queue.Queue()
        self.connections: list[Connection] = []
        self.silent = threading.Event()
        self.server.start()

    @property
    def address(self) -> Address:
        return self.server.address

    def handle(self, conn: Connection) -> None:
        self.connections.append(conn)
        number = len(self.connections)
        while (message := conn.read()) is not None:
            self.lines.put((number, message))
            if self.silent.is_set():
                continue
            if isinstance(message, Register):
                conn.send(PeerList(()))
            elif isinstance(message, KeysRequest):
                conn.send(Keys(()))
            elif isinstance(message, LivenessRequest):
                conn.send(message.reply(self.address))

    def next_line(self, timeout: float = 10) -> tuple[int, Message]:
        return self.lines.get(timeout=timeout)


@pytest.fixture
def seed():
    node = StandInSeed()
    try:
        yield node
    finally:
        node.server.stop()


@pytest.fixture
def log(tmp_path):
    node_log = logformat.NodeLog("peer", PEER, tmp_path / "log.txt", console=False)
    try:
        yield node_log
    finally:
        node_log.close()


def events(tmp_path, name: str) -> list[logformat.LogEvent]:
    return [event for event in logformat.parse_log(tmp_path / "log.txt").events if event.event == name]


def make_link(seed: StandInSeed, log, keepalive: float, rejoins: queue.Queue | None = None) -> SeedLink:
    def rejoin(link: SeedLink, attempt: int) -> bool:  # as peer.Peer._rejoin_seed, less the logging
        try:
            reply = link.register(Register(PEER), timeout=1)
        except (OSError, ProtocolError):
            reply = None
        if rejoins is not None:
            rejoins.put((attempt, reply))
        return isinstance(reply, PeerList)

    return SeedLink(seed.address, keepalive, lambda: LivenessRequest(PEER, "1.0"), rejoin, log, random.Random(1))


def start(link: SeedLink) -> list[threading.Thread]:
    threads: list[threading.Thread] = []

    def run(body, name):
        thread = threading.Thread(target=body, name=name, daemon=True)
        threads.append(thread)
        thread.start()

    link.start(run)
    link.start(run)  # once, however often asked
    return threads


def test_requests_go_over_the_connection_the_peer_registered_on(seed, log):
    link = make_link(seed, log, keepalive=30)
    assert link.ask(KeysRequest((PEER,)), 3) is None  # nothing to ask on before it registers
    assert link.register(Register(PEER)) == PeerList(())
    assert seed.next_line() == (1, Register(PEER))
    [thread] = start(link)
    try:
        for _ in range(3):
            assert link.ask(KeysRequest((PEER,)), 3) == Keys(())
            assert seed.next_line() == (1, KeysRequest((PEER,)))
        assert len(seed.connections) == 1
    finally:
        link.close()
        link.close()  # twice is harmless
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_an_idle_connection_carries_keepalives(seed, log):
    link = make_link(seed, log, keepalive=0.2)
    link.register(Register(PEER))
    seed.next_line()
    [thread] = start(link)
    try:
        for _ in range(2):
            number, message = seed.next_line()
            assert number == 1 and isinstance(message, LivenessRequest)
        assert link.connected
    finally:
        link.close()
    thread.join(timeout=10)


def test_a_seed_that_closes_the_connection_is_noticed_at_once_and_registered_with_again(seed, log, tmp_path):
    rejoins: queue.Queue = queue.Queue()
    link = make_link(seed, log, keepalive=60, rejoins=rejoins)  # no keepalive could notice it
    link.register(Register(PEER))
    seed.next_line()
    [thread] = start(link)
    try:
        seed.connections[0].close()  # as a seed that restarts, or removed this peer
        attempt, reply = rejoins.get(timeout=10)
        assert (attempt, reply) == (1, PeerList(()))
        assert seed.next_line() == (2, Register(PEER))  # on a new connection
        assert link.ask(KeysRequest((PEER,)), 3) == Keys(())
        assert seed.next_line() == (2, KeysRequest((PEER,)))
        [lost] = events(tmp_path, logformat.SEED_LOST)
        assert lost.fields == {"seed": str(seed.address), "reason": "closed by the seed"}
    finally:
        link.close()
    thread.join(timeout=10)


def test_a_seed_that_goes_silent_is_lost_within_a_keepalive_and_the_peer_keeps_trying(seed, log, tmp_path):
    rejoins: queue.Queue = queue.Queue()
    link = make_link(seed, log, keepalive=0.2, rejoins=rejoins)
    link.register(Register(PEER))
    seed.next_line()
    [thread] = start(link)
    try:
        seed.silent.set()  # it reads, and answers nothing: hung
        attempt, _ = rejoins.get(timeout=30)  # a keepalive, its 3 s, and a REGISTER unanswered
        assert attempt == 1
        assert not link.connected
        lost = events(tmp_path, logformat.SEED_LOST)
        assert lost and lost[0].fields["reason"] == "timed out waiting for a reply"
        seed.silent.clear()
        while (item := rejoins.get(timeout=30))[1] != PeerList(()):
            assert item[0] > attempt  # attempts go on, counted
            attempt = item[0]
        assert link.connected
    finally:
        link.close()
    thread.join(timeout=15)


def test_a_request_waiting_on_a_lost_connection_gets_no_reply(seed, log):
    link = make_link(seed, log, keepalive=60, rejoins=queue.Queue())
    link.register(Register(PEER))
    seed.next_line()
    [thread] = start(link)
    try:
        seed.silent.set()
        assert link.ask(KeysRequest((PEER,)), 0.3) is None
    finally:
        link.close()
    thread.join(timeout=15)
