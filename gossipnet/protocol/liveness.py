"""The liveness rule of the report's section 6, for one neighbour.

Every ping-interval the peer calls :meth:`LivenessTracker.tick` and, unless the
neighbour is dead, sends a new liveness request.  A request counts as missed
when the next tick comes without a reply to it, so each request gets one full
interval to be answered; any reply resets the count.  So does any other line
from the neighbour: a peer that is sending gossip is alive, even when its
reply waits behind that gossip on a busy link or a loaded machine.  ``ping_misses``
consecutive misses make the neighbour dead: 3 misses at 13 s means a death is
detected 39 to 52 s after it happens, and never before 39 s of silence.

A connection that ends is not a death: a crashed peer's socket ends too, but
so does the link of a live neighbour that reported *this* peer dead (it was
hung, or cut off) and closed the link.  So the rule keeps counting on such a
link; meanwhile the peer dials the neighbour again (peerlinks.Linking._redial), and a
new link, with a fresh tracker, replaces this one if the neighbour answers.

No sockets and no clock here: the peer drives the ticks.
"""

from __future__ import annotations


class LivenessTracker:
    def __init__(self, ping_misses: int) -> None:
        if ping_misses < 1:
            raise ValueError("ping_misses must be >= 1")
        self.ping_misses = ping_misses
        self.misses = 0
        self._awaiting_reply = False

    def tick(self) -> bool:
        """A ping-interval passed; True if the neighbour is now dead.

        When it is not dead, the caller sends a new request right away (if the
        request cannot be delivered, it simply goes unanswered).
        """
        if self._awaiting_reply:
            self.misses += 1
        self._awaiting_reply = True
        return self.dead

    def replied(self) -> None:
        """A liveness reply, or any other line, arrived from the neighbour."""
        self.misses = 0
        self._awaiting_reply = False

    @property
    def dead(self) -> bool:
        return self.misses >= self.ping_misses
