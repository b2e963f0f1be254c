"""The log format: what NodeLog writes, parse_log reads back exactly, and
concurrent writers (threads and processes) never interleave inside a line."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gossipnet.logs import logformat
from gossipnet.logs.logformat import NodeLog, format_fields, format_time, parse_line, parse_log
from gossipnet.protocol.wire import Address

REPO = Path(__file__).resolve().parents[2]

# Every log in this file gets its own address, so a test's lines are its own.
_ports = itertools.count(41000)


def fresh_address() -> Address:
    return Address("127.0.0.1", next(_ports))


@pytest.fixture
def open_log(tmp_path):
    """A factory of NodeLogs writing to one file (console off); all closed after the test."""
    path = tmp_path / "outputfile.txt"
    logs: list[NodeLog] = []

    def make(role: str = "peer", node: Address | None = None) -> tuple[NodeLog, Address]:
        node = node or fresh_address()
        log = NodeLog(role, node, path, console=False)
        logs.append(log)
        return log, node

    make.path = path
    yield make
    for log in logs:
        log.close()


TRICKY_VALUES = {
    "plain": "abc",
    "spaces": "two words  and more",
    "quotes": 'say "hi"',
    "lone_quote": '"',
    "equals": "a=b",
    "only_equals": "=",
    "empty": "",
    "backslash": "C:\\path\\file",
    "backslash_quote": '\\"',
    "newline": "line one\nline two",
    "carriage": "a\rb",
    "tab": "a\tb",
    "unicode": "caf\u00e9 \u20ac \u0661\u0662\u0663",
    "unicode_space": "a\u00a0b\u2028c",
    "control": "\x00\x1f",
    "json_lookalike": '{"k": [1, 2]}',
    "dead_node": "Dead Node:127.0.0.1:9003:1732406400.5:127.0.0.1",
    "peers": "127.0.0.1:9001,127.0.0.1:9002",
}


def test_fields_round_trip_exactly(open_log):
    log, node = open_log()
    log.event(logformat.GOSSIP_RECEIVED, **TRICKY_VALUES)
    log.close()
    parsed = parse_log(open_log.path)
    assert parsed.errors == []
    [event] = parsed.events
    assert event.fields == TRICKY_VALUES
    assert list(event.fields) == list(TRICKY_VALUES)  # order kept too


@pytest.mark.parametrize("key, value", list(TRICKY_VALUES.items()))
def test_each_value_alone_round_trips(open_log, key, value):
    log, _ = open_log()
    log.event("X", **{key: value})
    log.close()
    parsed = parse_log(open_log.path)
    assert parsed.errors == []
    assert parsed.events[0].fields == {key: value}


def test_non_string_values_are_written_as_str(open_log):
    log, _ = open_log()
    dead = Address("10.0.0.3", 9003)
    log.event(logformat.PL_REMOVED, peer=dead, size=0, ratio=0.25, flag=True, none=None)
    log.close()
    [event] = parse_log(open_log.path).events
    assert event.fields == {"peer": "10.0.0.3:9003", "size": "0", "ratio": "0.25", "flag": "True", "none": "None"}
    assert event.address("peer") == dead


def test_bare_values_are_written_bare_and_others_quoted(open_log):
    log, node = open_log()
    log.event("X", a="1", b="two words", c="")
    log.close()
    line = open_log.path.read_text(encoding="utf-8")
    assert line.endswith(f" peer {node} X a=1 b=\"two words\" c=\"\"\n")


def test_time_role_node_event(open_log):
    peer_log, peer = open_log("peer")
    seed_log, seed = open_log("seed")
    before = time.time()
    peer_log.event(logformat.STARTED, listen=peer)
    seed_log.event(logformat.STOPPED)
    peer_log.event(logformat.GOSSIP_GENERATED, msg="1:127.0.0.1:1", number=1)
    after = time.time()
    parsed = parse_log(open_log.path)
    assert parsed.errors == []
    assert [(e.line, e.role, e.node, e.event) for e in parsed.events] == [
        (1, "peer", peer, "STARTED"),
        (2, "seed", seed, "STOPPED"),
        (3, "peer", peer, "GOSSIP_GENERATED"),
    ]
    assert parsed.events[1].fields == {}
    times = [e.timestamp for e in parsed.events]
    assert times == sorted(times)
    # microsecond resolution, so allow the rounding of the last digit
    assert before - 1e-6 <= times[0] and times[-1] <= after + 1e-6
    assert all(e.time.tzinfo == timezone.utc for e in parsed.events)


def test_format_time_is_utc_with_microseconds():
    assert format_time(0) == "1970-01-01T00:00:00.000000Z"
    assert format_time(1732406400.25) == "2024-11-24T00:00:00.250000Z"
    event = parse_line(f"{format_time(1732406400.123456)} seed 127.0.0.1:8080 STARTED")
    assert event.time == datetime(2024, 11, 24, 0, 0, 0, 123456, tzinfo=timezone.utc)
    assert event.timestamp == pytest.approx(1732406400.123456, abs=1e-6)


def test_format_fields():
    assert format_fields({}) == ""
    assert format_fields({"a": 1, "b": "x y", "c": "k=v"}) == 'a=1 b="x y" c="k=v"'


def test_node_log_refuses_unknown_role(tmp_path):
    with pytest.raises(ValueError):
        NodeLog("client", fresh_address(), tmp_path / "log", console=False)


def test_address_field_errors_are_log_format_errors():
    event = parse_line("2024-11-24T00:00:00.000000Z peer 127.0.0.1:9000 LINK_OPENED neighbour=nowhere")
    with pytest.raises(logformat.LogFormatError):
        event.address("neighbour")
    with pytest.raises(logformat.LogFormatError):
        event.address("missing")


# --- Malformed lines ------------------------------------------------------------------

GOOD_PREFIX = "2024-11-24T00:00:00.000000Z peer 127.0.0.1:9000"

MALFORMED_LINES = [
    "garbage",
    "two words",
    "2024-11-24T00:00:00.000000Z peer 127.0.0.1:9000",  # no event
    "2024-11-24T00:00:00Z peer 127.0.0.1:9000 STARTED",  # no microseconds
    "2024-13-01T00:00:00.000000Z peer 127.0.0.1:9000 STARTED",  # month 13
    "2024-11-24 00:00:00.000000 peer 127.0.0.1:9000 STARTED",
    "1732406400.5 peer 127.0.0.1:9000 STARTED",
    "2024-11-24T00:00:00.000000Z node 127.0.0.1:9000 STARTED",  # bad role
    "2024-11-24T00:00:00.000000Z Peer 127.0.0.1:9000 STARTED",
    "2024-11-24T00:00:00.000000Z peer 127.0.0.1 STARTED",  # bad address
    "2024-11-24T00:00:00.000000Z peer localhost:9000 STARTED",
    "2024-11-24T00:00:00.000000Z peer 127.0.0.1:0 STARTED",
    f"{GOOD_PREFIX} started",  # lowercase event
    f"{GOOD_PREFIX} Started",
    f"{GOOD_PREFIX} START-ED",
    f"{GOOD_PREFIX} STARTED2",
    f"{GOOD_PREFIX} STARTED k",  # bad fields
    f"{GOOD_PREFIX} STARTED k=",
    f"{GOOD_PREFIX} STARTED =v",
    f"{GOOD_PREFIX} STARTED k=v=w",
    f'{GOOD_PREFIX} STARTED k="unterminated',
    f'{GOOD_PREFIX} STARTED k="a"b',
    f'{GOOD_PREFIX} STARTED k=a"b',
    f"{GOOD_PREFIX} STARTED 1k=v",
    f"{GOOD_PREFIX} STARTED k=v  j=w",
    f"{GOOD_PREFIX} STARTED k=v,j=w x",
    f'{GOOD_PREFIX} STARTED k="\\e"',  # not a JSON escape
    f'{GOOD_PREFIX} STARTED k="a\tb"',  # raw control character inside quotes
]


def test_malformed_lines_are_reported_and_skipped(tmp_path):
    path = tmp_path / "log.txt"
    good = f"{GOOD_PREFIX} STARTED listen=127.0.0.1:9000"
    lines = [good]
    for bad in MALFORMED_LINES:
        lines += [bad, good]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parsed = parse_log(path)
    # line n (1-based): odd lines are good, even lines are the bad ones in order
    assert [number for number, _, _ in parsed.errors] == list(range(2, 2 * len(MALFORMED_LINES) + 1, 2))
    assert [text for _, _, text in parsed.errors] == MALFORMED_LINES
    assert all(reason for _, reason, _ in parsed.errors)
    assert [e.line for e in parsed.events] == list(range(1, 2 * len(MALFORMED_LINES) + 2, 2))
    assert all(e.fields == {"listen": "127.0.0.1:9000"} for e in parsed.events)


@pytest.mark.parametrize("bad", MALFORMED_LINES)
def test_parse_line_raises_log_format_error(bad):
    with pytest.raises(logformat.LogFormatError):
        parse_line(bad)


def test_blank_lines_are_skipped_but_counted(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text(f"\n{GOOD_PREFIX} STOPPED\n\n   \ngarbage\n{GOOD_PREFIX} STOPPED\n", encoding="utf-8")
    parsed = parse_log(path)
    assert [e.line for e in parsed.events] == [2, 6]
    assert [number for number, _, _ in parsed.errors] == [5]


def test_invalid_utf8_line_does_not_stop_the_reader(tmp_path):
    path = tmp_path / "log.txt"
    path.write_bytes(b"\xff\xfe garbage\n" + f"{GOOD_PREFIX} STOPPED\n".encode())
    parsed = parse_log(path)
    assert [number for number, _, _ in parsed.errors] == [1]
    assert [e.line for e in parsed.events] == [2]


@pytest.mark.parametrize("value", ['"\\e"', '"a\tb"', '"\\u12"'])
def test_bad_json_string_is_reported_not_raised(tmp_path, value):
    path = tmp_path / "log.txt"
    path.write_text(f"{GOOD_PREFIX} STARTED k={value}\n{GOOD_PREFIX} STOPPED\n", encoding="utf-8")
    parsed = parse_log(path)
    assert [number for number, _, _ in parsed.errors] == [1]
    assert [e.line for e in parsed.events] == [2]


def test_two_logs_for_the_same_node_stay_separate(tmp_path):
    # e.g. a node restarted in one process: its new log must not feed the old file
    node = fresh_address()
    first = NodeLog("peer", node, tmp_path / "first.txt", console=False)
    second = NodeLog("peer", node, tmp_path / "second.txt", console=False)
    try:
        second.event("ONLY_SECOND")
        assert [e.event for e in parse_log(tmp_path / "second.txt").events] == ["ONLY_SECOND"]
        assert parse_log(tmp_path / "first.txt").events == []
        first.close()
        second.event("AFTER_FIRST_CLOSED")
        assert [e.event for e in parse_log(tmp_path / "second.txt").events] == ["ONLY_SECOND", "AFTER_FIRST_CLOSED"]
    finally:
        first.close()
        second.close()


# --- Concurrent appends -----------------------------------------------------------------

LINE_BYTES = 20_000  # longer than stdio and logging buffers (8 KiB)


def check_intact(path: Path, writers: dict[str, int], lines_each: int) -> None:
    """Every line parses, each (writer, seq) appears exactly once with its own padding."""
    parsed = parse_log(path)
    assert parsed.errors == []
    assert len(parsed.events) == len(writers) * lines_each
    seen = set()
    for event in parsed.events:
        writer = event.fields["writer"]
        assert event.fields["pad"] == writers[writer] * LINE_BYTES
        assert event.node == Address("127.0.0.1", int(event.fields["port"]))
        seen.add((writer, int(event.fields["seq"])))
    assert seen == {(w, s) for w in writers for s in range(lines_each)}


def test_concurrent_threads_write_intact_lines(open_log):
    lines_each = 60
    # Six threads: four with a log each, two sharing one log.
    shared, shared_node = open_log()
    plan = []
    for index in range(6):
        log, node = (shared, shared_node) if index >= 4 else open_log()
        plan.append((str(index), "abcdef"[index], log, node))
    barrier = threading.Barrier(len(plan))
    failures: list[BaseException] = []

    def run(writer: str, pad: str, log: NodeLog, node: Address) -> None:
        try:
            barrier.wait(timeout=10)
            for seq in range(lines_each):
                log.event("CHUNK", writer=writer, seq=seq, port=node.port, pad=pad * LINE_BYTES)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=args) for args in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert not any(thread.is_alive() for thread in threads)
    check_intact(open_log.path, {writer: pad for writer, pad, _, _ in plan}, lines_each)


WRITER_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from gossipnet.logs import logformat
    from gossipnet.protocol.wire import Address

    writer, path, lines, size, port = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    log = logformat.NodeLog("peer", Address("127.0.0.1", port), path, console=False)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    pad = writer * size
    for seq in range(lines):
        log.event("CHUNK", writer=writer, seq=seq, port=port, pad=pad)
    log.close()
""")


