"""The dashboard's view of a run: its state as of any moment, kept up to date as the log grows.

A :class:`runlog.Run` holds the facts of a run as of the last line read.
The dashboard also wants them as of any time t into the run (its timeline
slider), in milliseconds, while a reader keeps folding more of the log in.
:class:`Timeline` indexes, once per event and in log order, what a Run
keeps without its time or does not keep (links opening and closing, missed
pings, reports, each seed's Peer List changes and decisions), and answers
:meth:`Timeline.state` from that index and the Run's own facts (messages,
first receipts, hop counts), counting as runlog counts: a peer is dead once
a peer reported it or a seed removed it, a message is expected at every live
peer but its origin, a dissemination time runs to the last live peer's first
receipt.  At the end of the log its counters are ``Run.summary()``'s.

Times in what it returns are seconds since the run's first log line.
No I/O and no threads: dashboard.py feeds it and holds the lock around it.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

from gossipnet.logs import logformat, runlog
from gossipnet.logs.logformat import LogEvent, LogFormatError
from gossipnet.protocol import topology
from gossipnet.protocol.wire import Address

MessageKey = tuple[Address, str]

# Peer conditions, in the order a killed peer goes through them.
LIVE, STOPPED, MISSED, REPORTED, REMOVED = "live", "stopped", "missed", "reported", "removed"
FITS_KEPT = 64  # power-law fits remembered (by degree sequence): a slider drag asks for many


@dataclass
class _Suspect:
    """A peer that a neighbour missed or reported: its own lines from then on tell whether it was alive."""

    before: float | None  # its last own line before it was first suspected
    lines: list[float] = field(default_factory=list)  # its own lines since, in log order


@dataclass
class _Spread:
    """A message's first receipts (the Run's, ``receivers``), by time: their times, and the peers in that order."""

    receivers: dict[Address, runlog.Receipt]
    times: list[float] = field(default_factory=list)
    peers: list[Address] = field(default_factory=list)


def message_id(key: MessageKey) -> str:
    """A message's name in the dashboard's JSON: ``ORIGIN/TEXT``."""
    return f"{key[0]}/{key[1]}"


class Timeline:
    """A run's state as of any time, from one :class:`runlog.Run` that grows (see the module docstring)."""

    def __init__(self, run: runlog.Run) -> None:
        self.run = run
        self._indexed = 0  # run.events indexed so far
        self.start: float | None = None  # time of the earliest line
        self.last: float | None = None  # time of the latest line
        self.first_seen: dict[Address, float] = {}  # peer -> its first own line
        self._last_line: dict[Address, float] = {}  # peer -> its latest own line, in log order
        self.links: dict[frozenset[Address], list[tuple[float, bool]]] = {}  # changes, by time
        self.opened: dict[frozenset[Address], float] = {}  # each link's first opening
        self.misses: dict[Address, list[tuple[float, Address, int]]] = {}  # PING_MISSED about a peer
        self.accusations: dict[Address, list[tuple[float, Address]]] = {}  # DEAD_NODE_REPORTED about a peer
        self.holdings: dict[Address, dict[Address, list[tuple[float, bool]]]] = {}  # peer -> seed -> PL changes
        self.decisions: dict[Address, list[tuple[float, Address, str, str]]] = {}  # what seeds said about a peer
        self.suspects: dict[Address, _Suspect] = {}
        self.created: list[tuple[float, MessageKey]] = []  # messages, by creation time
        self.ids: dict[str, MessageKey] = {}
        self._spreads: dict[tuple[str, str], _Spread] = {}  # by the (origin=, msg=) texts of its receipts
        self._spread_of: dict[MessageKey, _Spread] = {}
        self._fits: dict[tuple[int, ...], tuple[topology.PowerLawFit | None, str]] = {}

    # --- Indexing -----------------------------------------------------------------------

    def update(self) -> int:
        """Index the events the Run gained since the last call; returns how many."""
        events = self.run.events
        new = events[self._indexed:]
        self._indexed = len(events)
        if not new:
            return 0
        first_seen, last_line, suspects = self.first_seen, self._last_line, self.suspects
        start, last = self.start, self.last
        handlers = self._HANDLERS
        for event in new:
            stamp = event.timestamp
            if start is None or stamp < start:
                start = stamp
            if last is None or stamp > last:
                last = stamp
            if event.role == "peer":
                node = event.node
                if node not in first_seen:
                    first_seen[node] = stamp
                last_line[node] = stamp
                suspect = suspects.get(node)
                if suspect is not None:
                    suspect.lines.append(stamp)
            handler = handlers.get(event.event)
            if handler is not None:
                with contextlib.suppress(LogFormatError, KeyError, ValueError):  # the Run listed it in run.errors
                    handler(self, event)
        self.start, self.last = start, last
        return len(new)

    def _suspect(self, peer: Address) -> None:
        if peer not in self.suspects:
            self.suspects[peer] = _Suspect(self._last_line.get(peer))

    def _on_link(self, event: LogEvent) -> None:
        change = runlog.link_change(self.run, event)
        if change is None:
            return
        link = frozenset((change.node, change.neighbour))
        bisect.insort(self.links.setdefault(link, []), (change.time, change.opened))
        if change.opened and change.time < self.opened.get(link, change.time + 1):
            self.opened[link] = change.time

    def _on_missed(self, event: LogEvent) -> None:
        peer = event.address("neighbour")
        self._suspect(peer)
        bisect.insort(self.misses.setdefault(peer, []), (event.timestamp, event.node, int(event.fields["misses"])))

    def _on_reported(self, event: LogEvent) -> None:
        peer = event.address("dead")
        self._suspect(peer)
        bisect.insort(self.accusations.setdefault(peer, []), (event.timestamp, event.node))

    def _on_peer_list(self, event: LogEvent) -> None:
        peer, added = event.address("peer"), event.event == logformat.PL_ADDED
        bisect.insort(self.holdings.setdefault(peer, {}).setdefault(event.node, []), (event.timestamp, added))
        if event.event == logformat.PL_REMOVED:
            self._decided(peer, event, "removed it from its Peer List", event.fields.get("reason", ""))
        elif event.event == logformat.PEER_LEFT:
            self._decided(peer, event, "took it out of its Peer List", "it left (LEAVE)")

    def _on_decision(self, event: LogEvent) -> None:
        reporter = event.fields.get("reporter", "?")
        self._decided(event.address("dead"), event, f"{event.fields['decision']} (report by {reporter})",
                      event.fields.get("reason", ""))

    def _on_notice(self, event: LogEvent) -> None:
        self._decided(event.address("dead"), event,
                      f"{event.fields['decision']} (removal notice from {event.fields.get('seed', '?')})",
                      event.fields.get("reason", ""))

    def _decided(self, peer: Address, event: LogEvent, decision: str, reason: str) -> None:
        bisect.insort(self.decisions.setdefault(peer, []), (event.timestamp, event.node, decision, reason))

    def _on_generated(self, event: LogEvent) -> None:
        key = (event.node, event.fields["msg"])
        if key in self.run.messages and message_id(key) not in self.ids:
            self.ids[message_id(key)] = key
            bisect.insort(self.created, (self.run.messages[key].created, key))

    def _on_received(self, event: LogEvent) -> None:
        # Nearly every line of a big run: the texts of its fields find the message, parsed once per message.
        fields = event.fields
        spread = self._spreads.get((fields["origin"], fields["msg"]))
        if spread is None:
            key = (event.address("origin"), fields["msg"])
            if key not in self.run.receipts:
                return
            spread = self._spreads[fields["origin"], fields["msg"]] = self._spread_of[key] = \
                _Spread(self.run.receipts[key])
        receipt = spread.receivers.get(event.node)
        if receipt is None or receipt.line != event.line:
            return  # a duplicate, or a receipt the Run refused
        times = spread.times
        if not times or event.timestamp >= times[-1]:
            times.append(event.timestamp)
            spread.peers.append(event.node)
        else:  # lines of several processes may reach the file a little out of time order
            index = bisect.bisect_right(times, event.timestamp)
            times.insert(index, event.timestamp)
            spread.peers.insert(index, event.node)

    _HANDLERS = {
        logformat.LINK_OPENED: _on_link,
        logformat.LINK_CLOSED: _on_link,
        logformat.PING_MISSED: _on_missed,
        logformat.DEAD_NODE_REPORTED: _on_reported,
        logformat.PL_ADDED: _on_peer_list,
        logformat.PL_REMOVED: _on_peer_list,
        logformat.PEER_LEFT: _on_peer_list,
        logformat.DEAD_NODE_DECISION: _on_decision,
        logformat.REMOVAL_NOTICE: _on_notice,
        logformat.GOSSIP_GENERATED: _on_generated,
        logformat.GOSSIP_RECEIVED: _on_received,
    }

    # --- Answers ------------------------------------------------------------------------

    @property
    def duration(self) -> float:
        """Seconds from the first line to the latest."""
        return 0.0 if self.start is None else self.last - self.start

    def moment(self, at: float | None) -> float:
        """The absolute time of ``at`` seconds into the run (None: the latest line), within the run."""
        if self.start is None:
            return 0.0
        return self.start + (self.duration if at is None else min(max(at, 0.0), self.duration))

    def state(self, at: float | None = None, message: str | None = None) -> dict:
        """Everything the page draws, as of ``at`` seconds into the run (None: the latest line).

        ``message``: the id of the message to show spreading; None for the
        latest one created by then.  KeyError if there is no such message.
        """
        now = self.moment(at)
        peers = sorted(peer for peer, first in self.first_seen.items() if first <= now)
        conditions = {peer: self._condition(peer, now) for peer in peers}
        dead = {peer for peer in peers if self._dead(peer, now)}
        live = [peer for peer in peers if peer not in dead]
        degrees = self._degrees(peers, now)
        state = {
            "time": {"start": self.start, "t": round(now - (self.start or 0.0), 6), "end": round(self.duration, 6)},
            "peers": [self._peer(peer, conditions[peer], degrees.get(peer, 0), now) for peer in peers],
            "seeds": self._seeds(now),
            "links": self._links(conditions, now),
            "counters": self._counters(peers, live, dead, degrees, now),
            "degrees": self._histogram(peers, dead, degrees),
            "message": self._message(message, set(live), now),
        }
        return state

    def messages(self, at: float | None = None, limit: int = 500) -> list[dict]:
        """The latest ``limit`` messages created by ``at``, newest first, with how far each had spread."""
        now = self.moment(at)
        end = bisect.bisect_right(self.created, (now, _LAST))
        listed = []
        for created, key in reversed(self.created[max(0, end - limit):end]):
            times, _ = self._sorted_receipts(key)
            message = self.run.messages[key]
            listed.append({"id": message_id(key), "origin": str(key[0]), "number": message.number,
                           "created": round(created - self.start, 6),
                           "received": bisect.bisect_right(times, now)})
        return listed

    # --- Peers --------------------------------------------------------------------------

    def _removals(self, peer: Address, now: float) -> tuple[int, int]:
        """(seeds that removed ``peer`` by ``now``, seeds that still held it then)."""
        removed = held = 0
        for changes in self.holdings.get(peer, {}).values():
            seen = changes[:bisect.bisect_right(changes, (now, True))]
            if any(not added for _, added in seen):
                removed += 1
            if seen and seen[-1][1]:
                held += 1
        return removed, held

    def _reported(self, peer: Address, now: float) -> float | None:
        accusations = self.accusations.get(peer)
        return accusations[0][0] if accusations and accusations[0][0] <= now else None

    def _dead(self, peer: Address, now: float) -> bool:
        """runlog's definition: a peer reported dead, or removed by a seed."""
        return self._reported(peer, now) is not None or self._removals(peer, now)[0] > 0

    def _last_own_line(self, peer: Address, now: float) -> float | None:
        suspect = self.suspects[peer]
        index = bisect.bisect_right(suspect.lines, now)
        if index:
            return suspect.lines[index - 1]
        return suspect.before if suspect.before is not None and suspect.before <= now else None

    def _condition(self, peer: Address, now: float) -> str:
        if peer in self.suspects:
            removed, held = self._removals(peer, now)
            if removed and not held:
                return REMOVED
            if removed or self._reported(peer, now) is not None:
                return REPORTED
            misses = self.misses.get(peer, [])
            index = bisect.bisect_right(misses, (now, _LAST))
            if index and misses[index - 1][0] > (self._last_own_line(peer, now) or 0.0):
                return MISSED
        node = self.run.peers.get(peer)
        if node is not None and node.stopped is not None and node.stopped <= now:
            return STOPPED
        return LIVE

    def _peer(self, peer: Address, condition: str, degree: int, now: float) -> dict:
        entry = {"id": str(peer), "state": condition, "degree": degree,
                 "started": round(self.first_seen[peer] - self.start, 6)}
        if peer in self.suspects:
            misses = self.misses.get(peer, [])
            latest: dict[Address, tuple[float, int]] = {}
            for time, reporter, count in misses[:bisect.bisect_right(misses, (now, _LAST))]:
                latest[reporter] = (time, count)
            entry["missed_by"] = [[str(reporter), count, round(time - self.start, 6)]
                                  for reporter, (time, count) in sorted(latest.items())]
            accusations = self.accusations.get(peer, [])
            entry["reported_by"] = [[str(reporter), round(time - self.start, 6)]
                                    for time, reporter in accusations[:bisect.bisect_right(accusations, (now, _LAST))]]
            decisions = self.decisions.get(peer, [])
            entry["decisions"] = [[str(seed), decision, reason, round(time - self.start, 6)]
                                  for time, seed, decision, reason in
                                  decisions[:bisect.bisect_right(decisions, (now, _LAST))]]
        return entry

    def _seeds(self, now: float) -> list[dict]:
        held: Counter[Address] = Counter()
        for seeds in self.holdings.values():
            for seed, changes in seeds.items():
                seen = changes[:bisect.bisect_right(changes, (now, True))]
                if seen and seen[-1][1]:
                    held[seed] += 1
        return [{"id": str(seed), "peer_list": held[seed]} for seed, node in sorted(self.run.seeds.items())
                if (node.started if node.started is not None else self.start) <= now]

    # --- The overlay --------------------------------------------------------------------

    def _links(self, conditions: dict[Address, str], now: float) -> list[list[str]]:
        """Links up at ``now`` ([a, b, "up"]), and links a silent peer had when it fell silent ([a, b, "lost"])."""
        drawn = []
        for link, changes in self.links.items():
            index = bisect.bisect_right(changes, (now, True))
            if not index:
                continue
            a, b = sorted(link)
            ends = (conditions.get(a), conditions.get(b))
            if None in ends or REMOVED in ends:
                continue
            if changes[index - 1][1]:
                drawn.append([str(a), str(b), "up"])
                continue
            for end, condition in zip((a, b), ends, strict=True):
                if condition in (MISSED, REPORTED):
                    silent = self._last_own_line(end, now)
                    before = bisect.bisect_right(changes, (silent, True)) if silent is not None else 0
                    if before and changes[before - 1][1]:
                        drawn.append([str(a), str(b), "lost"])
                        break
        return drawn

    def _degrees(self, peers: list[Address], now: float) -> dict[Address, int]:
        """Degrees in the overlay of every link opened by ``now``, as Run.degrees counts them."""
        degrees = dict.fromkeys(peers, 0)
        for link, opened in self.opened.items():
            if opened <= now:
                for end in link:
                    degrees[end] = degrees.get(end, 0) + 1
        return degrees

    def _histogram(self, peers: list[Address], dead: set[Address], degrees: dict[Address, int]) -> dict:
        """Peers per degree, live and dead, and the power-law fit with its expected counts (as degrees.png)."""
        live_counts: Counter[int] = Counter(degrees[peer] for peer in peers if peer not in dead)
        dead_counts: Counter[int] = Counter(degrees[peer] for peer in peers if peer in dead)
        top = max(degrees.values(), default=0)
        histogram = [[k, live_counts[k], dead_counts[k]] for k in range(top + 1)]
        fit, problem = self._fit(tuple(sorted(degrees.values())))
        result: dict = {"histogram": histogram, "fit": None, "fit_problem": problem}
        if fit is not None:
            from scipy.special import zeta  # here: the page's other answers need no scipy

            scale = fit.tail / float(zeta(fit.alpha, fit.k_min))
            result["fit"] = {"alpha": round(fit.alpha, 4), "k_min": fit.k_min, "tail": fit.tail,
                             "verdict": fit.verdict,
                             "curve": [[k, round(scale * k ** -fit.alpha, 4)] for k in range(fit.k_min, top + 1)]}
        return result

    def _fit(self, degrees: tuple[int, ...]) -> tuple[topology.PowerLawFit | None, str]:
        found = self._fits.get(degrees)
        if found is None:
            try:
                fit = topology.fit_power_law(degrees)
                found = (fit, "") if math.isfinite(fit.alpha) and math.isfinite(fit.p_value) else \
                    (None, "the fit did not converge")
            except (ValueError, ZeroDivisionError, IndexError) as exc:  # too few distinct degrees
                found = None, str(exc)
            if len(self._fits) >= FITS_KEPT:
                self._fits.pop(next(iter(self._fits)))
            self._fits[degrees] = found
        return found

    # --- Gossip -------------------------------------------------------------------------

    def _sorted_receipts(self, key: MessageKey) -> tuple[list[float], list[Address]]:
        """A message's first receipts by time: their times, and the peers in the same order."""
        spread = self._spread_of.get(key)
        return ([], []) if spread is None else (spread.times, spread.peers)

    def _spread(self, key: MessageKey, live: set[Address], dead: set[Address], now: float
                ) -> tuple[int, int, float | None]:
        """(receipts at live peers by ``now``, receipts expected, dissemination time if complete)."""
        origin = key[0]
        times, peers = self._sorted_receipts(key)
        count = bisect.bisect_right(times, now)
        receivers = self.run.receipts.get(key, {})
        # Receipts by now at a dead peer, or at the origin itself, are not deliveries.
        outside = {peer for peer in (*dead, origin) if (got := receivers.get(peer)) is not None and got.time <= now}
        delivered = count - len(outside)
        expected = len(live) - (origin in live)
        if delivered != expected:
            return delivered, expected, None
        last = self.run.messages[key].created
        for index in range(count - 1, -1, -1):
            if peers[index] in live and peers[index] != origin:
                last = max(last, times[index])
                break
        return delivered, expected, max(0.0, last - self.run.messages[key].created)

    def _counters(self, peers: list[Address], live: list[Address], dead: set[Address],
                  degrees: dict[Address, int], now: float) -> dict:
        live_set = set(live)
        delivered = expected = 0
        times = []
        for _, key in self.created[:bisect.bisect_right(self.created, (now, _LAST))]:
            got, wanted, time = self._spread(key, live_set, dead, now)
            delivered += got
            expected += wanted
            if time is not None:
                times.append(time)
        ordered = sorted(degrees.values()) or [0]
        false_reports = sum(1 for peer, accusations in self.accusations.items() if peer in self.run.peers
                            for time, _ in accusations if time <= now and self._spoke_between(peer, time, now))
        return {
            "peers": len(peers),
            "live": len(live),
            "links": sum(1 for opened in self.opened.values() if opened <= now),
            "degree_min": ordered[0],
            "degree_median": statistics.median(ordered),
            "degree_max": ordered[-1],
            "messages": bisect.bisect_right(self.created, (now, _LAST)),
            "delivered": delivered,
            "expected": expected,
            "delivery": 1.0 if expected == 0 else delivered / expected,
            "dissemination_median": statistics.median(times) if times else None,
            "dissemination_p99": runlog.percentile(times, 0.99) if times else None,
            "complete": len(times),
            "reported": sum(1 for peer in peers if self._reported(peer, now) is not None),
            "removed": sum(1 for peer in peers if self._removals(peer, now)[0]),
            "false_reports": false_reports,
        }

    def _spoke_between(self, peer: Address, after: float, until: float) -> bool:
        """Whether ``peer`` logged a line after ``after`` and by ``until`` (a report about it was false)."""
        lines = self.suspects[peer].lines
        index = bisect.bisect_right(lines, after)
        return index < len(lines) and lines[index] <= until

    def _message(self, wanted: str | None, live: set[Address], now: float) -> dict | None:
        """One message as it spread by ``now``: each receiver's delay and hop count."""
        if wanted is not None:
            key = self.ids[wanted]  # KeyError: no such message
        else:
            end = bisect.bisect_right(self.created, (now, _LAST))
            if not end:
                return None
            key = self.created[end - 1][1]
        message = self.run.messages[key]
        times, peers = self._sorted_receipts(key)
        count = bisect.bisect_right(times, now)
        hops = self.run.message_hops(key)
        return {
            "id": message_id(key), "origin": str(key[0]), "number": message.number, "text": key[1],
            "created": round(message.created - self.start, 6), "age": round(now - message.created, 6),
            "expected": len(live) - (key[0] in live),
            "received": [[str(peer), round(time - message.created, 6), hops.get(peer)]
                         for time, peer in zip(times[:count], peers[:count], strict=True)],
        }


class _Last:
    """Compares above every value: ``(t, _LAST)`` sorts after every entry at time t."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return True


_LAST = _Last()
