"""The liveness rule of the report's section 6, for one neighbour, and what each way of checking sees.

Every ping-interval the peer calls :meth:`LivenessTracker.tick`, which closes
one *round*, and, unless the neighbour is dead, checks it again for the next.
How it checks is the peer's ``--liveness`` (:data:`LIVENESS_MODES`):

- ``app`` (the default): a liveness request over the link.  The round passes
  when a reply comes before the next tick, so each request gets one full
  interval to be answered; so does any other line from the neighbour: a peer
  that is sending gossip is alive, even when its reply waits behind that
  gossip on a busy link or a loaded machine.
- ``icmp``: the system ping utility, one echo request to the neighbour's IP,
  as the course handout asks.  The round passes when that round's ping got an
  echo reply (:meth:`LivenessTracker.icmp_result`; an answer to an earlier
  round's ping counts for nothing).
- ``both``: the round passes only when both checks pass; either failing is a miss.

A round that does not pass is a miss; ``ping_misses`` consecutive misses make
the neighbour dead, and a round that passes starts the count again: 3 misses
at 13 s means a death is detected 39 to 52 s after it happens, and never
before 39 s of silence.

What each way sees (docs/FAULTS.md has the lab's table).  An echo reply comes
from the neighbour's kernel, not from the peer process: a crashed or hung
process on a host that is still up answers ICMP, and only a host that is
unreachable (a cut cable, a host down) does not.  The application's request
is answered by the peer itself, so ``app`` sees all three.  On one host every
neighbour is on loopback, which always answers: ``icmp`` alone then detects
nothing (:func:`blind_to_processes`).

A connection that ends is not a death: a crashed peer's socket ends too, but
so does the link of a live neighbour that reported *this* peer dead (it was
hung, or cut off) and closed the link.  So the rule keeps counting on such a
link; meanwhile the peer dials the neighbour again (peerlinks.Linking._redial), and a
new link, with a fresh tracker, replaces this one if the neighbour answers.

No sockets, processes or clock here: the peer drives the ticks and runs the pings.
"""

from __future__ import annotations

import ipaddress

APP, ICMP, BOTH = "app", "icmp", "both"
LIVENESS_MODES = (APP, ICMP, BOTH)
# The checks of each mode, in the order PING_MISSED names the failed ones.
CHECKS = {APP: (APP,), ICMP: (ICMP,), BOTH: (APP, ICMP)}


def uses_icmp(mode: str) -> bool:
    """The peer runs the system ping in this mode."""
    return ICMP in CHECKS[mode]


def uses_app(mode: str) -> bool:
    """The peer sends liveness requests over the link in this mode."""
    return APP in CHECKS[mode]


def blind_to_processes(mode: str, neighbour_ip: str) -> bool:
    """Whether checking this neighbour this way can never detect its process's death.

    An address on loopback is this host's own, and this host always answers
    its own echo requests: ``icmp`` alone sees nothing there.  (``both`` still
    sees through its ``app`` half; any address, ICMP misses a crash or a hang
    while the neighbour's host is up: that is for the docs, not a warning.)
    """
    return mode == ICMP and ipaddress.ip_address(neighbour_ip).is_loopback


class LivenessTracker:
    def __init__(self, ping_misses: int, mode: str = APP) -> None:
        if ping_misses < 1:
            raise ValueError("ping_misses must be >= 1")
        if mode not in CHECKS:
            raise ValueError(f"liveness mode must be one of {', '.join(LIVENESS_MODES)}")
        self.ping_misses = ping_misses
        self.mode = mode
        self.misses = 0
        # Rounds closed so far: the ping the caller runs after a tick belongs to this one.
        self.round = 0
        # The checks the last tick found failed (empty when its round passed, or was the first).
        self.failed: tuple[str, ...] = ()
        self._owed: set[str] = set()  # the checks the round under way has not passed yet

    def tick(self) -> bool:
        """A ping-interval passed; True if the neighbour is now dead.

        When it is not dead, the caller checks it again right away (a request
        that cannot be delivered, or a ping that cannot run, simply goes
        unanswered).  The first tick closes no round: nothing was owed yet.
        """
        self.failed = tuple(check for check in CHECKS[self.mode] if check in self._owed)
        if self.failed:
            self.misses += 1
        self.round += 1
        self._owed = set(CHECKS[self.mode])
        return self.dead

    def replied(self) -> None:
        """A liveness reply, or any other line, arrived from the neighbour (counts in app and both)."""
        self._passed(APP)

    def icmp_result(self, round: int, answered: bool) -> None:
        """The ping run after tick number ``round`` ended, with an echo reply or not."""
        if answered and round == self.round:
            self._passed(ICMP)

    def _passed(self, check: str) -> None:
        if check not in CHECKS[self.mode]:
            return
        self._owed.discard(check)
        if not self._owed:
            self.misses = 0

    @property
    def dead(self) -> bool:
        return self.misses >= self.ping_misses
