"""The seed's dead-node rule (docs/PROTOCOL.md §6): which reports count, when to probe, what to decide.

Plain code: no sockets, threads or clock.  The rule takes what a seed knows
as values (the accused's :class:`Neighbours`, as the seed's table holds them)
and says what comes next: a decision (:class:`Wait`, :class:`Reject`,
:class:`Ignore`, :class:`Removed`), or a step the seed must take first
(:class:`Probe`, :class:`ProbeSilent`, :class:`Remove`), whose outcome the
seed hands back to the :class:`Check`.  The real seed (seed.py) probes over
the network and keeps its table under a lock; the simulator (sim/network.py) looks
up who is alive.  Both run this code, in this order:

- a report: :func:`screen` (rows 1-2 of §6.1), :func:`vet` (3-5), :func:`count`
  (6-8, which the table runs under its lock), then :func:`on_report` (9-13);
- a removal notice from another seed (§6.2): :func:`on_notice`;
- an accusation looked at again without a new report (§6.3): :func:`reconsider`,
  when a removal changed the accused's neighbours, when reporters that counted
  left, or when the accused's own connection to the seed ended.

Not here: the table (peertable.PeerTable), checking signatures (auth.py), logging,
announcing removals to the other seeds, and when to reconsider (a seed's
thread, or the simulator's calendar).
"""

from __future__ import annotations

from collections.abc import Generator, Hashable
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

from gossipnet.config import CONFIRMATIONS, MAX_SILENT_PROBES

# A peer as the table names it: a wire.Address in a seed, an int in the simulator.
Peer = Hashable

# The reasons a seed gives (§6.1, §6.2): logged, and sent back in OK lines.
NOT_IN_PL = "not in the peer list"
SELF_REPORT = "a peer cannot report itself"
NOT_REGISTERED = "reporter is not a registered live peer here"
UNSIGNED = "unsigned, but the reporter has a key"
BAD_SIGNATURE = "bad signature"
GONE = "already removed or re-registered"
NOT_NEIGHBOUR = "not a neighbour of the accused (by the accused's own link reports)"
ANSWERED = "accused answered the seed's liveness check"
NOT_A_SEED = "sender is not a seed in the config"
FAILED_TOO = "the seed's own liveness check failed too"
# How a removal's reason says why fewer reports than needed were enough (§6.1 row 13, §6.3).
CONNECTION_ENDED = "its connection to the seed ended"


# --- Decisions: the last step ----------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """The report counted; more are needed before the seed checks the accused."""

    decision: ClassVar[str] = "accepted"
    reason: str
    # Every neighbour still silent is accused here too: it may be dead and never
    # report, so the seed looks at this accusation again later (reconsider).
    reconsider: bool = False


@dataclass(frozen=True)
class Reject:
    decision: ClassVar[str] = "rejected"
    reason: str
    # The accused answered the seed's own check: the reports counted against
    # it are void, and a removal needs fresh ones.
    void_reports: bool = False


@dataclass(frozen=True)
class Ignore:
    decision: ClassVar[str] = "ignored"
    reason: str


@dataclass(frozen=True)
class Removed:
    decision: ClassVar[str] = "removed"
    reason: str


Decision = Wait | Reject | Ignore | Removed


# --- Steps the seed takes for the rule, then hands back the outcome ------------------


@dataclass(frozen=True)
class Probe:
    """The seed's own liveness check of the accused; answer with :meth:`Check.probed`."""

    peer: Peer


@dataclass(frozen=True)
class ProbeSilent:
    """Check these silent neighbours in turn, stopping at the first that answers (it may still
    report); answer with :meth:`Check.silent_probed`."""

    neighbours: tuple[Peer, ...]


@dataclass(frozen=True)
class Remove:
    """Take the accused out of the PL if the table still holds the incarnation judged;
    answer with :meth:`Check.removed`."""

    log_reason: str  # PL_REMOVED's reason
    announce: bool  # tell the other seeds (not for a removal that follows another seed's notice)


Step = Decision | Probe | ProbeSilent | Remove


# --- The accused's neighbours, and the count ------------------------------------------


