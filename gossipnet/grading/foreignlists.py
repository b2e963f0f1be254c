"""Peer lists in a student's output line: the shapes they are printed in, and the addresses in them.

The handout asks a peer to write the peer list it got from the seeds, and
says nothing of how: one ``IP:port`` a line, ``Address: IP:port, Degree: n``
lines, a Python list of dicts or tuples, JSON, or addresses inline after
"peer list".  :func:`read_peer_list` reads any of them from the part of a line
after its time and tags; a list written a line per peer is read one entry at
a time (foreignlog.py joins the entries).  :func:`literal` reads a JSON or
Python literal, bounded in size, for the other readers too.
"""

from __future__ import annotations

import ast
import functools
import ipaddress
import json
import re
from dataclasses import dataclass

IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"
ADDRESS = re.compile(rf"(?<![\d.])({IPV4}):(\d{{1,5}})(?!\d)")
_TUPLE_ADDRESS = re.compile(rf"\(\s*['\"]({IPV4})['\"]\s*,\s*(\d{{1,5}})\s*\)")
_DICT = re.compile(r"\{[^{}]*\}")
_DICT_IP = re.compile(rf"['\"](?:ip|host|address|addr)['\"]\s*:\s*['\"]({IPV4})['\"]", re.I)
_DICT_PORT = re.compile(r"['\"]port['\"]\s*:\s*['\"]?(\d{1,5})", re.I)
_LIST_WORDS = re.compile(r"peer[\s_-]?list|list of (?:\w+ )?peers|\bpeers\s*(?:from|received|list|:|=)"
                         r"|(?:got|received|receiving)\b[^.]{0,40}\bpeers\b", re.I)
_ENTRY = re.compile(rf"[\s\-*•>'\"]*(?:address\s*[:=]\s*)?(?P<address>{IPV4}:\d{{1,5}})['\",]?"
                    r"(?P<degree>\s*,?\s*\(?degree\s*[:=]?\s*\d+\)?)?[\s'\",]*$", re.I)
_AFTER_SEED = re.compile(r"seeds?\W{0,3}$", re.I)
_EMPTY_VALUE = re.compile(r"(?:=|[:=]\s*(?:\"\"|''))\s*$")  # peers= or peers="": a list with nobody in it
_HEADER_END = re.compile(r"(:\s*|\[\s*\]|\{\s*\}|\bnone\b|\bempty\b)\s*$", re.I)
HEADER = "empty list under a header"  # "Peer list:" with no entry on the lines after it
MAX_LITERAL = 1 << 16  # characters of a JSON or Python literal parsed; a bigger one is read by pattern only


@dataclass(frozen=True)
class PeerListText:
    """A peer list as a line shows it."""

    peers: tuple[str, ...]  # IP:port
    shape: str
    entry: bool = False  # one entry of a list written a line per peer
    header: bool = False  # announces a list written on the lines that follow ("Peer list:")


def read_peer_list(body: str, node: str | None) -> PeerListText | None:
    entry = _ENTRY.match(body)
    if entry:
        shape = "address and degree lines" if entry["degree"] or "ddress" in body else "IP:port lines"
        return PeerListText((entry["address"],), shape, entry=True)
    words = _LIST_WORDS.search(body)
    if words is None:
        return None
    after = body[words.start():]
    peers = tuple(address for address in addresses(after) if address != node)
    if peers:
        return PeerListText(peers, _list_shape(after))
    opening = re.search(r"[\[{(]", after)
    if opening and literal(after[opening.start():].rstrip(" .;")) is not None or _EMPTY_VALUE.search(after):
        return PeerListText((), "empty list")
    if _HEADER_END.search(body):
        empty = bool(re.search(r"\[\s*\]|\{\s*\}|\bnone\b|\bempty\b", after, re.I))
        return PeerListText((), "empty list" if empty else HEADER, header=not empty)
    return None


def addresses(text: str) -> list[str]:
    """Every IP:port in ``text``, written ``IP:port``, ``('IP', port)`` or as a dict's ip and port,
    except one that follows the word seed ("from seed 127.0.0.1:5000")."""
    found = [(match.start(), f"{match[1]}:{int(match[2])}") for match in ADDRESS.finditer(text)
             if not _AFTER_SEED.search(text[max(0, match.start() - 8):match.start()])]
    found += [(match.start(), f"{match[1]}:{int(match[2])}") for match in _TUPLE_ADDRESS.finditer(text)]
    for match in _DICT.finditer(text):
        ip, port = _DICT_IP.search(match[0]), _DICT_PORT.search(match[0])
        if ip and port:
            found.append((match.start(), f"{ip[1]}:{int(port[1])}"))
    return [address for _, address in sorted(found)
            if valid_ip(address.rpartition(":")[0]) and 1 <= int(address.rpartition(":")[2]) <= 65535]


def _list_shape(text: str) -> str:
    opening = re.search(r"[\[{(]", text)
    if opening is None:
        return "inline"
    rest = text[opening.start():]
    closing = rest.rfind("]" if rest[0] == "[" else "}")
    if '"' in rest and isinstance(literal(rest[:closing + 1], python=False), list | dict):
        return "JSON"
    if re.match(r"\[\s*\{", rest):
        return "Python list of dicts"
    if re.match(r"\[\s*\(", rest):
        return "Python list of tuples"
    if re.match(r"\[\s*['\"]", rest):
        return "Python list"
    return "Python dict" if rest[0] == "{" else "inline"


@functools.lru_cache(maxsize=1 << 12)
def valid_ip(text: str) -> bool:
    """Whether ``text`` is an IPv4 address; remembered, as a submission repeats a few addresses."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def literal(text: str, python: bool = True) -> object:
    """``text`` as JSON, or else (``python``) a Python literal; None if neither."""
    if len(text) > MAX_LITERAL:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        if not python:
            return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
