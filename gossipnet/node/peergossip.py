"""A peer's gossip: creating messages, and receiving, verifying and forwarding them.

With authentication on (the default), the peer signs its gossip (and its
link and dead-node reports and liveness replies, see peer.py) with its
Ed25519 key (auth.py).  A gossip message from a neighbour is verified
against its origin's key before it is accepted, logged or forwarded.  Keys
come with the peer lists, and over the links: each seed a peer registers
with vouches for its key binding (VOUCH), and a binding goes over a link
before the first message of its origin that does (KEY, PROTOCOL.md §4.3),
checked against the keys of the seeds this peer registered with.  A key this
peer still lacks (its binding could not be checked) is fetched from the seeds
while the message waits.  A neighbour that
sends a message whose signature fails is cut off: honest peers never
forward one.

``Gossiping`` is a part of peer.Peer, whose __init__ holds the state it uses:
the Message List under the peer's lock (``message_list``, ``_lock``), the
keys and the messages waiting for one (``key_wait``, keywait.py), the links
it forwards to (``link_table``, linktable.py), ...  Not here: whether a
message is new and to whom it goes (messagelist.py), signing and verifying
(auth.py), reading lines off a link (peerlinks.py).
"""

from __future__ import annotations

from gossipnet.config import CONNECT_TIMEOUT, KEY_LOOKUP_ATTEMPTS, KEY_LOOKUP_BACKOFF
from gossipnet.logs import logformat
from gossipnet.node.link import Link
from gossipnet.protocol import auth
from gossipnet.protocol.messagelist import forward_targets
from gossipnet.protocol.wire import (
    MAX_KEYS_PER_REQUEST,
    Address,
    Error,
    GossipMessage,
    KeyBinding,
    Keys,
    KeysRequest,
    Message,
    ProtocolError,
    Vouched,
    binding_body,
    encode,
)


