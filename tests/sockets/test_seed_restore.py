"""A seed in this process with a state file: written before it answers, restored and checked when it starts again."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from gossipnet.config import SeedSettings
from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.node.seed import Seed
from gossipnet.node.seedstate import SeedState
from gossipnet.node.transport import NodeServer
from gossipnet.protocol import restore
from gossipnet.protocol.auth import Identity
from gossipnet.protocol.wire import (
    NOT_LISTED,
    Error,
    Keys,
    KeysRequest,
    LinkReport,
    Ok,
    PeerList,
    PeerListRequest,
    Register,
)
from netharness import unused_address, wait_for


class Holder:
    """A stand-in peer that answers liveness requests signed with ``identity`` (replaceable, as a restart would)."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.server = NodeServer("127.0.0.1", 0, handler=self.handle)
        self.address = self.server.address
        self.server.start()

    def handle(self, conn) -> None:
        while (request := conn.read()) is not None:
            conn.send(request.reply(self.address).signed(self.identity))



def ask(seed: Seed, message):
    return transport.request(seed.address, message)


@contextlib.contextmanager
def seed_with_state(tmp_path, port: int = 0, auth: bool = True,
                    check: bool = True) -> Iterator[tuple[Seed, SeedState]]:
    """A seed on ``port`` keeping its state in tmp_path/state.sqlite, started as seed.py does
    (without ``check``, it serves but does not check the peers it restored)."""
    state = SeedState.open(tmp_path / "state.sqlite")
    server = NodeServer("127.0.0.1", port, handler=lambda conn: None)
    log = logformat.NodeLog("seed", server.address, tmp_path / "log.txt", console=False)
    server.log = log
    state.claim(server.address)
    seed = Seed(server, log, SeedSettings(probe_timeout=1.0, auth=auth), journal=state)
    seed.restore(state.load())
    seed.start() if check else server.start()
    try:
        yield seed, state
    finally:
        seed.stop()
        log.close()
        state.close()


def events(tmp_path, name: str) -> list[logformat.LogEvent]:
    return [event for event in logformat.parse_log(tmp_path / "log.txt").events if event.event == name]


def test_a_seed_started_again_lists_only_the_peers_that_answer_with_their_key(tmp_path):
    alive, restarted, gone = Identity(), Identity(), Identity()
    peers = {identity: Holder(identity) for identity in (alive, restarted, gone)}
    try:
        with seed_with_state(tmp_path) as (first, _):
            for identity, responder in peers.items():
                assert isinstance(ask(first, Register(responder.address, identity.key)), PeerList)
                # Written before the answer: another reader of the file sees it already.
                with contextlib.closing(sqlite3.connect(tmp_path / "state.sqlite")) as db:
                    assert (str(responder.address),) in db.execute("SELECT address FROM peers").fetchall()
            a, b, c = (peers[identity].address for identity in (alive, restarted, gone))
            assert ask(first, LinkReport(a, b).signed(alive)) == Ok()
            assert ask(first, LinkReport(a, c).signed(alive)) == Ok()
            address = first.address
        # While the seed was down: one peer restarted with a new key, one died.
        peers[restarted].identity = Identity()
        peers[gone].server.stop()
        with seed_with_state(tmp_path, port=address.port) as (second, _):
            wait_for(lambda: not second.table.restored(), "the restore checks")
            assert ask(second, PeerListRequest()) == PeerList(((a, 0),), {a: alive.key})
            assert ask(second, KeysRequest((a, b, c))) == Keys(((a, alive.key), (b, restarted.key), (c, gone.key)))
            refusal = ask(second, LinkReport(c, a).signed(gone))
            assert isinstance(refusal, Error) and refusal.code == NOT_LISTED
        [listed] = events(tmp_path, logformat.PL_ADDED)[3:]
        assert listed.fields == {"peer": str(a), "size": "1", "restored": "yes"}
        dropped = {event.fields["peer"]: event.fields["reason"]
                   for event in events(tmp_path, logformat.RESTORE_DROPPED)}
        assert dropped == {str(b): restore.NOT_PROVED, str(c): restore.NO_ANSWER}
    finally:
        for responder in peers.values():
            responder.server.stop()


def test_a_restored_peer_registering_before_its_check_is_simply_registered(tmp_path):
    nobody = unused_address()
    with seed_with_state(tmp_path, auth=False) as (first, _):
        ask(first, Register(nobody))
        address = first.address
    with seed_with_state(tmp_path, port=address.port, auth=False, check=False) as (seed, _):
        assert ask(seed, PeerListRequest()) == PeerList(())
        assert ask(seed, Register(nobody)) == PeerList(())
        seed.check_restored(nobody)  # fails, but the peer registered meanwhile: nothing changes
        assert ask(seed, PeerListRequest()) == PeerList(((nobody, 0),))
    assert not events(tmp_path, logformat.RESTORE_DROPPED)


def test_a_seed_that_cannot_write_its_state_refuses_the_change_and_stops(tmp_path):
    with seed_with_state(tmp_path, auth=False) as (seed, state):
        state.close()  # any change now fails to be written
        reply = ask(seed, Register(unused_address()))
        assert isinstance(reply, Error) and reply.reason.startswith("the seed cannot record this:")
        assert seed.failure.stopping.is_set() and "is closed" in seed.failure.reason
        assert ask(seed, PeerListRequest()) == PeerList(())