@dataclass(frozen=True)
class Neighbours:
    """What a seed's table holds about one accused, read in one go: its neighbours, and its own connection."""

    # Its claims (the peers it reported links to) that are registered here now:
    # the only neighbours whose reports count.
    eligible: frozenset[Peer]
    # The eligible ones whose reports counted against this incarnation.
    reported: frozenset[Peer]
    # Eligible ones that have not reported and are accused here themselves.
    accused: frozenset[Peer]
    # Reporters whose reports counted against this incarnation and that are no
    # longer eligible: they left the PL (removed as dead) or registered again as a
    # new process.  Their reports no longer count, but the seed checks the accused
    # itself (§6.3): otherwise an accusation whose reporters die would wait forever.
    lost: frozenset[Peer] = frozenset()
    # The connection the accused registered on, and kept open, has ended: the seed
    # saw it go, as it does when a peer's process dies.  That counts as the seed's
    # own sign of a death, so one counted report is then enough to check it (row 13).
    disconnected: bool = False


@dataclass(frozen=True)
class Tally:
    """Where an accusation stands."""

    counted: int  # eligible neighbours whose reports counted
    needed: int  # CONFIRMATIONS, or every eligible neighbour able to report if fewer
    silent: tuple[Peer, ...]  # eligible neighbours that have not reported (less those found dead), sorted
    silent_accused: bool  # every silent one is itself accused here
    witnessed: bool = False  # the accused's own connection to the seed ended (Neighbours.disconnected)

    @property
    def enough(self) -> bool:
        """Enough reports counted for the seed to check the accused: ``needed``, or one once it saw
        the accused's connection end."""
        return self.counted >= 1 and (self.counted >= self.needed or self.witnessed)

    @property
    def short(self) -> bool:
        """Enough only because the seed saw the accused's connection end (row 13)."""
        return self.counted < self.needed


def tally(neighbours: Neighbours, unable: frozenset[Peer] = frozenset()) -> Tally:
    """The count against an accused, and the count needed.

    ``unable`` are eligible neighbours the seed found dead itself: they cannot
    report, so they do not count toward the reports needed.
    """
    silent = tuple(sorted(neighbours.eligible - neighbours.reported - unable))
    return Tally(len(neighbours.reported), min(CONFIRMATIONS, len(neighbours.eligible - unable)), silent,
                 all(peer in neighbours.accused for peer in silent), neighbours.disconnected)


# --- A dead-node report: rows 1-8 of §6.1 ----------------------------------------------


def screen(reporter: Peer, accused: Peer, listed: bool) -> Ignore | Reject | None:
    """Rows 1-2: a report about a peer not in the PL, or about the reporter itself; None to go on."""
    if not listed:
        return Ignore(NOT_IN_PL)
    if reporter == accused:
        return Reject(SELF_REPORT)
    return None


def vet(listed: bool, key_bound: bool = False, signed: bool = False, verified: bool = False) -> Reject | None:
    """Rows 3-5 (and a LINK's vetting, §3.5): why a report cannot be taken as its reporter's word.

    The reporter must be registered here (``listed``), and if a key is bound
    to it, the report must carry a signature that the key ``verified``.  None
    if the report can be taken.
    """
    if not listed:
        return Reject(NOT_REGISTERED)
    if key_bound and not signed:
        return Reject(UNSIGNED)
    if key_bound and not verified:
        return Reject(BAD_SIGNATURE)
    return None


def count(reporter: Peer, neighbours: Neighbours | None, reporter_listed: bool) -> Reject | Neighbours:
    """Rows 6-8: does the report count, and the accused's neighbours once it does.

    ``neighbours`` is None when the table no longer holds the incarnation of
    the accused the seed first looked at; ``reporter_listed`` is read at the
    same moment.  A report counts when its reporter is an eligible neighbour;
    a reporter counts once, however often it reports.
    """
    if neighbours is None:
        return Reject(GONE)
    if not reporter_listed:
        return Reject(NOT_REGISTERED)
    if reporter not in neighbours.eligible:
        return Reject(NOT_NEIGHBOUR)
    return replace(neighbours, reported=neighbours.reported | {reporter}, accused=neighbours.accused - {reporter})


# --- From the count to the decision ----------------------------------------------------


