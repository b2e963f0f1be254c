"""A seed's state file (``seed.py --state FILE``): its Peer List, key bindings and recorded links, in SQLite.

The seed's PeerTable calls a :class:`SeedState` as its journal
(peertable.Journal) under the table's lock, before each change, and the seed
answers only after the table returns: so whatever a peer was told is in the
file.  Each change is one transaction.  The file is in WAL mode with
``synchronous=NORMAL``: a commit is in the write-ahead log (``FILE-wal``) when
it returns, so a SIGKILL at any moment leaves a file that opens with every
change committed before it; a power loss may lose the last commits (they are
not flushed to the disk one by one, which would cost a disk flush per
registration) but cannot corrupt the file.

A file is this project's when its SQLite ``application_id`` says so; its
``user_version`` is the schema's version; it belongs to the one seed address
its ``meta`` table names.  Anything else (not SQLite, another program's
database, another version, another seed's file, a damaged file, a path that
cannot be written) is a :class:`StateError` with a one-line message, and the
file is left as it was: nothing is reset.

Not here: which loaded peers the seed lists again (protocol/restore.py), and
the seed's checks of them (node/seed.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from gossipnet.protocol.peertable import Saved
from gossipnet.protocol.wire import Address, ProtocolError, is_key

# Marks a SQLite file as a seed's state file ("gSed"); 0 is SQLite's default, any other is another program's.
APPLICATION_ID = 0x67536564
# The schema below.  A file of another version is refused, never rewritten.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE peers (address TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE keys (address TEXT NOT NULL, position INTEGER NOT NULL, key TEXT NOT NULL,
                   PRIMARY KEY (address, position)) WITHOUT ROWID;
CREATE TABLE claims (reporter TEXT NOT NULL, neighbour TEXT NOT NULL,
                     PRIMARY KEY (reporter, neighbour)) WITHOUT ROWID;
CREATE INDEX claims_by_neighbour ON claims (neighbour);
"""
_TABLES = {"meta", "peers", "keys", "claims"}


class StateError(Exception):
    """The state file cannot be used or written.  The message is one line and names the file."""


def _one_line(what: object) -> str:
    """SQLite's words (an error, or quick_check's findings, which span lines) on one short line."""
    return " ".join(str(what).split())[:200]