class Gossiping:
    """Creating, receiving, verifying, recording and forwarding the gossip of a peer.Peer."""

    def receive(self, message: GossipMessage, sender: Address) -> None:
        """A neighbour sent a message: verify it, then accept it.

        A message whose signature fails is judged once the seeds confirm the
        origin's key; then it is dropped and the neighbour cut off.  A message
        already in the ML is dropped before any verification: its
        identity is taken, and a forgery cannot displace it.
        """
        if self.identity is None:
            self.on_gossip(message, sender)
            return
        with self._lock:
            if message in self.message_list:
                return
        keys = self.key_wait.keys_or_hold(message, sender)
        if keys is None:
            return  # held until the seeds tell its origin's key
        if _verify(keys, message):
            self.on_gossip(message, sender)
            return
        # It fails against the key held.  The origin may have restarted with a
        # new key: ask the seeds before judging the neighbour that sent it.
        self.key_wait.hold(message, sender)

    def _reject(self, message: GossipMessage, sender: Address, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            count = self.rejected
        self.log.event(logformat.GOSSIP_REJECTED, msg=message.text, origin=message.origin, reason=reason,
                       count=count, **{"from": sender})

    def _key_lookup_loop(self) -> None:
        """Fetch keys of origins whose messages wait, then verify and accept those messages."""
        while not self.stopped.is_set():
            self.key_wait.wanted.wait()
            if self.stopped.is_set():
                return
            # Cleared before the origins are taken: a message held from here on asks for another pass.
            self.key_wait.wanted.clear()
            wanted = self.key_wait.origins(MAX_KEYS_PER_REQUEST)
            with self._lock:
                registered = list(self.registered_seeds)
            others = [seed for seed in self.seeds if seed not in registered]
            found, every_seed_answered = self._lookup_keys(wanted, registered, others)
            released, retry = self.key_wait.settle(wanted, found, every_seed_answered)
            if retry and not every_seed_answered:
                self.stopped.wait(KEY_LOOKUP_BACKOFF)  # the seeds are busy: do not hammer them
            if retry:
                self.key_wait.wanted.set()
            for message, sender, keys in released:
                self._judge(message, sender, keys)

    def _judge(self, message: GossipMessage, sender: Address, keys: frozenset[str] | None) -> None:
        """Accept a waiting message, or drop it; a bad signature also cuts off its sender."""
        if keys is None:
            self._reject(message, sender, "origin has no key at the seeds")
        elif _verify(keys, message):
            self.on_gossip(message, sender)
        else:
            reason = "bad signature" if message.signature else "unsigned"
            self._reject(message, sender, reason)
            self._cut(sender, f"bad input: gossip from origin {message.origin} with a {reason}")

    def _lookup_keys(self, wanted: list[Address], registered: list[Address],
                     others: list[Address]) -> tuple[list[tuple[Address, str]], bool]:
        """Every key the seeds hold for ``wanted``: those this peer registered with, then the others.

        Any two majorities share a seed, so together the seeds this peer
        registered with hold every live origin's keys; all are asked, since a
        restarted origin re-registered its new key with only some of them.
        But a seed can lose its Peer List (it restarted) before the origin
        registers there again, so for the origins none of them knows, the
        other seeds of the config are asked too.  Passes repeat a few times
        for origins no seed answered for, to ride out a busy seed or one that
        is relearning its peers.  Also returns whether every seed asked in
        the last pass answered, the other seeds included when some origin was
        still missing: only then does a missing key mean that the origin has none.
        """
        found: list[tuple[Address, str]] = []
        missing = list(wanted)
        every_seed_answered = False
        for attempt in range(KEY_LOOKUP_ATTEMPTS):
            every_seed_answered = True
            for group in (registered, others):
                for seed in group:
                    if self.stopped.is_set():
                        return found, False
                    try:
                        reply = self.ask_seed(seed, KeysRequest(tuple(missing)), CONNECT_TIMEOUT)
                    except (OSError, ProtocolError):
                        reply = None
                    if not isinstance(reply, Keys):
                        every_seed_answered = False
                        continue
                    found.extend((address, key) for address, key in reply.keys if address in missing)
                answered = {address for address, _ in found}
                missing = [origin for origin in missing if origin not in answered]
                if not missing:
                    break
            if not missing or self.stopped.wait(KEY_LOOKUP_BACKOFF * 2 ** attempt):
                break
        return found, every_seed_answered

    def on_gossip(self, message: GossipMessage, sender: Address | None) -> None:
        """A message arrived (or was created, sender None): record it, pass it on."""
        with self._lock:
            if not self.message_list.accept(message, sender):
                return
            line = encode(message)  # once, however many neighbours
            # Its copies from other neighbours come as this very line (the origin's
            # signature included): they are dropped before parsing.
            self.accepted_lines.add(line[:-1].decode("utf-8"))
            # Under the lock that installing a link holds: a link that missed this
            # message had it in its ML replay (peerlinks.Linking._open_link).
            links = self.link_table.current()
            for neighbour in forward_targets(links, sender):
                self._send_vouched(links[neighbour], message.origin, line)
        if sender is None:
            self.log.event(logformat.GOSSIP_GENERATED, msg=message.text, number=message.number)
        else:
            self.log.event(logformat.GOSSIP_RECEIVED, msg=message.text, origin=message.origin, **{"from": sender})

    def _send_vouched(self, link: Link, origin: Address, line: bytes | GossipMessage) -> None:
        """Send a message of ``origin`` on ``link``, after ``origin``'s binding if the link has not
        carried that binding yet.  Under the peer's lock (which guards link.bindings_sent)."""
        binding = self.key_wait.binding_line(origin)
        if binding is not None and link.bindings_sent.get(origin) is not binding:
            link.bindings_sent[origin] = binding
            link.send(binding)
        link.send(line)

    def on_binding(self, binding: KeyBinding, line: str) -> None:
        """A neighbour sent a binding: learn its key if a seed this peer knows vouched for it.

        A binding no known seed vouches for is ignored, not held against the
        neighbour (it may be honest, see KeyWait.accept_binding): it cannot
        make a message verify, and that origin's messages wait for the seeds.
        """
        if self.identity is None or not self.key_wait.accept_binding(binding):
            return
        with self._lock:
            self.accepted_lines.add(line)  # its copies from the other neighbours are dropped unparsed

    def on_vouched(self, seed: Address, reply: Message) -> None:
        """A seed answered this peer's VOUCH: learn the seed's key, add its vouch to this peer's binding."""
        if isinstance(reply, Vouched) and self.identity is not None and reply.peer == self.address \
                and reply.key == self.identity.key and reply.vouch.seed == seed \
                and auth.verify(reply.seed_key, binding_body(reply.peer, reply.key, reply.vouch.when),
                                reply.vouch.signature):
            self.key_wait.learn_seed(seed, reply.seed_key)
            self.key_wait.vouch_for_self(self.address, reply.key, reply.vouch)
            # Links already open (a neighbour dialled as soon as a seed listed this peer) get it now.
            own = self.key_wait.binding_line(self.address)
            with self._lock:
                for link in self.link_table.current().values():
                    if link.bindings_sent.get(self.address) is not own:
                        link.bindings_sent[self.address] = own
                        link.send(own)
        else:
            reason = reply.reason if isinstance(reply, Error) else f"a vouch that is not for this peer's key: " \
                                                                    f"{reply.encode()[:100]!r}"
            self.log.event(logformat.SEED_ERROR, seed=seed, request="VOUCH", reason=reason)

    def _gossip_loop(self) -> None:
        for number in range(1, self.settings.gossip_count + 1):
            if number > 1 and self.stopped.wait(self.settings.gossip_interval):
                return
            self.on_gossip(self._sign(GossipMessage(self.address, self._timestamp(), number)), None)


def _verify(keys: frozenset[str], message: GossipMessage) -> bool:
    """Signed by one of the keys its origin's address has had."""
    return any(auth.verify(key, message.body(), message.signature) for key in keys)
