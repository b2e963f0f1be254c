"""The Message List (ML) and the forwarding rule of the report's section 5.

No sockets here: the peer hands in what arrived and from whom, and gets back
whether it is new and to whom it goes next.  A simulator runs the same rule.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

Message = TypeVar("Message", bound=Hashable)
Node = TypeVar("Node", bound=Hashable)


def forward_targets(neighbours: Iterable[Node], sender: Node | None) -> list[Node]:
    """Every neighbour except the one the message came from (``neighbours`` holds each once)."""
    targets = list(neighbours)
    if sender is not None and sender in targets:
        # A copy and one removal, both in C: the simulator calls this once per peer per message.
        targets.remove(sender)
    return targets


class MessageList(Generic[Message, Node]):
    """Messages this peer has seen, each with the neighbour it came from first.

    Grows by gossip-count messages per peer in the network, so it is not
    trimmed; a long-running deployment would expire entries by age.
    """

    __slots__ = ("_first_sender",)  # a simulator holds one per peer: 100,000 of them

    def __init__(self) -> None:
        # message -> first sender (None for the peer's own messages); dicts keep
        # insertion order, which a catch-up replays.
        self._first_sender: dict[Message, Node | None] = {}

    def accept(self, message: Message, sender: Node | None) -> bool:
        """Record ``message``; True if it is new (log and forward it), False if seen."""
        if message in self._first_sender:
            return False
        self._first_sender[message] = sender
        return True

    def messages(self) -> list[Message]:
        """Every message seen, oldest first."""
        return list(self._first_sender)

    def first_sender(self, message: Message) -> Node | None:
        return self._first_sender[message]

    def __contains__(self, message: object) -> bool:
        return message in self._first_sender

    def __len__(self) -> int:
        return len(self._first_sender)
