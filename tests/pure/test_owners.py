"""The owners of a peer's state, with no sockets: the link table (linktable.py) and the key wait (keywait.py)."""

from __future__ import annotations

import pytest

from gossipnet.node import keywait
from gossipnet.node.keywait import KeyWait
from gossipnet.node.link import Link
from gossipnet.node.linktable import LinkTable
from gossipnet.protocol import wire
from gossipnet.protocol.auth import Identity
from gossipnet.protocol.wire import Address, GossipMessage, KeyBinding, ProtocolError, Vouch, binding_body, encode

SMALL = Address("127.0.0.1", 9001)
LARGE = Address("127.0.0.1", 9002)
OTHER = Address("127.0.0.1", 9003)


class FakeConn:
    """What a Link needs of a connection; it never touches a socket."""

    def __init__(self) -> None:
        self.closed = False

    def send_nowait(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        self.closed = True


def link(neighbour: Address, initiator: bool = True, ping_misses: int = 3) -> Link:
    return Link(neighbour, FakeConn(), initiator, ping_misses)


def nothing() -> None:
    pass


# --- The link table -----------------------------------------------------------------


def test_an_installed_link_is_the_neighbours_working_link():
    table = LinkTable(SMALL)
    first = link(LARGE)
    assert table.install(first, nothing) == (True, None)
    assert table.get(LARGE) is first and table.is_current(first)
    assert table.linked(LARGE) and table.working() == table.neighbours() == {LARGE}
    assert table.stale() == set()


def test_a_second_link_is_refused_while_a_working_one_stands_and_is_not_greeted():
    table = LinkTable(SMALL)
    first, second = link(LARGE), link(LARGE, initiator=False)
    table.install(first, nothing)
    greeted = []
    assert table.install(second, lambda: greeted.append(True)) == (False, None)
    assert greeted == [] and table.get(LARGE) is first


def test_a_new_link_replaces_a_closed_one_and_hands_it_back():
    table = LinkTable(SMALL)
    stale, fresh = link(LARGE), link(LARGE, initiator=False)
    table.install(stale, nothing)
    stale.conn.close()
    assert not table.linked(LARGE) and table.stale() == {LARGE} and table.working() == set()
    assert table.install(fresh, nothing) == (True, stale)
    assert table.get(LARGE) is fresh and table.working() == {LARGE}
    # The stale link's verdict (dead, cut) no longer applies: removing it removes nothing.
    assert not table.remove(stale)
    assert table.get(LARGE) is fresh


def test_simultaneous_dials_keep_the_link_the_smaller_address_opened():
    # The smaller end dials and refuses the larger end's link meanwhile.
    small = LinkTable(SMALL)
    assert small.start_dial(LARGE)
    assert small.install(link(LARGE, initiator=False), nothing) == (False, None)
    mine = link(LARGE, initiator=True)
    assert small.install(mine, nothing) == (True, None)
    assert small.get(LARGE) is mine
    # The larger end dials too, but accepts the smaller end's link.
    large = LinkTable(LARGE)
    assert large.start_dial(SMALL)
    theirs = link(SMALL, initiator=False)
    assert large.install(theirs, nothing) == (True, None)
    # Its own dial then finds the link there: it is refused, and the dial ends linked.
    assert large.install(link(SMALL, initiator=True), nothing) == (False, None)
    assert large.end_dial(SMALL) and large.get(SMALL) is theirs


def test_a_dial_ended_lets_the_neighbours_link_in():
    table = LinkTable(SMALL)
    assert table.start_dial(LARGE)
    assert not table.end_dial(LARGE)  # no link came of it
    accepted = link(LARGE, initiator=False)
    assert table.install(accepted, nothing) == (True, None)
    assert not table.start_dial(LARGE)  # linked: no dial


def test_greet_runs_under_the_tables_lock_before_the_link_is_in_the_table():
    table = LinkTable(SMALL)
    new = link(LARGE, initiator=False)
    seen = []
    table.install(new, lambda: seen.append((table._lock.locked(), LARGE in table._links)))
    assert seen == [(True, False)]  # nobody could find the link and send on it before its greeting
    assert table.get(LARGE) is new


def test_remove_takes_out_only_the_current_link():
    table = LinkTable(SMALL)
    current = link(LARGE)
    table.install(current, nothing)
    assert table.remove(current)
    assert table.get(LARGE) is None and not table.linked(LARGE)
    assert not table.remove(current)  # already gone


def test_cut_takes_out_whatever_link_the_neighbour_has():
    table = LinkTable(SMALL)
    current = link(LARGE)
    table.install(current, nothing)
    assert table.cut(LARGE) is current
    assert table.cut(LARGE) is None and table.neighbours() == set()


def test_a_closed_table_installs_nothing_and_hands_back_every_link():
    table = LinkTable(SMALL)
    one, two = link(LARGE), link(OTHER)
    table.install(one, nothing)
    table.install(two, nothing)
    assert set(table.close()) == {one, two}
    greeted = []
    assert table.install(link(Address("127.0.0.1", 9004)), lambda: greeted.append(True)) == (False, None)
    assert greeted == []


def test_tick_counts_misses_per_link_and_any_line_resets_them():
    table = LinkTable(SMALL)
    quiet, chatty = link(LARGE, ping_misses=2), link(OTHER, ping_misses=2)
    table.install(quiet, nothing)
    table.install(chatty, nothing)

    def verdicts():
        return {tick.link.neighbour: (tick.dead, tick.misses) for tick in table.tick()}

    assert verdicts() == {LARGE: (False, 0), OTHER: (False, 0)}  # the first requests go out
    table.replied(chatty)
    assert verdicts() == {LARGE: (False, 1), OTHER: (False, 0)}
    table.replied(chatty)
    assert verdicts() == {LARGE: (True, 2), OTHER: (False, 0)}


# --- The key wait -------------------------------------------------------------------


def gossip(origin: Address, number: int) -> GossipMessage:
    return GossipMessage(origin, f"1700000000.{number}", number)


def test_a_message_whose_origin_has_a_key_is_not_held():
    wait = KeyWait()
    wait.learn([(OTHER, "k1")])
    keys = wait.keys_or_hold(gossip(OTHER, 1), LARGE)
    assert keys == {"k1"}
    wait.learn([(OTHER, "k2")])  # a restart's new key: the copy handed out does not change under its reader
    assert keys == {"k1"} and wait.keys_of(OTHER) == {"k1", "k2"}
    assert wait.origins(10) == [] and not wait.wanted.is_set()


def test_a_message_without_its_origins_key_is_held_and_asks_for_a_lookup():
    wait = KeyWait()
    assert wait.keys_or_hold(gossip(OTHER, 1), LARGE) is None
    assert wait.wanted.is_set() and wait.origins(10) == [OTHER]


def test_one_neighbour_may_have_only_so_many_messages_waiting(monkeypatch):
    monkeypatch.setattr(keywait, "MAX_UNVERIFIED_PER_NEIGHBOUR", 2)
    wait = KeyWait()
    wait.keys_or_hold(gossip(OTHER, 1), LARGE)
    wait.hold(gossip(OTHER, 2), LARGE)
    with pytest.raises(ProtocolError):
        wait.keys_or_hold(gossip(OTHER, 3), LARGE)
    wait.keys_or_hold(gossip(OTHER, 3), SMALL)  # another neighbour's count is its own
    # Settling frees the count: the neighbour may have messages waiting again.
    released, _ = wait.settle([OTHER], [(OTHER, "k")], every_seed_answered=True)
    assert len(released) == 3
    wait.hold(gossip(OTHER, 4), LARGE)
    wait.hold(gossip(OTHER, 5), LARGE)


def test_a_lookup_releases_the_messages_of_known_origins_with_their_keys():
    wait = KeyWait()
    first, second = gossip(OTHER, 1), gossip(OTHER, 2)
    wait.keys_or_hold(first, LARGE)
    wait.keys_or_hold(second, SMALL)
    released, retry = wait.settle([OTHER], [(OTHER, "k")], every_seed_answered=True)
    assert released == [(first, LARGE, frozenset({"k"})), (second, SMALL, frozenset({"k"}))]
    assert not retry and wait.origins(10) == [] and wait.keys_of(OTHER) == {"k"}


def test_an_origin_no_seed_knows_is_released_keyless_only_when_every_seed_answered():
    wait = KeyWait()
    held = gossip(OTHER, 1)
    wait.keys_or_hold(held, LARGE)
    # A seed did not answer: it may hold the key, so the message keeps waiting.
    assert wait.settle([OTHER], [], every_seed_answered=False) == ([], True)
    assert wait.origins(10) == [OTHER]
    assert wait.settle([OTHER], [], every_seed_answered=True) == ([(held, LARGE, None)], False)


def test_a_message_held_during_a_lookup_is_left_for_the_next_one():
    wait = KeyWait()
    wait.keys_or_hold(gossip(OTHER, 1), LARGE)
    wait.wanted.clear()  # the lookup loop wakes and clears
    wanted = wait.origins(10)
    late = gossip(LARGE, 1)
    wait.keys_or_hold(late, SMALL)  # held while the seeds are asked about OTHER only
    released, retry = wait.settle(wanted, [(OTHER, "k")], every_seed_answered=True)
    assert [message for message, _, _ in released] == [gossip(OTHER, 1)]
    assert retry and wait.wanted.is_set() and wait.origins(10) == [LARGE]
    released, retry = wait.settle(wait.origins(10), [(LARGE, "k2")], every_seed_answered=True)
    assert released == [(late, SMALL, frozenset({"k2"}))] and not retry


def test_a_message_that_fails_against_a_known_key_is_held_for_a_fresh_lookup():
    wait = KeyWait()
    wait.learn([(OTHER, "old")])
    held = gossip(OTHER, 1)
    wait.hold(held, LARGE)
    assert wait.wanted.is_set() and wait.origins(10) == [OTHER]
    released, _ = wait.settle([OTHER], [(OTHER, "new")], every_seed_answered=True)
    assert released == [(held, LARGE, frozenset({"old", "new"}))]


SEED_A, SEED_B = Address("127.0.0.1", 8001), Address("127.0.0.1", 8002)


def vouch(seed: Address, identity: Identity, peer: Address, key: str, when: str) -> Vouch:
    return Vouch(seed, when, identity.sign(binding_body(peer, key, when)))


def test_a_binding_is_learned_only_when_a_seed_this_peer_knows_vouches_for_it():
    seed_a, seed_b, attacker, origin, restarted = (Identity() for _ in range(5))
    wait = KeyWait()
    wait.learn_seed(SEED_A, seed_a.key)  # this peer registered with A only
    unknown = KeyBinding(OTHER, origin.key, (vouch(SEED_B, seed_b, OTHER, origin.key, "10"),))
    assert not wait.accept_binding(unknown)  # B's key is not known here: not trusted (not wrong either)
    # A forger names seed A but cannot sign as A; nor can it move A's vouch onto another key.
    forged = KeyBinding(OTHER, attacker.key, (vouch(SEED_A, attacker, OTHER, attacker.key, "10"),))
    moved = KeyBinding(OTHER, attacker.key, (vouch(SEED_A, seed_a, OTHER, origin.key, "10"),))
    assert not wait.accept_binding(forged) and not wait.accept_binding(moved)
    assert wait.keys_of(OTHER) is None and wait.binding_line(OTHER) is None
    # One vouch from a known seed is enough, beside ones this peer cannot check.
    honest = KeyBinding(OTHER, origin.key, (vouch(SEED_A, seed_a, OTHER, origin.key, "10"),
                                            vouch(SEED_B, seed_b, OTHER, origin.key, "10")))
    assert wait.accept_binding(honest)
    assert wait.keys_of(OTHER) == {origin.key} and wait.binding_line(OTHER) == encode(honest)
    # The same binding again (another neighbour's copy): the line held stays the very one that
    # forwarding compares with what each link carried, so no link carries it twice.
    held = wait.binding_line(OTHER)
    assert wait.accept_binding(wire.parse(encode(honest)[:-1].decode())) and wait.binding_line(OTHER) is held
    # The origin restarts with a new key, vouched for later: both keys verify, the new binding is forwarded.
    newer = KeyBinding(OTHER, restarted.key, (vouch(SEED_A, seed_a, OTHER, restarted.key, "20"),))
    assert wait.accept_binding(newer)
    assert wait.keys_of(OTHER) == {origin.key, restarted.key} and wait.binding_line(OTHER) == encode(newer)
    assert wait.accept_binding(honest) and wait.binding_line(OTHER) == encode(newer)  # an older one comes late


def test_a_peers_own_binding_gathers_one_vouch_per_seed_and_starts_over_with_a_new_key():
    seed_a, seed_b, own = Identity(), Identity(), Identity()
    wait = KeyWait()
    first = wait.vouch_for_self(SMALL, own.key, vouch(SEED_B, seed_b, SMALL, own.key, "1"))
    both = wait.vouch_for_self(SMALL, own.key, vouch(SEED_A, seed_a, SMALL, own.key, "2"))
    again = wait.vouch_for_self(SMALL, own.key, vouch(SEED_B, seed_b, SMALL, own.key, "3"))  # B re-registered
    assert [v.seed for v in first.vouches] == [SEED_B]
    assert [v.seed for v in both.vouches] == [SEED_A, SEED_B]
    assert [(v.seed, v.when) for v in again.vouches] == [(SEED_A, "2"), (SEED_B, "3")]
    assert wait.binding_line(SMALL) == encode(again)
    renewed = Identity()  # a new key (this process never makes one, but a binding is per key)
    fresh = wait.vouch_for_self(SMALL, renewed.key, vouch(SEED_A, seed_a, SMALL, renewed.key, "4"))
    assert fresh.key == renewed.key and [v.seed for v in fresh.vouches] == [SEED_A]


def test_origins_are_asked_for_longest_waiting_first_up_to_the_limit():
    wait = KeyWait()
    for port in (9010, 9011, 9012):
        wait.keys_or_hold(gossip(Address("127.0.0.1", port), 1), LARGE)
    assert wait.origins(2) == [Address("127.0.0.1", 9010), Address("127.0.0.1", 9011)]
