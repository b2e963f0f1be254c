"""A seed's state: the table's journal, the restore rule, and the SQLite file (no sockets, no node)."""

from __future__ import annotations

import sqlite3

import pytest

from gossipnet.config import MAX_LINKS_PER_PEER
from gossipnet.node.seedstate import APPLICATION_ID, SCHEMA_VERSION, SeedState, StateError
from gossipnet.protocol import restore
from gossipnet.protocol.auth import Identity
from gossipnet.protocol.peertable import PeerTable, Saved
from gossipnet.protocol.wire import KEY_HISTORY, Address, Error, LivenessRequest, PeerList, ProtocolError

A, B, C, D = (Address("127.0.0.1", port) for port in (9001, 9002, 9003, 9004))
SEED, OTHER_SEED = Address("127.0.0.1", 8080), Address("127.0.0.1", 8081)
KEY1, KEY2 = Identity().key, Identity().key


class Recorder:
    """A journal that records what it is told, and what the table held when it was told."""

    def __init__(self) -> None:
        self.table: PeerTable | None = None
        self.calls: list[tuple] = []
        self.fail = False

    def _note(self, *call) -> None:
        # Called under the table's lock, so peek without it.
        self.calls.append((*call, tuple(sorted(self.table._peers))))
        if self.fail:
            raise OSError("disk full")

    def registered(self, peer, forget_links, keys):
        self._note("registered", peer, forget_links, keys)

    def linked(self, reporter, neighbour):
        self._note("linked", reporter, neighbour)

    def removed(self, peer):
        self._note("removed", peer)


def journalled() -> tuple[PeerTable, Recorder]:
    recorder = Recorder()
    table = recorder.table = PeerTable(journal=recorder)
    return table, recorder


# --- The table tells its journal every change, before it makes it ------------------------------


def test_the_journal_hears_each_change_before_the_table_makes_it():
    table, journal = journalled()
    table.register(A, KEY1)
    table.register(B, None)
    assert table.record_link(A, B)
    assert not table.record_link(B, A)  # a new claim, not a new link: still a change to write
    table.record_link(A, B)  # nothing new: nothing written
    table.register(A, KEY2)  # registered again: its links go, its new key joins the history
    table.register(A, KEY2)  # same key: the same process on a new connection keeps its links and keys
    table.remove(table.get(B))
    assert journal.calls == [
        ("registered", A, False, (KEY1,), ()),
        ("registered", B, False, None, (A,)),
        ("linked", A, B, (A, B)),
        ("linked", B, A, (A, B)),
        ("registered", A, True, (KEY1, KEY2), (A, B)),
        ("registered", A, False, None, (A, B)),
        ("removed", B, (A, B)),
    ]


def test_the_key_history_the_journal_gets_is_the_tables_bounded_one():
    table, journal = journalled()
    keys = [Identity().key for _ in range(KEY_HISTORY + 1)]
    for key in keys:
        table.register(A, key)
    assert journal.calls[-1][3] == tuple(keys[-KEY_HISTORY:])
    assert [key for _, key in table.keys((A,)).keys] == keys[-KEY_HISTORY:]


def test_a_change_the_journal_refuses_is_not_made():
    table, journal = journalled()
    table.register(A, KEY1)
    table.register(B, None)
    table.record_link(A, B)
    before = (table.peer_list(), table.keys((A, B)))
    journal.fail = True
    for change in (lambda: table.register(C, None), lambda: table.register(A, KEY2),
                   lambda: table.record_link(B, A), lambda: table.remove(table.get(A))):
        with pytest.raises(OSError):
            change()
    assert (table.peer_list(), table.keys((A, B))) == before
    assert table.get(C) is None


def test_the_link_bound_is_checked_before_the_journal_is_told():
    table, journal = journalled()
    table.register(A, None)
    for port in range(MAX_LINKS_PER_PEER):
        table.record_link(A, Address("10.0.0.1", 1000 + port))
    written = len(journal.calls)
    with pytest.raises(ProtocolError):
        table.record_link(A, B)
    assert len(journal.calls) == written


# --- Restored peers: held out of the PL until the seed's check --------------------------------


