"""The protocol document's example exchange is made of real lines: each parses,
re-encodes to itself, and each signature in it verifies against the keys shown
(a binding's vouches against the seed keys shown)."""

from __future__ import annotations

from pathlib import Path

from gossipnet.protocol import auth, wire

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def example_lines() -> list[str]:
    text = PROTOCOL.read_text(encoding="utf-8")
    block = text.split("## 8. Example", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    # "> " or "< " opens a line on the wire; "  #" starts a note beside it.
    return [raw[2:].split("  #", 1)[0].rstrip() for raw in block.splitlines() if raw[:2] in ("> ", "< ")]


def test_every_example_line_parses_and_round_trips():
    lines = example_lines()
    assert len(lines) >= 10
    for line in lines:
        assert wire.encode(wire.parse(line)).decode().rstrip("\n") == line


def test_every_signature_in_the_example_verifies():
    keys: dict[wire.Address, set[str]] = {}
    messages = [wire.parse(line) for line in example_lines()]
    for message in messages:
        if isinstance(message, wire.Register) and message.key:
            keys.setdefault(message.peer, set()).add(message.key)
        elif isinstance(message, wire.PeerList):
            for address, key in message.keys.items():
                keys.setdefault(address, set()).add(key)
        elif isinstance(message, wire.Keys):
            for address, key in message.keys:
                keys.setdefault(address, set()).add(key)
        elif isinstance(message, wire.Vouched):
            keys.setdefault(message.vouch.seed, set()).add(message.seed_key)
    signed = [message for message in messages if getattr(message, "signature", None)]
    assert signed, "the example shows authentication at work"
    for message in signed:
        signer = getattr(message, "origin", None) or getattr(message, "reporter", None) or message.replier
        assert any(auth.verify(key, message.body(), message.signature) for key in keys[signer]), message


def test_every_binding_in_the_example_is_vouched_for_by_a_seed_key_shown():
    messages = [wire.parse(line) for line in example_lines()]
    seed_keys = {m.vouch.seed: {m.seed_key} for m in messages if isinstance(m, wire.Vouched)}
    vouched = [m for m in messages if isinstance(m, wire.Vouched)]
    bindings = [m for m in messages if isinstance(m, wire.KeyBinding)]
    assert vouched and bindings, "the example shows keys travelling with the gossip"
    for m in vouched:
        assert auth.verify(m.seed_key, wire.binding_body(m.peer, m.key, m.vouch.when), m.vouch.signature)
    for binding in bindings:
        assert auth.vouched(binding, seed_keys), binding
        # ... and not for another key: the vouch covers the binding's key.
        assert not auth.vouched(wire.KeyBinding(binding.peer, vouched[0].seed_key, binding.vouches), seed_keys)