class SeedState:
    """One seed's state file, open; a peertable.Journal.  Safe to call from many threads."""

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path = path
        self._db = db
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, path: str | Path) -> SeedState:
        """Open ``path``, creating it if it does not exist or is empty; raise StateError if it cannot serve."""
        path = Path(path)
        if path.is_dir():
            raise StateError(f"cannot use state file {path}: it is a directory")
        if not path.parent.is_dir():
            raise StateError(f"cannot create state file {path}: no directory {path.parent}")
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open state file {path}: {_one_line(exc)}") from None
        state = cls(path, db)
        try:
            state._prepare()
        except BaseException:
            db.close()
            raise
        return state

    def _prepare(self) -> None:
        db, path = self._db, self.path
        try:
            application_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            objects = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StateError(f"{path} is not a seed state file (not an SQLite database); "
                                 "give --state a new file") from None
            raise StateError(f"{path} is damaged: {_one_line(exc)}") from None
        fresh = application_id == 0 and version == 0 and objects == 0
        if not fresh and application_id != APPLICATION_ID:
            raise StateError(f"{path} is not a seed state file (another program's SQLite database); "
                             "give --state a new file")
        if not fresh and version != SCHEMA_VERSION:
            raise StateError(f"{path} has state schema version {version}, this seed reads version "
                             f"{SCHEMA_VERSION}{' (written by a newer gossipnet)' if version > SCHEMA_VERSION else ''}")
        try:
            # Every check reads only: a file refused is left exactly as it was.
            if not fresh:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if missing := _TABLES - tables:
                    raise StateError(f"{path} is damaged: missing table(s) {', '.join(sorted(missing))}")
                problems = [row[0] for row in db.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise StateError(f"{path} is damaged: {_one_line('; '.join(problems))}")
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise StateError(f"cannot use state file {path}: its file system does not support SQLite's WAL mode")
            db.execute("PRAGMA synchronous=NORMAL")
            if fresh:
                with self._transaction():
                    db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA application_id={APPLICATION_ID}; "
                                     f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            db.execute("BEGIN IMMEDIATE")  # can this seed write it?
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            damaged = "malformed" in str(exc) or "corrupt" in str(exc)
            raise StateError(f"{path} {'is damaged' if damaged else 'cannot be written'}: {_one_line(exc)}") from None

    # --- What the file belongs to, and what it holds -------------------------------------------

    def claim(self, seed: Address) -> None:
        """Bind a new file to ``seed``; raise StateError if it holds another seed's state."""
        with self._lock:
            owner = self._db.execute("SELECT value FROM meta WHERE name = 'seed'").fetchone()
        if owner is None:
            with self._change() as db:
                db.execute("INSERT INTO meta (name, value) VALUES ('seed', ?)", (str(seed),))
        elif owner[0] != str(seed):
            raise StateError(f"{self.path} holds the state of seed {owner[0]}, not of {seed}; "
                             "give each seed a file of its own")

    def load(self) -> Saved:
        """What the file holds; raise StateError naming the first row that is not what this seed wrote."""
        with self._lock:
            try:
                peers = self._db.execute("SELECT address FROM peers ORDER BY address").fetchall()
                keys = self._db.execute("SELECT address, key FROM keys ORDER BY address, position").fetchall()
                claims = self._db.execute("SELECT reporter, neighbour FROM claims").fetchall()
            except sqlite3.DatabaseError as exc:
                raise StateError(f"{self.path} is damaged: {_one_line(exc)}") from None
        held: dict[Address, list[str]] = defaultdict(list)
        for address, key in keys:
            if not (isinstance(key, str) and is_key(key)):
                raise StateError(f"{self.path} is damaged: table keys holds {str(key)[:60]!r}, not a public key")
            held[self._address(address, "keys")].append(key)
        claimed: dict[Address, set[Address]] = defaultdict(set)
        for reporter, neighbour in claims:
            claimed[self._address(reporter, "claims")].add(self._address(neighbour, "claims"))
        return Saved(tuple(self._address(address, "peers") for (address,) in peers),
                     {peer: tuple(history) for peer, history in held.items()},
                     {peer: frozenset(neighbours) for peer, neighbours in claimed.items()})

    def _address(self, text: object, table: str) -> Address:
        try:
            return Address.parse(str(text))
        except ProtocolError:
            raise StateError(f"{self.path} is damaged: table {table} holds {str(text)[:60]!r}, "
                             "not an IP:port") from None

    # --- The journal: one transaction per change -------------------------------------------

    def registered(self, peer: Address, forget_links: bool, keys: tuple[str, ...] | None) -> None:
        address = str(peer)
        with self._change() as db:
            db.execute("INSERT OR IGNORE INTO peers (address) VALUES (?)", (address,))
            if forget_links:
                db.execute("DELETE FROM claims WHERE reporter = ? OR neighbour = ?", (address, address))
            if keys is not None:
                db.execute("DELETE FROM keys WHERE address = ?", (address,))
                db.executemany("INSERT INTO keys (address, position, key) VALUES (?, ?, ?)",
                               [(address, position, key) for position, key in enumerate(keys)])

    def linked(self, reporter: Address, neighbour: Address) -> None:
        with self._change() as db:
            db.execute("INSERT OR IGNORE INTO claims (reporter, neighbour) VALUES (?, ?)",
                       (str(reporter), str(neighbour)))

    def removed(self, peer: Address) -> None:
        address = str(peer)
        with self._change() as db:
            db.execute("DELETE FROM peers WHERE address = ?", (address,))
            db.execute("DELETE FROM claims WHERE reporter = ? OR neighbour = ?", (address, address))

    @contextlib.contextmanager
    def _change(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed when the block ends; StateError if it cannot be."""
        with self._lock:
            if self._closed:
                raise StateError(f"state file {self.path} is closed")
            try:
                with self._transaction():
                    self._db.execute("BEGIN IMMEDIATE")
                    yield self._db
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StateError(f"cannot write state file {self.path}: {_one_line(exc)}") from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Roll back whatever the block began if it fails."""
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Checkpoint and close; safe to call twice.  Changes after it raise StateError."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
