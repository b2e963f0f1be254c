"""Ed25519 signatures: who said a line, checked without trusting the sender.

Each peer holds one :class:`Identity` (an Ed25519 key pair, made at start).
Its public key is bound to its ``IP:port`` by the seeds at registration, after
the address proves it holds the key (seed.py), and travels with the peer
list.  A signed line carries its signature as a last field; the signature
covers the rest of the line, verb included, so a signature made for one kind
of message is worthless on another.

Keys and signatures travel as unpadded URL-safe base64 (43 and 86
characters; wire.py checks their shape).  This module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import functools

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gossipnet.protocol.wire import is_key, is_signature


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Identity:
    """A node's key pair.  ``key`` is the public half, as sent on the wire."""

    def __init__(self, private: Ed25519PrivateKey | None = None) -> None:
        self._private = private or Ed25519PrivateKey.generate()
        self.key = _b64(self._private.public_key().public_bytes_raw())

    def sign(self, text: str) -> str:
        return _b64(self._private.sign(text.encode("utf-8")))


@functools.lru_cache(maxsize=4096)
def _public_key(key: str) -> Ed25519PublicKey | None:
    """The key object for ``key`` text, built once per key; None if it is not a valid key."""
    if not is_key(key):
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(_unb64(key))
    except (ValueError, binascii.Error):
        return None


def verify(key: str, text: str, signature: str | None) -> bool:
    """Did the holder of ``key`` sign ``text``?  False for anything malformed."""
    public = _public_key(key)
    if public is None or signature is None or not is_signature(signature):
        return False
    try:
        public.verify(_unb64(signature), text.encode("utf-8"))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