def restored_table(max_peers: int = 800) -> tuple[PeerTable, Recorder]:
    recorder = Recorder()
    table = recorder.table = PeerTable(max_peers=max_peers, journal=recorder)
    table.restore(Saved((A, B, C), {A: (KEY1, KEY2), D: (KEY1,)}, {A: frozenset({B, C}), B: frozenset({A})}))
    return table, recorder


def test_restored_peers_are_not_handed_out_until_checked_but_their_keys_are_served_at_once():
    table, journal = restored_table()
    assert table.peer_list() == PeerList(())
    assert table.restored() == [A, B, C]
    assert table.get(A) is None
    # Keys stay bound across removals, so a removed peer's (D's) keys come back too.
    assert [key for _, key in table.keys((A, D)).keys] == [KEY1, KEY2, KEY1]
    assert table.list_restored(A) == 1
    assert table.list_restored(B) == 2
    assert table.list_restored(A) is None  # already listed
    # Its links came back with it: degrees count them (C, still unchecked, too).
    assert table.peer_list() == PeerList(((A, 2), (B, 1)), {A: KEY2})
    assert table.drop_restored(C)
    assert not table.drop_restored(C)
    assert table.peer_list() == PeerList(((A, 1), (B, 1)), {A: KEY2})
    assert table.restored() == []
    # Listing again writes nothing (the file holds them); a drop is a removal.
    assert [call[:2] for call in journal.calls] == [("removed", C)]


def test_a_restored_peer_that_registers_is_listed_with_no_links_and_its_check_changes_nothing():
    table, journal = restored_table()
    before, size, new = table.register(A, KEY2)
    assert (before, size, new) == (PeerList(()), 1, True)
    assert journal.calls[0][:4] == ("registered", A, True, None)  # same key as bound; links forgotten
    assert table.peer_list() == PeerList(((A, 0),), {A: KEY2})
    record = table.get(A)
    assert table.list_restored(A) is None and not table.drop_restored(A)
    assert table.get(A) is record


def test_restored_peers_keep_their_places_in_a_full_peer_list():
    table, _ = restored_table(max_peers=3)
    assert table.register(D, None) is None  # A, B and C may come back
    assert table.register(A, None) is not None  # a restored peer has its place
    table.drop_restored(B)
    assert table.register(D, None) is not None


def test_the_restore_rule():
    holder = Identity()
    ask = LivenessRequest(SEED, "100.000000")
    reply = ask.reply(A).signed(holder)
    assert restore.verdict(A, ask, reply, holder.key) is None
    assert restore.verdict(A, ask, reply, None) is None  # no key bound (--no-auth): an answer is enough
    assert restore.verdict(A, ask, ask.reply(A), None) is None
    assert restore.verdict(A, ask, Error("busy: too many connections"), holder.key) is None
    assert restore.verdict(A, ask, None, holder.key) == restore.NO_ANSWER
    assert restore.verdict(A, ask, ask.reply(B).signed(holder), holder.key) == restore.NO_ANSWER
    stale = LivenessRequest(SEED, "99.000000").reply(A).signed(holder)
    assert restore.verdict(A, ask, stale, holder.key) == restore.NO_ANSWER
    assert restore.verdict(A, ask, ask.reply(A).signed(Identity()), holder.key) == restore.NOT_PROVED
    assert restore.verdict(A, ask, ask.reply(A), holder.key) == restore.NOT_PROVED


# --- The file -------------------------------------------------------------------------------


def test_the_file_holds_what_the_table_held_and_opens_again(tmp_path):
    path = tmp_path / "seed.sqlite"
    state = SeedState.open(path)
    state.claim(SEED)
    table = PeerTable(journal=state)
    table.register(A, KEY1)
    table.register(B, None)
    table.register(C, None)
    table.record_link(A, B)
    table.record_link(B, A)
    table.record_link(C, A)
    table.register(C, KEY2)  # again: C's claim goes
    table.register(D, None)
    table.record_link(D, A)
    table.remove(table.get(D))  # D goes with its claim; its (no) keys stay
    state.close()
    state.close()  # safe twice
    with pytest.raises(StateError, match="closed"):
        state.removed(A)
    again = SeedState.open(path)
    again.claim(SEED)  # its own file
    saved = again.load()
    assert saved == Saved((A, B, C), {A: (KEY1,), C: (KEY2,)}, {A: frozenset({B}), B: frozenset({A})})
    # A table restored from it and checked serves what the first one served.
    restored = PeerTable()
    restored.restore(saved)
    for peer in restored.restored():
        restored.list_restored(peer)
    assert restored.peer_list() == table.peer_list()
    with pytest.raises(StateError, match=f"holds the state of seed {SEED}, not of {OTHER_SEED}"):
        again.claim(OTHER_SEED)
    again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def an_sqlite_file(path, *statements):
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)
    db.close()
    return path