def test_concurrent_processes_write_intact_lines(tmp_path):
    path = tmp_path / "outputfile.txt"
    lines_each = 150
    writers = "pqrs"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER_SCRIPT, str(REPO), writer, str(path), str(lines_each), str(LINE_BYTES),
             str(42000 + index)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for index, writer in enumerate(writers)
    ]
    try:
        for process in processes:
            assert process.stdout.readline() == "ready\n"
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.close()
        for process in processes:
            assert process.wait(timeout=30) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
    check_intact(path, {w: w for w in writers}, lines_each)


# --- Shortcuts give what the full checks give ---------------------------------------------

# Characters that each matter to the grammar: separators, quotes, escapes, white
# space that is not a space (ASCII and not), and ordinary text.
FIELD_ALPHABET = [" ", "=", '"', "\\", "\t", "\r", "\x0b", "\x1c", "\x1f", "\x00", "\xa0", "\u2028", "\u3000",
                  "\u00e9", "x", "9", ":", ".", "_"]


def _fields_or_error(parse, text: str) -> dict[str, str] | str:
    try:
        return parse(text)
    except logformat.LogFormatError as exc:
        return f"error: {exc}"


def _tricky_rests() -> list[tuple[tuple[str, ...], str]]:
    """(field names, the text after the event name): near-misses of ``a=1 b=2 c=3``."""
    rng = random.Random(7)
    cases = [(("a", "b"), rest) for rest in [
        "a=1 b=2", "a=1 b=2 ", "a=1 b=2  ", "a=1  b=2", " a=1 b=2", "a=1 b=", "a= b=2", "a=1 b=2=3", "a=1=2 b",
        "a=1 b=2\t", "a=1\tb=2", "a=1 b=\xa02", "a=1 b=2\xa0", 'a=1 b="2"', 'a=1 b="2 3"', "a=1 b=2 c=3",
        "a=1", "b=2 a=1", "a=1 a=2", "a=1 B=2", "a=1 b=é", "a=1 b=2\u2028", "a=1 b=\x00", "a=1 b=\x1c",
        "a=1 b=2\n", "a=1 b=2\nc=3", "a=1 b=2\r",
    ]]
    for _ in range(2000):
        names = tuple(rng.sample("abc", rng.randint(1, 3)))
        values = ["".join(rng.choices(FIELD_ALPHABET, k=rng.randint(0, 4))) for _ in names]
        rest = " ".join(f"{name}={value}" for name, value in zip(names, values, strict=True))
        if rng.random() < 0.2:  # and now and then a character anywhere
            spot = rng.randrange(len(rest) + 1)
            rest = rest[:spot] + rng.choice(FIELD_ALPHABET) + rest[spot:]
        cases.append((names, rest))
    return cases


