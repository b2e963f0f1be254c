"""Lines of a text file that nothing vouches for: bounded in length, any encoding.

The grader reads files from anywhere (a student's program, a crashed run, an
editor on another system).  :func:`read_lines` yields a file's lines:

- a line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r``, as Python's text mode
  splits lines, so line numbers agree with ``open(path)`` and with editors;
- a line keeps its first :data:`MAX_LINE_BYTES`; the rest is skipped without
  being kept, and the line's number and length go to ``cuts``.  A 1 GB line
  costs a few MiB of memory;
- decoding never fails: UTF-8, with each byte that is not UTF-8 read as
  U+FFFD (``REPLACE``, as logformat.parse_log reads a log) or as its Latin-1
  character (``LATIN_1``, which keeps a Windows or Latin-1 file legible next
  to UTF-8 lines).

:func:`first_lines` reads only a file's start, to tell what kind of file it is.
This module knows nothing of what the lines mean.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# Longest line kept (bytes; characters when read as REPLACE, which are no fewer).
# The longest line this project writes carries one wire line's worth of
# addresses (wire.MAX_LINE_BYTES, 64 KiB) plus a prefix, and a student's peer
# list printed as a Python list of 1,000 dicts is ~60 KB: 1 MiB keeps both
# whole, while a binary file's "line" stops there.
MAX_LINE_BYTES = 1 << 20
# Bytes read at once by the LATIN_1 reader, which finds line ends with memchr:
# 4 MiB skips a 1 GB line in a second or two and bounds memory at a few MiB.
CHUNK_BYTES = 4 << 20

REPLACE, LATIN_1 = "replace", "latin-1"
# surrogateescape turns a byte that is not UTF-8 into U+DC80..U+DCFF; the Latin-1
# character of that byte is U+0080..U+00FF.
_ESCAPED_TO_LATIN_1 = {0xDC80 + byte: 0x80 + byte for byte in range(128)}


def decode(data: bytes, errors: str = REPLACE) -> str:
    """``data`` as UTF-8, its other bytes read as ``errors`` says (see the module docstring)."""
    if errors != LATIN_1:
        return data.decode("utf-8", errors)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape").translate(_ESCAPED_TO_LATIN_1)


def read_lines(path: str | Path, errors: str = REPLACE, cuts: list[tuple[int, int]] | None = None) -> Iterator[str]:
    """Every line of ``path``, without its line break.

    A line longer than :data:`MAX_LINE_BYTES` is cut to that length, and
    ``(line number, its length)`` is appended to ``cuts``.  REPLACE reads
    through Python's text mode, the fastest for a big log (a long line is
    skipped at ~250 MB/s); LATIN_1 splits bytes itself.  Raises ``OSError``
    when the file cannot be read.
    """
    cuts = [] if cuts is None else cuts
    if errors == REPLACE:
        yield from _text_lines(path, cuts)
        return
    with open(path, "rb", buffering=0) as handle:
        yield from _split(iter(lambda: handle.read(CHUNK_BYTES), b""), errors, cuts)


def first_lines(path: str | Path, size: int, errors: str = LATIN_1) -> list[str]:
    """The whole lines among the first ``size`` bytes of ``path`` (all of them if the file is that short)."""
    with open(path, "rb") as handle:
        data = handle.read(size + 1)
    if len(data) > size:
        data = data[:size]
        data = data[:max(data.rfind(b"\n"), data.rfind(b"\r")) + 1]
    return list(_split(iter([data]), errors, []))


def _text_lines(path: str | Path, cuts: list[tuple[int, int]]) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        readline = handle.readline
        number = 0
        while text := readline(MAX_LINE_BYTES + 1):
            number += 1
            if text[-1] == "\n":
                yield text[:-1]
            elif len(text) <= MAX_LINE_BYTES:
                yield text  # the last line, with no line break
            else:
                size = len(text)
                while (more := readline(MAX_LINE_BYTES)) and more[-1] != "\n":
                    size += len(more)
                cuts.append((number, size + len(more) - bool(more)))
                yield text[:MAX_LINE_BYTES]


# Line breaks of str.splitlines that text mode does not break at, as UTF-8 (and
# U+0085's Latin-1 byte): a block holding one is split as bytes, which break at
# \n, \r\n and \r only.  A search per byte string runs at memchr's speed,
# several times a regular expression's.
_OTHER_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x85", "\u2028".encode(), "\u2029".encode())


def _split(chunks: Iterator[bytes], errors: str, cuts: list[tuple[int, int]]) -> Iterator[str]:
    number = 0  # lines yielded so far
    carry = b""  # the start of a line whose end is in a later chunk
    head: bytes | None = None  # while skipping a long line: its kept start
    size = 0  # while skipping: the long line's bytes so far
    after_cr = False  # a long line ended at a chunk's last byte, a \r: a \n may follow
    for chunk in chunks:
        if after_cr:
            after_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if head is not None:
            ends = [at for at in (chunk.find(b"\n"), chunk.find(b"\r")) if at >= 0]
            if not ends:
                size += len(chunk)
                continue
            end = min(ends)
            number += 1
            cuts.append((number, size + end))
            yield decode(head, errors)
            head = None
            if chunk[end:end + 2] == b"\r\n":
                end += 1
            elif end == len(chunk) - 1 and chunk[end:] == b"\r":
                after_cr = True
            chunk = chunk[end + 1:]
        data = carry + chunk if carry else chunk
        # Whole lines end at the last break; a \r as the last byte may be the first half of \r\n.
        whole = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
        carry = data[whole:]
        if whole:
            lines = _lines(data[:whole], errors)
            if whole > MAX_LINE_BYTES and max(map(len, lines)) > MAX_LINE_BYTES // 4:  # 4 bytes a character at most
                for index, line in enumerate(data[:whole].splitlines()):
                    if len(line) > MAX_LINE_BYTES:
                        cuts.append((number + index + 1, len(line)))
                        lines[index] = decode(line[:MAX_LINE_BYTES], errors)
            number += len(lines)
            yield from lines
        if len(carry) - carry.endswith(b"\r") > MAX_LINE_BYTES:
            if carry.endswith(b"\r"):  # a whole line after all
                number += 1
                cuts.append((number, len(carry) - 1))
                yield decode(carry[:MAX_LINE_BYTES], errors)
                after_cr = True
            else:
                head, size = carry[:MAX_LINE_BYTES], len(carry)
            carry = b""
    if head is not None:
        cuts.append((number + 1, size))
        yield decode(head, errors)
    elif carry:
        line = carry.rstrip(b"\r")
        if len(line) > MAX_LINE_BYTES:
            cuts.append((number + 1, len(line)))
        yield decode(line[:MAX_LINE_BYTES], errors)


def _lines(block: bytes, errors: str) -> list[str]:
    """The lines of ``block``, which ends with a line break."""
    if not any(other in block for other in _OTHER_BREAKS):
        return decode(block, errors).splitlines()
    return [decode(line, errors) for line in block.splitlines()]