class Check:
    """One look at an accusation, step by step, until the seed decides.

    ``step`` is what to do next.  The seed answers a :class:`Probe` with
    :meth:`probed`, a :class:`ProbeSilent` with :meth:`silent_probed`, a
    :class:`Remove` with :meth:`removed`.  Any other step is the last: a
    decision, or None when there is nothing to decide (and nothing to log).

    The rules (``_on_report``, ``_reconsider``, ``_on_notice``) are generators
    that yield the steps they need and return their decision, so each reads
    top to bottom like the protocol; a Check sends each outcome back in.
    """

    def __init__(self, rule: Generator[Step, object, Decision | None]) -> None:
        self._rule = rule
        self.step: Step | None = None
        self._resume(None)

    def probed(self, answered: bool) -> None:
        """The outcome of a Probe: did the peer answer?"""
        self._expect(Probe)
        self._resume(answered)

    def silent_probed(self, answered: bool, now: Neighbours | None = None) -> None:
        """The outcome of a ProbeSilent: did one answer, and if none did, the accused's neighbours now
        (None if the table no longer holds the incarnation judged)."""
        self._expect(ProbeSilent)
        self._resume((answered, now))

    def removed(self, done: bool) -> None:
        """The outcome of a Remove: False if the table no longer held the incarnation judged."""
        self._expect(Remove)
        self._resume(done)

    def _expect(self, kind: type) -> None:
        if not isinstance(self.step, kind):
            raise TypeError(f"the rule is at {self.step!r}, not at a {kind.__name__}")

    def _resume(self, outcome: object) -> None:
        try:
            self.step = self._rule.send(outcome)
        except StopIteration as end:
            self.step = end.value


class Seat(Protocol):
    """What a seed does for the rule: the real seed over sockets, the simulator's by looking up who is alive."""

    def probe(self, peer: Peer) -> bool:
        """The seed's own liveness check: does ``peer`` answer?"""

    def probe_silent(self, peer: Peer) -> bool:
        """The same check of a silent neighbour (a stopping seed takes it as answered)."""

    def neighbours_of(self, record: object) -> Neighbours | None:
        """The accused's neighbours as the table holds them now (None: no longer that incarnation)."""

    def remove(self, record: object, reason: str, announce: bool) -> bool:
        """Take the accused out of the PL; False if the table no longer held that incarnation."""

    def void_reports(self, record: object) -> None:
        """The accused answered: the reports counted against it no longer count."""

    def reconsider_later(self, accused: list[Peer]) -> None:
        """Look at these accusations again later, without a new report."""


def carry_out(check: Check, record: object, seat: Seat) -> Decision | None:
    """Take the steps ``check`` asks for about the accused of ``record``, by ``seat``, until it decides.

    The one driver of the rule: the real seed and the simulator differ only in their ``seat``.
    """
    while True:
        step = check.step
        if isinstance(step, Probe):
            check.probed(seat.probe(step.peer))
        elif isinstance(step, ProbeSilent):
            answered = any(seat.probe_silent(peer) for peer in step.neighbours)  # stops at the first answer
            check.silent_probed(answered, None if answered else seat.neighbours_of(record))
        elif isinstance(step, Remove):
            check.removed(seat.remove(record, step.log_reason, step.announce))
        else:
            if isinstance(step, Reject) and step.void_reports:
                seat.void_reports(record)
            if isinstance(step, Wait) and step.reconsider:
                seat.reconsider_later([record.address])
            return step


def look_again(table, accused: Peer, seat: Seat) -> tuple[object, Decision] | None:
    """Run :func:`reconsider` for ``accused`` as ``table`` (a PeerTable) holds it, by ``seat``.

    The record judged and the decision to log, or None when there is nothing
    to look at (not listed, no report counted) or nothing to decide.  The one
    path of the real seed's reconsidering thread and the simulator's calendar.
    """
    record = table.get(accused)
    if record is None or record.last_report is None:
        return None
    neighbours = table.neighbours(record)
    if neighbours is None:
        return None
    decision = carry_out(reconsider(accused, neighbours), record, seat)
    return None if decision is None else (record, decision)


def on_report(accused: Peer, neighbours: Neighbours) -> Check:
    """Rows 9-13 of §6.1, after a report counted; ``neighbours`` as :func:`count` left them."""
    return Check(_on_report(accused, tally(neighbours)))


