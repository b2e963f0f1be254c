"""Ed25519 signatures: who said a line, checked without trusting the sender.

Each peer holds one :class:`Identity` (an Ed25519 key pair, made at start).
Its public key is bound to its ``IP:port`` by the seeds at registration, after
the address proves it holds the key (seed.py), and travels with the peer
list.  A signed line carries its signature as a last field; the signature
covers the rest of the line, verb included, so a signature made for one kind
of message is worthless on another.

Keys and signatures travel as unpadded URL-safe base64 (43 and 86
characters; wire.py checks their shape).  This module does no I/O.

The signatures are PyNaCl's (libsodium).  Measured against `cryptography`
on the project's machine (docs/BENCHMARKS.md, "Ed25519 libraries"): a verify
takes about half the time and a node's resident memory grows by a third as
much once the library is loaded, so PyNaCl is better on both.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping, Set

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from gossipnet.protocol.wire import Address, KeyBinding, binding_body, is_key, is_signature


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Identity:
    """A node's key pair.  ``key`` is the public half, as sent on the wire."""

    def __init__(self, seed: bytes | None = None) -> None:
        """A new random key pair; or, given 32 bytes of ``seed``, the pair they make (tests repeat one)."""
        self._private = SigningKey.generate() if seed is None else SigningKey(seed)
        self.key = _b64(bytes(self._private.verify_key))

    def sign(self, text: str) -> str:
        return _b64(self._private.sign(text.encode("utf-8")).signature)


@functools.lru_cache(maxsize=4096)
def _public_key(key: str) -> VerifyKey | None:
    """The key object for ``key`` text, built once per key; None if it is not a valid key."""
    if not is_key(key):
        return None
    try:
        return VerifyKey(_unb64(key))
    except (ValueError, binascii.Error, CryptoError):
        return None


def verify(key: str, text: str, signature: str | None) -> bool:
    """Did the holder of ``key`` sign ``text``?  False for anything malformed."""
    public = _public_key(key)
    if public is None or signature is None or not is_signature(signature):
        return False
    try:
        public.verify(text.encode("utf-8"), _unb64(signature))
    except (BadSignatureError, CryptoError, ValueError, binascii.Error):
        return False
    return True


def vouched(binding: KeyBinding, seed_keys: Mapping[Address, Set[str]]) -> bool:
    """Does a seed whose key is in ``seed_keys`` vouch for ``binding``?

    Only the vouches of seeds named in ``seed_keys`` are checked (the others
    are unknown, not wrong), each against every key held for its seed, and
    the first that verifies settles it: one signature check for an honest binding.
    """
    for vouch in binding.vouches:
        body = binding_body(binding.peer, binding.key, vouch.when)
        if any(verify(key, body, vouch.signature) for key in seed_keys.get(vouch.seed, ())):
            return True
    return False