def a_full_state_file(path):
    state = SeedState.open(path)
    state.claim(SEED)
    table = PeerTable(journal=state)
    for port in range(300):  # enough rows for several pages
        table.register(Address("127.0.0.1", 10000 + port), KEY1)
    state.close()
    return path


def a_damaged_state_file(path):
    data = bytearray(a_full_state_file(path).read_bytes())
    page = 4096
    data[2 * page:3 * page] = b"\xa5" * page  # a page of the tables, written over
    path.write_bytes(bytes(data))
    return path


def a_truncated_state_file(path):
    data = a_full_state_file(path).read_bytes()
    path.write_bytes(data[:-100])  # SQLite's findings about it span several lines
    return path


@pytest.mark.parametrize("make, words", [
    (lambda path: path.write_text("127.0.0.1:9001\n") and path, "is not a seed state file (not an SQLite database)"),
    (lambda path: an_sqlite_file(path, "CREATE TABLE notes (text TEXT)"),
     "is not a seed state file (another program's SQLite database)"),
    (lambda path: an_sqlite_file(path, f"PRAGMA application_id={APPLICATION_ID}", "PRAGMA user_version=2",
                                 "CREATE TABLE peers (address TEXT)"),
     "has state schema version 2, this seed reads version 1 (written by a newer gossipnet)"),
    (lambda path: an_sqlite_file(path, f"PRAGMA application_id={APPLICATION_ID}", "PRAGMA user_version=1",
                                 "CREATE TABLE peers (address TEXT)"),
     "is damaged: missing table(s) claims, keys, meta"),
    (a_damaged_state_file, "is damaged: database disk image is malformed"),
    (a_truncated_state_file, "is damaged"),
], ids=["text", "foreign-sqlite", "newer-schema", "missing-tables", "damaged-page", "truncated"])
def test_a_file_that_is_not_a_sound_seed_state_is_refused_and_left_as_it_was(tmp_path, make, words):
    path = make(tmp_path / "state.sqlite")
    before = path.read_bytes()
    with pytest.raises(StateError) as refused:
        state = SeedState.open(path)
        state.load()  # a damaged row may show only here
    message = str(refused.value)
    assert words in message and str(path) in message and "\n" not in message
    assert path.read_bytes() == before
    assert not path.with_name(path.name + "-wal").exists()


@pytest.mark.parametrize("table, row, words", [
    ("peers", "('not-an-address')", "table peers holds 'not-an-address', not an IP:port"),
    ("keys", "('127.0.0.1:9001', 0, 'short')", "table keys holds 'short', not a public key"),
    ("claims", "('127.0.0.1:9001', '300.0.0.1:1')", "table claims holds '300.0.0.1:1', not an IP:port"),
])
def test_a_row_this_seed_did_not_write_is_named(tmp_path, table, row, words):
    path = tmp_path / "state.sqlite"
    SeedState.open(path).close()
    an_sqlite_file(path, f"INSERT INTO {table} VALUES {row}")
    with pytest.raises(StateError, match="is damaged: " + words.replace("(", r"\(").replace(")", r"\)")):
        SeedState.open(path).load()


def test_a_path_that_cannot_hold_the_file_is_refused(tmp_path):
    (tmp_path / "a-file").write_text("")
    for path, words in ((tmp_path, "it is a directory"), (tmp_path / "missing" / "state.sqlite", "no directory"),
                        (tmp_path / "a-file" / "state.sqlite", "no directory")):
        with pytest.raises(StateError, match=words):
            SeedState.open(path)


def test_an_empty_file_is_a_new_state_file(tmp_path):
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"")
    state = SeedState.open(path)
    assert state.load() == Saved((), {}, {})
    state.close()
