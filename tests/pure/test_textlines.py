"""textlines: lines split as text mode splits them, cut at a bound, decoded whatever the bytes."""

from __future__ import annotations

import random
import re
import time
import tracemalloc
from pathlib import Path

import pytest

from gossipnet.logs import runlog, textlines

# Line breaks, bytes that are not UTF-8 (\xe9, a lone \x85), UTF-8 (é, NEL), and
# characters str.splitlines breaks at but text mode does not (\x0c, NEL).
PIECES = [b"a", b"b", b"\r", b"\n", b"\r\n", b"\xe9", b"\xc3\xa9", b"x" * 7, b"\x0c", b"\xc2\x85", b"\x85"]


def samples(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 60))) for _ in range(count)]


def text_mode(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [line.rstrip("\n") for line in handle]


def raw_lines(data: bytes) -> list[bytes]:
    lines = re.split(rb"\r\n|\r|\n", data)
    return lines[:-1] if lines and lines[-1] == b"" else lines


@pytest.mark.parametrize("errors", [textlines.REPLACE, textlines.LATIN_1])
def test_lines_are_text_modes_lines(tmp_path, errors):
    path = tmp_path / "sample.txt"
    for data in samples(300):
        path.write_bytes(data)
        expected = [textlines.decode(line, errors) for line in raw_lines(data)]
        assert list(textlines.read_lines(path, errors)) == expected
        if errors == textlines.REPLACE:
            assert expected == text_mode(path)


def test_chunk_boundaries_do_not_matter(monkeypatch):
    rng = random.Random(2)
    for data in samples(2000, seed=3):
        step = rng.randint(1, 9)
        monkeypatch.setattr(textlines, "MAX_LINE_BYTES", rng.randint(1, 6))
        bound = textlines.MAX_LINE_BYTES
        cuts: list[tuple[int, int]] = []
        got = list(textlines._split(iter([data[i:i + step] for i in range(0, len(data), step)]), "latin-1", cuts))
        lines = raw_lines(data)
        assert len(got) == len(lines), data
        assert cuts == [(number, len(line)) for number, line in enumerate(lines, start=1) if len(line) > bound], data
        for text, line in zip(got, lines, strict=True):
            assert text == textlines.decode(line[:bound], "latin-1"), data


def test_text_mode_reader_cuts_long_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(textlines, "MAX_LINE_BYTES", 4)
    path = tmp_path / "long.txt"
    path.write_bytes(b"abc\nabcdefghij\r\nabcd\nxyz123456")
    cuts: list[tuple[int, int]] = []
    assert list(textlines.read_lines(path, textlines.REPLACE, cuts)) == ["abc", "abcd", "abcd", "xyz1"]
    assert cuts == [(2, 10), (4, 9)]


def test_mixed_encodings_read_as_latin_1_where_not_utf_8(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes("café\n".encode() + "café\n".encode("latin-1") + b"\xff\xfe\x00bin\n")
    assert list(textlines.read_lines(path, textlines.LATIN_1)) == ["café", "café", "ÿþ\x00bin"]
    assert list(textlines.read_lines(path))[1] == "caf\ufffd"


def test_first_lines_reads_only_the_start(tmp_path):
    path = tmp_path / "start.txt"
    path.write_bytes(b"one\ntwo\nthree" + b"x" * 100)
    assert textlines.first_lines(path, 10) == ["one", "two"]
    assert textlines.first_lines(path, 1000) == ["one", "two", "three" + "x" * 100]


def sparse_file(path: Path, before: bytes, gap: int, after: bytes) -> Path:
    """``before``, ``gap`` zero bytes the file system does not store, then ``after``."""
    with open(path, "wb") as handle:
        handle.write(before)
        handle.seek(len(before) + gap)
        handle.write(after)
    return path


def test_a_one_gigabyte_line_is_skipped_quickly_in_little_memory(tmp_path):
    path = sparse_file(tmp_path / "huge.txt", b"first\n", 1 << 30, b"\nlast\n")
    cuts: list[tuple[int, int]] = []
    started = time.monotonic()
    tracemalloc.start()
    try:
        lines = list(textlines.read_lines(path, textlines.LATIN_1, cuts))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 30
    assert peak < 4 * textlines.CHUNK_BYTES
    assert [len(line) for line in lines] == [5, textlines.MAX_LINE_BYTES, 4]
    assert cuts == [(2, 1 << 30)]


def test_a_log_with_a_long_line_lists_it_as_malformed_and_reads_on(tmp_path):
    good = "2026-11-23T23:10:34.115092Z peer 127.0.0.1:9003 STOPPED"
    path = sparse_file(tmp_path / "log.txt", (good + "\n").encode(), 8 << 20, ("\n" + good + "\n").encode())
    run, files = runlog.read_logs([path])
    assert [event.line for event in run.events] == [1, 3]
    ((line, reason, _),) = run.errors
    assert line == 2 and "longer than the bound" in reason
    assert files.ends == (3,)
