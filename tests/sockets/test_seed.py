"""A seed in this process on a free port: registration, links and every dead-node decision."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from gossipnet.config import MAX_LINKS_PER_PEER, SeedSettings
from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.node.framing import LineReader
from gossipnet.node.seed import Seed
from gossipnet.node.transport import NodeServer
from gossipnet.protocol import deadnode
from gossipnet.protocol.auth import Identity, verify
from gossipnet.protocol.peertable import PeerTable
from gossipnet.protocol.wire import (
    NOT_LISTED,
    Address,
    DeadNodeReport,
    Error,
    Keys,
    KeysRequest,
    Leave,
    LinkReport,
    LivenessRequest,
    Ok,
    PeerList,
    PeerListRequest,
    Register,
    RemovalNotice,
    Vouched,
    VouchRequest,
    binding_body,
    encode,
)
from netharness import PROBE_TIMEOUT, unused_address, wait_for


class Responder:
    """A stand-in peer that answers every liveness request with ``answer(request)``."""

    def __init__(self, answer):
        self.server = NodeServer("127.0.0.1", 0, handler=self.handle)
        self.answer = answer
        self.server.start()

    def handle(self, conn):
        while (request := conn.read()) is not None:
            assert isinstance(request, LivenessRequest)
            conn.send(self.answer(request))

    @property
    def address(self) -> Address:
        return self.server.address



def ask(seed: Seed, message):
    return transport.request(seed.address, message)


def decisions(log_path):
    return [(e.fields["decision"], e.fields["reason"]) for e in logformat.parse_log(log_path).events
            if e.event == logformat.DEAD_NODE_DECISION]


A, B, C = (Address("127.0.0.1", port) for port in (9001, 9002, 9003))


def test_registration_returns_the_list_as_it_was_before(seed):
    assert ask(seed, Register(A)) == PeerList(())
    assert ask(seed, Register(B)) == PeerList(((A, 0),))
    assert ask(seed, LinkReport(B, A)) == Ok()
    assert ask(seed, Register(C)) == PeerList(((A, 1), (B, 1)))
    assert ask(seed, PeerListRequest()) == PeerList(((A, 1), (B, 1), (C, 0)))
    # Registering again (a restart) keeps the peer once and forgets its links.
    assert ask(seed, Register(B)) == PeerList(((A, 1), (C, 0)))
    assert ask(seed, PeerListRequest()) == PeerList(((A, 0), (B, 0), (C, 0)))


def test_links_only_from_registered_reporters_and_bounded(seed):
    # The code tells the peer that this seed does not list it (it removed it): register again.
    refusal = ask(seed, LinkReport(A, B))
    assert refusal == Error("not-listed: reporter is not a registered live peer here")
    assert refusal.code == NOT_LISTED
    ask(seed, Register(A))
    with socket.create_connection((seed.address.ip, seed.address.port)) as sock:
        lines = b"".join(encode(LinkReport(A, Address("10.0.0.1", 1000 + i)))
                         for i in range(MAX_LINKS_PER_PEER + 1))
        sock.sendall(lines)
        replies = sock.makefile("rb").read().decode().splitlines()
    assert replies[:MAX_LINKS_PER_PEER] == ["OK"] * MAX_LINKS_PER_PEER
    assert replies[MAX_LINKS_PER_PEER].startswith("ERROR more than")
    assert dict(ask(seed, PeerListRequest()).peers)[A] == MAX_LINKS_PER_PEER


def test_the_table_hands_the_rule_its_facts_and_forgets_reporters_that_left():
    # No sockets: the PeerTable is data.  D claims A, B and C; C is accused itself (by B).
    D, outsider = Address("127.0.0.1", 9004), Address("127.0.0.1", 9999)
    table = PeerTable()
    for peer in (A, B, C, D):
        table.register(peer, None)
    for neighbour in (A, B, C):
        table.record_link(D, neighbour)
    table.record_link(C, B)
    assert isinstance(table.count(table.get(C), DeadNodeReport(C, "1.0", B)), deadnode.Neighbours)
    record = table.get(D)
    report = DeadNodeReport(D, "1.0", A)
    assert table.count(record, report) == deadnode.Neighbours(frozenset({A, B, C}), frozenset({A}), frozenset({C}))
    assert record.reports == {A} and record.last_report == report
    assert table.count(record, DeadNodeReport(D, "2.0", outsider)) == deadnode.Reject(deadnode.NOT_REGISTERED)
    # A reporter that leaves the PL no longer counts, but is lost (the seed then checks D itself);
    # the removal names D, whose count it changed.
    assert table.remove(table.get(A)) == (3, [D])
    assert table.neighbours(record) == deadnode.Neighbours(frozenset({B, C}), frozenset(), frozenset({C}),
                                                           lost=frozenset({A}))
    assert (record.reports, record.lost) == (set(), {A})
    table.cleared(record)  # D answered the seed's check: nothing stands against it
    assert table.neighbours(record).lost == frozenset()
    # A new registration of D is a new incarnation: facts about the old one are gone.
    table.register(D, None)
    assert table.neighbours(record) is None
    assert table.count(record, DeadNodeReport(D, "3.0", B)) == deadnode.Reject(deadnode.GONE)


def test_dead_node_decisions(seed, tmp_path):
    alive = Responder(lambda request: request.reply(alive.address))
    busy = Responder(lambda request: Error("busy: too many connections"))
    dead, lonely = unused_address(), unused_address()
    outsider = Address("127.0.0.1", 9999)
    try:
        for peer in (A, B, C, alive.address, busy.address, dead, lonely):
            ask(seed, Register(peer))
        # Each accused names its neighbours itself; C is nobody's neighbour.
        for accused, neighbours in ((dead, (A, B)), (lonely, (A,)), (alive.address, (A, B)), (busy.address, (A,))):
            for neighbour in neighbours:
                assert ask(seed, LinkReport(accused, neighbour)) == Ok()
        waiting = "waiting for confirmation: 1 of 2 neighbours reported"
        cases = [
            (DeadNodeReport(outsider, "1.0", A), "ignored", "not in the peer list"),
            (DeadNodeReport(A, "1.0", A), "rejected", "a peer cannot report itself"),
            (DeadNodeReport(dead, "1.0", outsider), "rejected", "reporter is not a registered live peer here"),
            (DeadNodeReport(dead, "1.0", C), "rejected",
             "not a neighbour of the accused (by the accused's own link reports)"),
            (DeadNodeReport(dead, "1.0", A), "accepted", waiting),
            (DeadNodeReport(dead, "2.0", A), "accepted", waiting),  # one liar counts once, however often
            (DeadNodeReport(alive.address, "1.0", A), "accepted", waiting),
            (DeadNodeReport(alive.address, "1.0", B), "rejected", "accused answered the seed's liveness check"),
            (DeadNodeReport(busy.address, "1.0", A), "rejected", "accused answered the seed's liveness check"),
            (DeadNodeReport(dead, "1.0", B), "removed",
             "2 of 2 neighbours reported and the seed's liveness check failed"),
            (DeadNodeReport(dead, "3.0", B), "ignored", "not in the peer list"),
            # A peer with a single neighbour: that neighbour's report is all there can be.
            (DeadNodeReport(lonely, "1.0", A), "removed",
             "1 of 1 neighbours reported and the seed's liveness check failed"),
            # The accused answered, so the reports before are void: one new report is not enough.
            (DeadNodeReport(alive.address, "2.0", A), "accepted", waiting),
        ]
        for report, decision, reason in cases:
            assert ask(seed, report) == Ok(f"{decision}: {reason}"), report
        assert decisions(tmp_path / "log.txt") == [(decision, reason) for _, decision, reason in cases]
        listed = {address for address, _ in ask(seed, PeerListRequest()).peers}
        assert listed == {A, B, C, alive.address, busy.address}
    finally:
        alive.server.stop()
        busy.server.stop()


def signing_responder(identity: Identity) -> Responder:
    """A stand-in peer holding ``identity`` (replaceable, as a restart would)."""
    responder = Responder(lambda request: request.reply(responder.address).signed(responder.identity))
    responder.identity = identity
    return responder


def test_a_key_is_bound_only_to_an_address_that_proves_it_holds_it(seed, tmp_path):
    mine, other = Identity(), Identity()
    holder = signing_responder(mine)
    try:
        address = holder.address
        nobody = unused_address()
        refused = "did not prove it holds the key"
        assert ask(seed, Register(nobody, mine.key)) == Error(f"refused: {nobody} {refused}")
        assert ask(seed, Register(address, other.key)) == Error(f"refused: {address} {refused}")
        assert ask(seed, Register(address, mine.key)) == PeerList(())
        assert ask(seed, PeerListRequest()).keys == {address: mine.key}
        assert ask(seed, KeysRequest((address, nobody))) == Keys(((address, mine.key),))
        # A second key for the live address is refused, with or without proof of its own.
        assert ask(seed, Register(address, other.key)) == Error(f"refused: {address} is live with a different key")
        assert ask(seed, Register(address)) == Error(f"refused: {address} is live with a different key")
        # The holder restarts with a new key on the same address: the new key is bound.
        holder.identity = other
        assert isinstance(ask(seed, Register(address, other.key)), PeerList)
        assert ask(seed, PeerListRequest()).keys == {address: other.key}
        # Both stay on record, so messages signed before the restart still verify.
        assert ask(seed, KeysRequest((address,))) == Keys(((address, mine.key), (address, other.key)))
        # Each lookup answered is one KEYS_LOOKUP line (the bench counts them): what was asked, what was sent.
        lookups = [(e.fields["asked"], e.fields["found"]) for e in events_of(tmp_path / "log.txt",
                                                                             logformat.KEYS_LOOKUP)]
        assert lookups == [("2", "1"), ("1", "2")]
    finally:
        holder.server.stop()


def test_by_default_a_seed_registers_only_peers_with_a_key(seed):
    seed.settings = SeedSettings(probe_timeout=PROBE_TIMEOUT)  # the default: authentication on
    reply = ask(seed, Register(A))
    assert isinstance(reply, Error) and reply.reason.startswith("refused: this network signs its messages")
    assert ask(seed, PeerListRequest()) == PeerList(())


def test_reports_from_a_peer_with_a_key_must_carry_its_signature(seed):
    reporter_id = Identity()
    reporter = signing_responder(reporter_id)
    dead = unused_address()
    try:
        ask(seed, Register(reporter.address, reporter_id.key))
        ask(seed, Register(dead))
        assert ask(seed, LinkReport(reporter.address, dead)) == Error("unsigned, but the reporter has a key")
        assert ask(seed, LinkReport(reporter.address, dead).signed(Identity())) == Error("bad signature")
        assert ask(seed, LinkReport(reporter.address, dead).signed(reporter_id)) == Ok()
        assert ask(seed, LinkReport(dead, reporter.address)) == Ok()
        report = DeadNodeReport(dead, "1.0", reporter.address)
        assert ask(seed, report) == Ok("rejected: unsigned, but the reporter has a key")
        assert ask(seed, report.signed(Identity())) == Ok("rejected: bad signature")
        assert ask(seed, report.signed(reporter_id)).detail.startswith("removed: 1 of 1 neighbours")
    finally:
        reporter.server.stop()


def test_a_removal_is_announced_and_each_seed_checks_it_itself(tmp_path):
    config = tmp_path / "config.txt"
    servers = [NodeServer("127.0.0.1", 0, handler=lambda conn: None) for _ in range(2)]
    log = logformat.NodeLog("seed", servers[0].address, tmp_path / "log.txt", console=False)
    for server in servers:
        server.log = log
    settings = SeedSettings(probe_timeout=PROBE_TIMEOUT, auth=False)
    first, second = (Seed(server, log, settings, config=str(config)) for server in servers)
    config.write_text(f"{first.address}\n{second.address}\n")
    alive = Responder(lambda request: request.reply(alive.address))
    dead = unused_address()
    for server in servers:
        server.start()
    try:
        for node in (first, second):
            for peer in (A, dead, alive.address):
                ask(node, Register(peer))
        ask(first, LinkReport(dead, A))
        assert ask(first, DeadNodeReport(dead, "1.0", A)).detail.startswith("removed")
        deadline = time.monotonic() + 10
        while dead in dict(ask(second, PeerListRequest()).peers):
            assert time.monotonic() < deadline, "the second seed never followed"
            time.sleep(0.02)  # polling interval, not synchronisation
        # A notice is a hint, not an order: a live peer stays, and strangers are not heard.
        assert ask(second, RemovalNotice(first.address, alive.address)) == Ok(
            "rejected: accused answered the seed's liveness check")
        assert ask(second, RemovalNotice(Address("127.0.0.1", 9999), A)) == Ok(
            "rejected: sender is not a seed in the config")
        assert set(dict(ask(second, PeerListRequest()).peers)) == {A, alive.address}
        notices = [(e.fields["decision"], e.fields["dead"]) for e in logformat.parse_log(tmp_path / "log.txt").events
                   if e.event == logformat.REMOVAL_NOTICE]
        assert ("removed", str(dead)) in notices
    finally:
        for server in servers:
            server.stop()
        alive.server.stop()
        log.close()


def test_concurrent_registrations_each_see_a_consistent_list(seed):
    peers = [Address("127.0.0.1", 20000 + i) for i in range(40)]
    replies = {}

    def register(peer):
        replies[peer] = {address for address, _ in ask(seed, Register(peer)).peers}

    threads = [threading.Thread(target=register, args=(peer,)) for peer in peers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Registrations are serialised: the lists are strictly nested, one new peer each.
    ordered = sorted(peers, key=lambda peer: len(replies[peer]))
    for position, peer in enumerate(ordered):
        assert replies[peer] == set(ordered[:position])


# --- Seed connections (PROTOCOL.md §3.7) and looking again (§6.3) ---------------------------


def hold(seed: Seed, peer: Address, *claims: Address) -> tuple[socket.socket, LineReader]:
    """Register ``peer`` on a connection it keeps, as a peer does, and report its links on it."""
    sock = socket.create_connection((seed.address.ip, seed.address.port), timeout=10)
    reader = LineReader(sock)
    sock.sendall(encode(Register(peer)))
    assert isinstance(reader.read_message(), PeerList)
    for claim in claims:
        sock.sendall(encode(LinkReport(peer, claim)))
        assert reader.read_message() == Ok()
    return sock, reader


def events_of(log_path, name: str) -> list[logformat.LogEvent]:
    return [e for e in logformat.parse_log(log_path).events if e.event == name]


def listed(seed: Seed) -> set[Address]:
    return {address for address, _ in ask(seed, PeerListRequest()).peers}


ENDED = "its connection to the seed ended"


def test_a_held_connection_that_ends_removes_nobody_but_then_one_report_is_enough(seed, tmp_path):
    dead = unused_address()
    for peer in (A, B):
        ask(seed, Register(peer))
    sock, _ = hold(seed, dead, A, B)
    sock.close()  # the process died: its connection ends
    wait_for(lambda: events_of(tmp_path / "log.txt", logformat.PEER_DISCONNECTED), "PEER_DISCONNECTED")
    [ended] = events_of(tmp_path / "log.txt", logformat.PEER_DISCONNECTED)
    assert (ended.address("peer"), ended.fields["accused"]) == (dead, "no")
    assert dead in listed(seed)  # never a removal by itself
    # Two neighbours, but the seed saw the connection go: one report, and its own check, decide.
    assert ask(seed, DeadNodeReport(dead, "1.0", A)) == Ok(
        f"removed: 1 of 2 neighbours reported, {ENDED}, and the seed's liveness check failed")
    # A peer that never held a connection (one request per connection) still needs two.
    lonely = unused_address()
    ask(seed, Register(lonely))
    for claim in (A, B):
        ask(seed, LinkReport(lonely, claim))
    assert ask(seed, DeadNodeReport(lonely, "1.0", A)) == Ok(
        "accepted: waiting for confirmation: 1 of 2 neighbours reported")
    assert [e.address("peer") for e in events_of(tmp_path / "log.txt", logformat.PEER_DISCONNECTED)] == [dead]


def test_an_accused_peer_whose_connection_ends_is_checked_at_once(seed, tmp_path):
    alive = Responder(lambda request: request.reply(alive.address))
    dead = unused_address()
    try:
        for peer in (A, B):
            ask(seed, Register(peer))
        held = {peer: hold(seed, peer, A, B)[0] for peer in (dead, alive.address)}
        waiting = Ok("accepted: waiting for confirmation: 1 of 2 neighbours reported")
        for peer, sock in held.items():
            assert ask(seed, DeadNodeReport(peer, "1.0", A)) == waiting
            sock.close()
        wait_for(lambda: dead not in listed(seed), "the dead peer's removal")
        wait_for(lambda: len(decisions(tmp_path / "log.txt")) == 4, "both looks again")
        assert sorted(decisions(tmp_path / "log.txt")[2:]) == [
            ("rejected", "accused answered the seed's liveness check"),
            ("removed", f"1 of 2 neighbours reported, {ENDED}, and the seed's liveness check failed")]
        assert alive.address in listed(seed)
        # Until it registers again, one report is enough for a check, which it answers again.
        assert ask(seed, DeadNodeReport(alive.address, "2.0", B)) == Ok(
            "rejected: accused answered the seed's liveness check")
        assert alive.address in listed(seed)
    finally:
        alive.server.stop()


@pytest.mark.parametrize("accused_alive", [False, True], ids=["dead", "alive"])
def test_an_accusation_whose_only_counting_reporter_dies_is_checked_by_the_seed_itself(seed, tmp_path,
                                                                                      accused_alive):
    # X claims R and B; R reports X (1 of 2: B is silent and not accused), then R dies: Q, its
    # only neighbour, reports it and the seed removes it.  No one else will report X.
    responder = Responder(lambda request: request.reply(responder.address)) if accused_alive else None
    accused = responder.address if responder else unused_address()
    reporter, q = unused_address(), Address("127.0.0.1", 9004)
    try:
        for peer in (B, q):
            ask(seed, Register(peer))
        held, reader = hold(seed, accused, reporter, B)  # X keeps its connection: no sign of a death
        ask(seed, Register(reporter))
        ask(seed, LinkReport(reporter, q))
        assert ask(seed, DeadNodeReport(accused, "1.0", reporter)) == Ok(
            "accepted: waiting for confirmation: 1 of 2 neighbours reported")
        assert ask(seed, DeadNodeReport(reporter, "1.0", q)).detail.startswith("removed: 1 of 1")
        wait_for(lambda: len(decisions(tmp_path / "log.txt")) == 3, "the seed's own look at the accused")
        if accused_alive:
            assert decisions(tmp_path / "log.txt")[2] == ("rejected", "accused answered the seed's liveness check")
            assert accused in listed(seed)
            # Its one neighbour left is all there can be: a report from it, and the seed checks again.
            assert ask(seed, DeadNodeReport(accused, "2.0", B)) == Ok(
                "rejected: accused answered the seed's liveness check")
            assert accused in listed(seed)
        else:
            assert decisions(tmp_path / "log.txt")[2] == (
                "removed", "0 of 1 neighbours reported, 1 more reported and then left, "
                           "and the seed's liveness check failed")
            assert accused not in listed(seed)
            held.settimeout(10)
            assert reader.read_line() is None  # a removed peer's seed connection is closed
    finally:
        held.close()
        if responder:
            responder.server.stop()


def test_a_peer_registering_again_with_its_key_keeps_its_place(seed, tmp_path):
    identity = Identity()
    holder = signing_responder(identity)
    try:
        ask(seed, Register(A))
        assert isinstance(ask(seed, Register(holder.address, identity.key)), PeerList)
        assert ask(seed, LinkReport(holder.address, A).signed(identity)) == Ok()
        record = seed.table.get(holder.address)
        # Its connection was lost; it registers again on a new one, with the same key.
        assert ask(seed, Register(holder.address, identity.key)) == PeerList(((A, 1),))
        assert seed.table.get(holder.address) is record  # same incarnation
        assert dict(ask(seed, PeerListRequest()).peers) == {A: 1, holder.address: 1}  # links kept
        # A new key is a new process: a new incarnation, without links.
        holder.identity = other = Identity()
        assert isinstance(ask(seed, Register(holder.address, other.key)), PeerList)
        assert seed.table.get(holder.address) is not record
        assert dict(ask(seed, PeerListRequest()).peers) == {A: 0, holder.address: 0}
        again = [e.fields["again"] for e in events_of(tmp_path / "log.txt", logformat.PEER_REGISTERED)
                 if e.address("peer") == holder.address]
        assert again == ["no", "yes", "yes"]
        assert len([e for e in events_of(tmp_path / "log.txt", logformat.PL_ADDED)]) == 2
    finally:
        holder.server.stop()


def test_a_peer_that_leaves_over_its_seed_connection_is_out_of_the_list_and_not_dead(seed, tmp_path):
    gone = unused_address()
    for peer in (A, B):
        ask(seed, Register(peer))
    sock, reader = hold(seed, gone, A, B)
    try:
        sock.sendall(encode(Leave(gone)))
        assert reader.read_message() == Ok("left")
    finally:
        sock.close()
    assert listed(seed) == {A, B}
    [left] = events_of(tmp_path / "log.txt", logformat.PEER_LEFT)
    assert (left.address("peer"), left.fields["size"]) == (gone, "2")
    # Not a death: no removal line, and its neighbours' links to it are gone with it.
    assert not events_of(tmp_path / "log.txt", logformat.PL_REMOVED)
    assert ask(seed, PeerListRequest()) == PeerList(((A, 0), (B, 0)))
    # A report that comes later finds nobody to remove.
    assert ask(seed, DeadNodeReport(gone, "1.0", A)) == Ok(f"ignored: {deadnode.NOT_IN_PL}")
    assert not events_of(tmp_path / "log.txt", logformat.PL_REMOVED)


def test_only_the_connection_a_peer_registered_on_can_take_it_out(seed, tmp_path):
    """SECURITY.md: nobody else can make a seed drop a live peer with LEAVE."""
    victim = unused_address()
    ask(seed, Register(A))
    sock, _ = hold(seed, victim, A)
    try:
        refusal = Error("refused: a peer leaves only over the seed connection it registered on")
        assert ask(seed, Leave(victim)) == refusal  # another connection
        other, other_reader = hold(seed, B)  # a connection on which another peer registered
        try:
            other.sendall(encode(Leave(victim)))
            assert other_reader.read_message() == refusal
        finally:
            other.close()
        assert ask(seed, Leave(Address("127.0.0.1", 9999))) == refusal  # a peer never listed
        assert victim in listed(seed)
        assert not events_of(tmp_path / "log.txt", logformat.PEER_LEFT)
    finally:
        sock.close()
def test_a_seed_vouches_only_for_the_key_it_bound_and_signs_with_its_own_key(seed, tmp_path):
    server = NodeServer("127.0.0.1", 0, handler=lambda conn: None)
    log = logformat.NodeLog("seed", server.address, tmp_path / "auth-log.txt", console=False)
    server.log = log
    signing = Seed(server, log, SeedSettings(probe_timeout=PROBE_TIMEOUT))
    server.start()
    mine = Identity()
    holder = signing_responder(mine)
    try:
        nobody = unused_address()
        assert ask(signing, VouchRequest(nobody)) == Error(f"no key bound to {nobody}")
        assert isinstance(ask(signing, Register(holder.address, mine.key)), PeerList)
        vouched = ask(signing, VouchRequest(holder.address))
        assert isinstance(vouched, Vouched)
        assert (vouched.seed_key, vouched.peer, vouched.key, vouched.vouch.seed) == (
            signing.identity.key, holder.address, mine.key, signing.address)
        body = binding_body(holder.address, mine.key, vouched.vouch.when)
        assert verify(signing.identity.key, body, vouched.vouch.signature)
        assert not verify(signing.identity.key, binding_body(holder.address, Identity().key, vouched.vouch.when),
                          vouched.vouch.signature)
        # A --no-auth seed holds no key to vouch with.
        assert ask(seed, VouchRequest(holder.address)) == Error(
            "this seed vouches for no keys (it runs with --no-auth)")
    finally:
        holder.server.stop()
        server.stop()
        log.close()
