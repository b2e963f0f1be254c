"""Overlay repair: replacing lost links and registering again where removed.

On by default; ``--no-repair`` turns it off.  When a link is lost (the
neighbour is reported dead, cut off, or closed the connection and cannot be
dialled again), the peer asks a majority of the seeds for their current
lists (GET_PEERS), registers again with any that no longer list it (it was
removed, for instance while it was hung or cut off), and opens the links
repairplan.RepairRound plans by topology.py's Repair rules: to the smallest
listed peer (the anchor, which keeps the live overlay connected), into each
list, and up to its join target.  Rounds repeat on topology.RepairSchedule
while they fall short.

``Repairing`` is a part of peer.Peer, whose __init__ holds the state it uses
(``_join_lists``, ``_repair_wanted``, ``_repair_reasons``, ``target``,
``_lock``, ...).  Not here: which peers a round dials and whether it fell
short (repairplan.py, on topology.py's rules), the pace (topology.py),
dialling and redial (peerlinks.py).
"""

from __future__ import annotations

import time

from gossipnet.config import CONNECT_TIMEOUT, REPAIR_BACKOFF_CAP, majority
from gossipnet.logs import logformat
from gossipnet.protocol import handout, topology
from gossipnet.protocol.repairplan import RepairRound
from gossipnet.protocol.wire import Address, LinkReport, PeerList, PeerListRequest, ProtocolError


class Repairing:
    """The repair rounds of a peer.Peer."""

    def _want_repair(self, reason: str) -> None:
        """A link was lost (or a seed no longer lists this peer): ask the repair loop for a round."""
        if not self.settings.repair:
            return
        with self._lock:
            if len(self._repair_reasons) < 4 and reason not in self._repair_reasons:
                self._repair_reasons.append(reason)
        self._repair_wanted.set()

    def _repair_loop(self) -> None:
        """Run repair rounds when links are lost, paced by topology.RepairSchedule."""
        schedule = topology.RepairSchedule(self.settings.repair_period, REPAIR_BACKOFF_CAP)
        while True:
            self._repair_wanted.wait(schedule.wait(time.monotonic()))
            if self.stopped.is_set():
                return
            if self._repair_wanted.is_set():
                self._repair_wanted.clear()
                schedule.lost(time.monotonic())
            if schedule.wait(time.monotonic()) != 0:
                continue  # woken early: the pace allows no round yet
            with self._lock:
                reasons, self._repair_reasons = self._repair_reasons, []
            # With no loss since the last round: a retry of one that fell short, or a confirmation.
            reason = "; ".join(reasons) or ("retry" if schedule.shortfalls else "confirm")
            outcome = self._repair(reason)
            if self.stopped.is_set():
                return
            complete, changed = outcome.pop("complete"), outcome.pop("changed")
            schedule.finished(time.monotonic(), complete, changed)
            self.log.event(logformat.REPAIR, **outcome, complete="yes" if complete else "no",
                           next="none" if schedule.pause is None else f"{schedule.pause:g}")

    def _repair(self, reason: str) -> dict[str, object]:
        """One repair round: fresh lists, registering again where removed, then the dials repairplan plans.

        Returns the round's facts for the REPAIR line, with ``complete`` (nothing
        fell short) and ``changed`` (links opened or registrations made).
        """
        need = majority(len(self.seeds))
        lists, rejoined = self._refresh_lists(need)
        with self._lock:
            working = self.link_table.working()
            before = len(working)
            # A closed link still in the table has its own redial; the liveness rule decides it.
            stale = self.link_table.stale()
            cover = [set(members) for members in self._join_lists.values()]
        plan = RepairRound(self.address, list(lists.values()), working, self.target, self.settings.degree_model,
                           self.rng, cover=cover, unreachable=stale, too_few_seeds=len(lists) < need)
        while not self.stopped.is_set():
            dials = plan.next_dials(self.link_table.working())  # others may have dialled in since
            if not dials:
                break
            for peer in dials:
                outcome = self._link_to(peer)
                plan.dialled(peer, outcome, self.referrals.pop(peer, ()))
        return {"reason": reason, "degree": len(plan.links), "before": before, "target": self.target,
                "seeds": len(lists), "rejoined": len(rejoined), "opened": len(plan.opened), "anchor": plan.anchor,
                "complete": plan.complete, "changed": bool(plan.opened or rejoined)}

    def _refresh_lists(self, need: int) -> tuple[dict[Address, dict[Address, int]], list[Address]]:
        """Current peer lists from ``need`` seeds, registering again with any that no longer list this peer.

        Asks the seeds this peer registered with first, then the others in
        place of those that cannot be reached, and past a majority while every
        list so far is empty.  GET_PEERS, not REGISTER, for a
        seed that still lists the peer: registering again would start a new
        incarnation there and drop the links the seed recorded for it, and
        with them its neighbours' right to report it.  Returns the lists by
        seed (without this peer) and the seeds registered with anew.
        """
        with self._lock:
            registered = list(self.registered_seeds)
        others = [seed for seed in self.seeds if seed not in registered]
        order = self.rng.sample(registered, len(registered)) + self.rng.sample(others, len(others))
        lists: dict[Address, dict[Address, int]] = {}
        rejoined: list[Address] = []
        for seed in order:
            # Past a majority only while every list is empty: seeds that restarted
            # come back empty, and another seed may still know the other peers.
            if (len(lists) >= need and any(lists.values())) or self.stopped.is_set():
                break
            try:
                reply = self.ask_seed(seed, PeerListRequest(), CONNECT_TIMEOUT)
            except (OSError, ProtocolError):
                reply = None
            if not isinstance(reply, PeerList):
                continue
            self.key_wait.learn(reply.keys.items())
            peers = dict(reply.peers)
            if self.address in peers:
                del peers[self.address]
            elif len(lists) >= need and not peers:
                continue  # beyond the majority, a seed that knows no other peer is not worth joining
            else:
                # Removed here (it was hung or cut off), or a seed it never registered with.
                peers = self._register_at(seed, attempt=1)
                if peers is None:
                    continue
                rejoined.append(seed)
                self.log.event(logformat.REJOINED, seed=seed, again="yes" if seed in registered else "no")
                with self._lock:
                    self._join_lists[seed] = set(handout.drawable(peers))
                    if seed not in self.registered_seeds:
                        self.registered_seeds.append(seed)
            lists[seed] = peers
        if rejoined:
            # The seed dropped this peer's links when it removed it: report the live ones again,
            # so that its neighbours may report it if it dies.
            neighbours = sorted(self.link_table.working())
            for neighbour in neighbours:
                self._to_seeds.put((tuple(rejoined), self._sign(LinkReport(self.address, neighbour))))
        return lists, rejoined