def test_fields_shortcut_reads_exactly_as_the_grammar():
    # After one plain line of an event, its next lines are read by a pattern of
    # that line's fields; every line must still read as the grammar reads it.
    for number, (names, rest) in enumerate(_tricky_rests()):
        event = f"SHAPE_{'ABCDEFG'[number % 7]}"  # names shared by several cases, as a log's events are
        teach = " ".join(f"{name}=v{index}" for index, name in enumerate(names))
        assert parse_line(f"{GOOD_PREFIX} {event} {teach}").fields == {
            name: f"v{index}" for index, name in enumerate(names)}
        line = f"{GOOD_PREFIX} {event} {rest}"
        got = _fields_or_error(lambda text: parse_line(text).fields, line)
        expected = _fields_or_error(logformat._parse_fields_exactly, line.split(" ", 4)[4].rstrip("\n"))
        assert got == expected, repr(rest)
        if isinstance(got, dict):
            assert list(got) == list(expected), repr(rest)  # and in the same order


TRICKY_TIMES = [
    "2024-11-24T00:00:00.000000Z", "2024-11-24T00:00:00.999999Z", "2024-11-24T23:59:59.999999Z",
    "1970-01-01T00:00:00.000000Z", "1969-12-31T23:59:59.999999Z", "2000-02-29T12:00:00.000001Z",
    "2099-12-31T23:59:59.500000Z", "0001-01-01T00:00:00.000000Z",  # (a float holds no microseconds in year 1)
    "2024-1-5T0:0:0.5Z",  # strptime's lenient form: the slow path
    "2024-11-24T00:00:00.1234567Z", "2024-11-24T00:00:00.12345Z", "2024-11-24T00:00:00.12345xZ",
    "2024-11-24T00:00:00.+12345Z", "2024-11-24T00:00:00.1_2345Z", "2024-11-24T00:00:00. 12345Z",
    "2024-11-24T00:00:00.\u0661\u0662\u0663\u0664\u0665\u0666Z", "2024-11-24T00:00:60.000000Z",
    "2024-02-30T00:00:00.000000Z", "2024-W47-1T00:00:00.000000Z", "2024-11-24T00:00:00,000000Z",
    "2024-11-24 00:00:00.000000Z", "2024-11-24T00:00:00.000000z",
]


@pytest.mark.parametrize("text", TRICKY_TIMES)
def test_time_shortcut_reads_exactly_as_datetime(text):
    # What the reader gave before the shortcut: the datetime, and its timestamp().
    try:
        expected = logformat._parse_time(text)
    except logformat.LogFormatError:
        expected = None
    for _ in range(2):  # the second read of a second comes from the cache
        try:
            event = parse_line(f"{text} peer 127.0.0.1:9000 STOPPED")
        except logformat.LogFormatError:
            assert expected is None
            continue
        assert expected is not None
        assert event.timestamp == expected.timestamp()
        assert event.time == expected


def test_time_shortcut_is_exact_to_the_microsecond():
    rng = random.Random(3)
    for _ in range(20_000):
        micros = rng.randrange(0, 4_102_444_800 * 1_000_000)  # up to 2100
        text = format_time(micros / 1_000_000)
        event = parse_line(f"{text} peer 127.0.0.1:9000 STOPPED")
        expected = logformat._parse_time(text)
        assert (event.timestamp, event.time) == (expected.timestamp(), expected), text
