"""The discrete-event simulation: gossip, liveness, crashes and churn over a sim.network.Network.

One calendar of timestamped events (sim/calendar.py), taken in time order.
The decisions are the project's own: a peer's Message List is a
``messagelist.MessageList`` and it forwards to ``messagelist.forward_targets``; each
link has a ``liveness.LivenessTracker`` ticked every ping interval; joins run
``topology.next_neighbours`` and dead-node reports go to seeds that decide by
``deadnode``'s rule (sim/network.py).

The timing model:

- a copy sent over a link arrives after that link's latency, drawn once per
  link (sim.network.Latency);
- a peer handles a message new to it in ``processing`` seconds, one message at
  a time, and forwards it when done; that is also when it counts as
  received (a real peer logs GOSSIP_RECEIVED after forwarding).  With
  ``cores`` > 0 every peer also needs one of that many shared cores while it
  works: the model of a real run with all its peers on one host;
- a copy of a message the peer has seen costs nothing (a real peer drops it
  on its raw line, before parsing);
- a newly opened link carries each end's Message List to the other end
  (a real peer replays its ML to a new neighbour);
- a peer answers a liveness request unless it has crashed or left; a request
  and its reply take the link's latency each way.

Pruning: a copy is put on the calendar only if it arrives earlier than
every other copy of the same message already on its way to that peer.  A
later copy would find the message in the peer's Message List and be
dropped, so leaving it off changes no result; it is still counted as a
transmission.  That keeps a 100,000-peer run to about one event per peer
per message instead of one per copy.  (Should the copy that got on turn out
never to have been sent, its sender having crashed mid-work,
``_never_sent`` puts the next one on.)  The price is memory: 18 bytes per
peer per message (earliest copy, time received, hop count).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from gossipnet.config import REPAIR_BACKOFF_CAP
from gossipnet.protocol.messagelist import forward_targets
from gossipnet.protocol.topology import RepairSchedule
from gossipnet.sim.calendar import EventQueue
from gossipnet.sim.network import Network

INF = math.inf

# Event kinds, the third item of a heap entry (time, sequence, kind, a, b, c, d).
ARRIVE, CREATE, TICK, CRASH, JOIN, LEAVE, CALL, REPLY, OPEN, CLOSE, DIE, REPAIR = range(12)

# Largest hop count stored (unsigned 16-bit array per message).
MAX_HOPS = 65_535

@dataclass
class MessageRecord:
    """One gossip message and where it went."""

    origin: int
    created: float
    received: array = field(repr=False)  # per peer: time it had the message (NaN: never)
    hops: array = field(repr=False)  # per peer: hop count of its first copy
    transmissions: int = 0  # copies sent by the forwarding rule
    catch_up: int = 0  # copies sent when new links opened
    made: bool = False  # False if its origin was gone by then


@dataclass
class Outcome:
    """What happened in a run; sim/report.py turns it into figures and numbers."""

    messages: list[MessageRecord]
    deaths: dict[int, float]  # peer -> time it crashed or left
    joined: array  # per peer: time it joined (0 for the peers there from the start)
    reports: list[tuple[float, int, int, bool]]  # (time, reporter, accused, accused alive then)
    removals: dict[int, dict[str, float]]  # peer -> seed -> time removed
    end: float
    events: int
    lost: int  # first copies (per peer and message) that reached a crashed peer; later ones are pruned


class Simulation:
    """Events over one network.  ``run`` takes them in time order until none is due before ``end``."""

    def __init__(self, network: Network, rng: random.Random, processing: float = 0.0, cores: int = 0,
                 ping_interval: float = 13.0, liveness: bool = True, repair_interval: float | None = None) -> None:
        self.network = network
        self.rng = rng
        self.processing = processing
        self.cores = [0.0] * cores
        self.ping_interval = ping_interval
        self.liveness = liveness
        # Overlay repair (peerrepair.py) paced by topology.RepairSchedule; None: off (--no-repair).
        self.repair_interval = repair_interval
        self._schedules: dict[int, RepairSchedule] = {}
        self.repairs = 0  # rounds run
        self.repair_links = 0  # links they opened
        self.now = 0.0
        self._queue = EventQueue()
        self._sequence = itertools.count(1)
        self.busy = array("d", bytes(8 * network.capacity))  # when each peer is next free
        self.death = array("d", [INF]) * network.capacity
        self.joined = array("d", bytes(8 * network.capacity))
        self.messages: list[MessageRecord] = []
        # Per message, beside its record for the hot loop: earliest copy on its way to
        # each peer (-inf: it has the message), receipt times, hop counts, copies sent.
        self._best: list[array] = []
        self._received: list[array] = []
        self._hops: list[array] = []
        self._sent: list[int] = []
        self.reports: list[tuple[float, int, int, bool]] = []
        self.removals: dict[int, dict[str, float]] = {}
        self.lost = 0
        self.events = 0
        network.later = self._later
        network.removed = self._removed

    # --- Scheduling ------------------------------------------------------------------

    def at(self, time: float, kind: int, a: object = None, b: object = None, c: object = None,
           d: object = None) -> None:
        self._queue.push((time, next(self._sequence), kind, a, b, c, d))

    def _later(self, delay: float, fn: Callable[..., object], args: tuple) -> None:
        self.at(self.now + delay, CALL, fn, args)

    def _removed(self, seed: str, peer: int) -> None:
        # The seed removed it after its own liveness check timed out.
        self.removals.setdefault(peer, {}).setdefault(seed, self.now + self.network.probe_timeout)

    def start_ticks(self, peer: int, time: float) -> None:
        """Liveness ticks for ``peer``, the first at a random phase after ``time``."""
        if self.liveness:
            self.at(time + self.rng.random() * self.ping_interval, TICK, peer)

    # --- Gossip ----------------------------------------------------------------------

    def add_message(self, origin: int, created: float) -> int:
        """``origin`` makes a message at ``created`` (nothing, if it is gone by then); the message's index."""
        capacity = self.network.capacity
        index = len(self.messages)
        record = MessageRecord(origin, created, array("d", [math.nan]) * capacity, array("H", bytes(2 * capacity)))
        self.messages.append(record)
        self._best.append(array("d", [INF]) * capacity)
        self._received.append(record.received)
        self._hops.append(record.hops)
        self._sent.append(0)
        self.at(created, CREATE, index)
        return index

    def _send_all(self, message: int, sender: int, hops: int, done: float, targets: list[int]) -> None:
        """Copies of ``message`` from ``sender`` to ``targets``, sent at ``done``."""
        best = self._best[message]
        latency = self.network.neighbours[sender]
        push = self._queue.push
        for target in targets:
            arrival = done + latency[target]
            if arrival < best[target]:
                best[target] = arrival
                push((arrival, 0, ARRIVE, message, target, sender, hops))

    def _never_sent(self, message: int, peer: int, time: float) -> None:
        """A copy to ``peer`` whose sender crashed before it was done with the message: it was never sent.

        Pruning may have left off the heap the copies from other neighbours
        that this one beat; put the earliest of those still due on it now.
        """
        best = self._best[message]
        if best[peer] != time:
            return  # an earlier copy is on its way, or the peer has the message
        best[peer] = INF
        received, neighbours = self._received[message], self.network.neighbours
        message_lists = self.network.message_lists
        earliest, sender = INF, None
        for neighbour in neighbours[peer]:
            done = received[neighbour]
            if done != done or self.death[neighbour] < done or peer not in neighbours[neighbour]:
                continue  # does not have it, or never passes it on, or not linked to the peer
            if message_lists[neighbour].first_sender(message) == peer:
                continue
            arrival = done + neighbours[neighbour][peer]
            if time <= arrival < earliest:
                earliest, sender = arrival, neighbour
        if sender is not None:
            best[peer] = earliest
            hops = min(self.messages[message].hops[sender] + 1, MAX_HOPS)
            self._queue.push((earliest, 0, ARRIVE, message, peer, sender, hops))

    def _handle(self, peer: int, time: float) -> float:
        """``peer`` works on a message new to it from ``time``; when it is done."""
        busy = self.busy[peer]
        start = time if time > busy else busy
        if self.cores:
            core = self.cores[0]
            if core > start:
                start = core
            heapq.heapreplace(self.cores, start + self.processing)
        done = self.busy[peer] = start + self.processing
        return done

    def _create(self, time: float, message: int) -> None:
        record = self.messages[message]
        origin = record.origin
        if not self.network.alive[origin]:
            return
        record.made = True
        self.network.message_lists[origin].accept(message, None)
        done = self._handle(origin, time)
        record.received[origin] = done
        self._best[message][origin] = -INF
        targets = forward_targets(self.network.neighbours[origin], None)
        self._sent[message] += len(targets)
        self._send_all(message, origin, 1, done, targets)

    def _catch_up(self, sender: int, receiver: int, time: float) -> None:
        """A new link: ``sender`` replays its Message List to ``receiver``.

        _send_all to one target, inlined: a repair link replays ~100 messages each way, and
        the receiver mostly has them already.
        """
        arrival = time + self.network.neighbours[sender][receiver]
        messages, best_of, push = self.messages, self._best, self._queue.push
        for message in self.network.message_lists[sender].messages():
            record = messages[message]
            record.catch_up += 1
            best = best_of[message]
            if arrival < best[receiver]:
                best[receiver] = arrival
                push((arrival, 0, ARRIVE, message, receiver, sender, min(record.hops[sender] + 1, MAX_HOPS)))

    # --- Running ----------------------------------------------------------------------

    def run(self, end: float = INF, progress: Callable[[float], None] | None = None) -> Outcome:
        network = self.network
        alive, death = network.alive, self.death
        neighbours, message_lists = network.neighbours, network.message_lists
        best_of, received_of, hops_of, sent = self._best, self._received, self._hops, self._sent
        queue = self._queue
        events_sorted, side, buckets, order = queue.sorted, queue.side, queue.buckets, queue.order
        inverse, current = queue.inverse, queue.current
        handle, pop, push = self._handle, heapq.heappop, heapq.heappush
        processing, cores = self.processing, self.cores
        busy = self.busy
        events, time = 0, self.now
        deaths = any(value < INF for value in death)
        while True:
            # The queue's pop, inlined: the earlier of the sorted bucket's next and the side heap's.
            if events_sorted:
                entry = pop(side) if side and side[0] < events_sorted[-1] else events_sorted.pop()
            elif side:
                entry = pop(side)
            elif queue.advance():
                events_sorted, current = queue.sorted, queue.current
                continue
            else:
                break
            if entry[0] > end:
                queue.push(entry)
                break
            time, _, kind, a, b, c, d = entry
            events += 1
            if kind == ARRIVE:
                # The hot path: (message a, peer b, sender c, hops d).  It inlines
                # _handle (without cores) and _send_all: 100,000 peers and 100 messages
                # make 10 million receipts, each of which would be two more calls.
                if deaths and death[c] < received_of[a][c]:
                    self._never_sent(a, b, time)
                    continue
                if not alive[b]:
                    self.lost += 1
                    continue
                if not message_lists[b].accept(a, c):
                    continue
                if cores:
                    done = handle(b, time)
                else:
                    start = busy[b]
                    done = busy[b] = (time if time > start else start) + processing
                received_of[a][b] = done
                hops_of[a][b] = d
                best = best_of[a]
                best[b] = -INF
                latency = neighbours[b]
                targets = forward_targets(latency, c)
                sent[a] += len(targets)
                hops = d + 1 if d < MAX_HOPS else MAX_HOPS
                for target in targets:
                    arrival = done + latency[target]
                    if arrival < best[target]:
                        best[target] = arrival
                        # Sequence 0: copies tie-break on their own (integer) fields, and before other events.
                        entry = (arrival, 0, ARRIVE, a, target, b, hops)
                        index = int(arrival * inverse)  # the queue's push, inlined
                        if index <= current:
                            push(side, entry)
                        elif (bucket := buckets.get(index)) is None:
                            buckets[index] = [entry]
                            push(order, index)
                        else:
                            bucket.append(entry)
                continue
            self.now = time
            if progress is not None:
                progress(time)
            if kind == CREATE:
                self._create(time, a)
            elif kind == TICK:
                self._tick(time, a)
            elif kind == CALL:
                a(*b)
            elif kind == REPLY:
                tracker = network.trackers[a].get(b)
                if tracker is not None:
                    tracker.replied()
            elif kind == CRASH:
                self._crash(time, a)
                deaths = True
            elif kind == JOIN:
                self._join(time)
            elif kind == LEAVE:
                self._leave(time)
                deaths = True
            elif kind == OPEN:
                neighbours[a][b] = c
                self._catch_up(a, b, time)
            elif kind == CLOSE:
                neighbours[a].pop(b, None)
            elif kind == DIE:
                self._die(a, time)
                deaths = True
            elif kind == REPAIR:
                self._repair(time, a)
        self.now = time
        self.events += events
        for peer in range(network.peers):
            if death[peer] < INF:
                for message, received in enumerate(received_of):
                    if received[peer] > death[peer]:
                        # It crashed while working on it: never logged, never passed on.
                        received[peer] = math.nan
                        first_sender = message_lists[peer].first_sender(message)
                        sent[message] -= len(forward_targets(neighbours[peer], first_sender))
        for record, copies in zip(self.messages, sent, strict=True):
            record.transmissions = copies
        deaths = {peer: death[peer] for peer in range(network.peers) if death[peer] < INF}
        return Outcome(self.messages, deaths, self.joined, self.reports, self.removals,
                       self.now if end == INF else end, self.events, self.lost)

    # --- Liveness, failures, churn -----------------------------------------------------

    def _tick(self, time: float, peer: int) -> None:
        network = self.network
        if not network.alive[peer]:
            return
        latency = network.neighbours[peer]
        for neighbour, tracker in list(network.trackers[peer].items()):
            if tracker.tick():
                network.unlink(peer, neighbour)
                self.reports.append((time, peer, neighbour, self.death[neighbour] > time))
                network.report_dead(neighbour, peer, network.latency.draw())
                self._want_repair(time, peer)
            elif self.death[neighbour] > time:
                round_trip = 2 * latency[neighbour]
                if round_trip < self.ping_interval:
                    tracker.replied()  # the reply is in before the next tick
                else:
                    self.at(time + round_trip, REPLY, peer, neighbour)
        self.at(time + self.ping_interval, TICK, peer)

    def _want_repair(self, time: float, peer: int) -> None:
        """``peer`` lost a link: a repair round as soon as its RepairSchedule allows."""
        if self.repair_interval is None:
            return
        schedule = self._schedules.get(peer)
        if schedule is None:
            schedule = self._schedules[peer] = RepairSchedule(self.repair_interval, REPAIR_BACKOFF_CAP)
        due = schedule.due
        schedule.lost(time)
        if due is None or schedule.due < due:
            self.at(schedule.due, REPAIR, peer)

    def _repair(self, time: float, peer: int) -> None:
        schedule = self._schedules[peer]
        if not self.network.alive[peer] or schedule.due is None or schedule.wait(time) > 0:
            return  # gone, or a round already ran or moved (this event is stale)
        complete, opened = self.network.repair(peer)
        self.repairs += 1
        self.repair_links += len(opened)
        for neighbour in opened:
            self._catch_up(neighbour, peer, time)
            self._catch_up(peer, neighbour, time)
        schedule.finished(time, complete, bool(opened))
        if schedule.due is not None:
            self.at(schedule.due, REPAIR, peer)

    def _die(self, peer: int, time: float) -> None:
        if self.network.alive[peer]:
            self.network.crash(peer)
            self.death[peer] = time

    def _crash(self, time: float, fraction: float) -> None:
        live = self.network.live_peers()
        for peer in self.rng.sample(live, round(fraction * len(live))):
            self._die(peer, time)

    def _join(self, time: float) -> None:
        network = self.network
        peer = network.new_peer()
        self.joined[peer] = time
        opened = network.join(peer)
        for neighbour in opened:
            self._catch_up(neighbour, peer, time)
            self._catch_up(peer, neighbour, time)
        self.start_ticks(peer, time)
        if not opened:
            self._want_repair(time, peer)  # as peer.Peer.join: no links after joining

    def _leave(self, time: float) -> None:
        # A clean stop: its links end, and its neighbours report it on the ping rule
        # (a real peer's redial is refused; its seeds see its connection end, as after a crash).
        live = self.network.live_peers()
        if live:
            self._die(self.rng.choice(live), time)


def schedule_messages(simulation: Simulation, count: int, first: float, gap: float) -> None:
    """``count`` messages, one every ``gap`` seconds from ``first``, each from a random live peer.

    The origin is drawn now, among the peers alive at the start; one that has
    died by its message's time creates nothing (as a real one would not).
    """
    live = simulation.network.live_peers()
    for number in range(count):
        simulation.add_message(simulation.rng.choice(live), first + number * gap)