def reconsider(accused: Peer, neighbours: Neighbours) -> Check:
    """Decide again about a peer already reported, without a new report (§6.3).

    Things that change an accusation after its last report: reporters whose
    reports counted leave (they die and are removed, or come back as a new
    process), a removal takes one of the accused's other neighbours out of
    the PL (it will never report), eligible neighbours stay silent because
    they are dead too, and the accused's own connection to the seed ends.

    - A reporter lost: the seed checks the accused itself at once, and
      removes it if the check fails (rows 2-3 of §6.3).  The report was a
      neighbour's, by the accused's own link reports; the check verifies it.
    - Otherwise the reports that still count decide as a new report would
      (row 13 of §6.1 included).  A silent neighbour is checked only when
      every silent one is accused here (at most MAX_SILENT_PROBES of them),
      and counts as unable to report only if it fails the seed's own check.

    Either way the accused is removed only if it fails the seed's own check.
    Only a rejection or a removal is a decision worth logging: anything else
    ends with None.
    """
    return Check(_reconsider(accused, neighbours))


def on_notice(sender: Peer, accused: Peer, from_seed: bool, listed: bool) -> Check:
    """§6.2: another seed removed ``accused``; this seed checks it itself before it follows.

    ``from_seed``: the sender is a seed of this seed's config; ``listed``: the
    accused is in this seed's PL.
    """
    return Check(_on_notice(sender, accused, from_seed, listed))


def _on_report(accused: Peer, now: Tally) -> Generator[Step, object, Decision]:
    if not now.enough:
        return Wait(f"waiting for confirmation: {now.counted} of {now.needed} neighbours reported",
                    reconsider=now.silent_accused)
    return (yield from _judge(accused, now))


def _reconsider(accused: Peer, neighbours: Neighbours) -> Generator[Step, object, Decision | None]:
    now = tally(neighbours)
    lost = len(neighbours.lost)
    if not now.counted and not lost:
        return None
    unable: tuple[Peer, ...] = ()
    if (not now.enough and not lost and now.silent_accused and len(now.silent) <= MAX_SILENT_PROBES):
        answered, after = yield ProbeSilent(now.silent)
        if answered or after is None:
            return None  # one may still report; or the accused left the PL meanwhile
        unable = now.silent
        now = tally(after, frozenset(unable))
        lost = len(after.lost)
    if not now.enough and not lost:
        return None
    decision = yield from _judge(accused, now, len(unable), 0 if now.enough else lost)
    return None if isinstance(decision, Ignore) else decision


def _judge(accused: Peer, now: Tally, unable: int = 0, lost: int = 0) -> Generator[Step, object, Decision]:
    """Rows 10-13 of §6.1 and 2-3 of §6.3: the reports warrant a check, and the seed's own check decides.

    ``unable``: silent neighbours the seed found dead; ``lost``: reporters that
    counted and left, when they are what warrants the check.
    """
    if (yield Probe(accused)):
        return Reject(ANSWERED, void_reports=True)
    if lost:
        why = f"{now.counted} of {now.needed} neighbours reported, {lost} more reported and then left,"
        log = f"dead: {now.counted} neighbours reported, {lost} more reported and then left"
    elif now.short:
        why = f"{now.counted} of {now.needed} neighbours reported, {CONNECTION_ENDED},"
        log = f"dead: {now.counted} neighbours reported, {CONNECTION_ENDED}"
    else:
        also = f" ({unable} more failed the seed's liveness check themselves)" if unable else ""
        why = f"{now.counted} of {now.needed} neighbours reported{also}"
        log = f"dead: {now.counted} neighbours reported"
    if not (yield Remove(f"{log}, seed's liveness check failed", announce=True)):
        return Ignore(GONE)
    return Removed(f"{why} and the seed's liveness check failed")


def _on_notice(sender: Peer, accused: Peer, from_seed: bool, listed: bool) -> Generator[Step, object, Decision]:
    if not from_seed:
        return Reject(NOT_A_SEED)
    if not listed:
        return Ignore(NOT_IN_PL)
    if (yield Probe(accused)):
        return Reject(ANSWERED)  # the reports counted here, if any, stand: only a report's own check voids them
    if not (yield Remove(f"dead: removed by seed {sender}, seed's liveness check failed", announce=False)):
        return Ignore(GONE)
    return Removed(FAILED_TOO)
