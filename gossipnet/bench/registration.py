"""What a seed's state file costs a registration: a seed with --state beside one keeping its state in memory.

Section 8 of bench.py.  Two seeds run side by side, one keeping its state in
memory, one writing a state file (seed.py --state: one SQLite transaction per
change, written before the answer).  One client registers new stand-in peers
at each in turn, over one connection to each, so both answer at the same
Peer List size and under the same load; the difference of each pair of round
trips is what the file adds.  The seeds run with --no-auth, so no key is
proved and the time is the seed's own work: read the line, the table, the
journal, the log line, the reply (the Peer List as it was, which grows with
each registration).  The seeds' CPU time over the window is read from /proc.
The journal alone (SeedState.registered and .linked, one transaction each)
is timed in this process.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from gossipnet.bench.network import Network, cpu_seconds, progress
from gossipnet.node.seedstate import SeedState
from gossipnet.node.transport import Connection
from gossipnet.protocol.wire import Address, PeerList, Register

WARMUP = 20  # registrations at each seed before the timed ones


def stand_in(number: int, block: int = 78) -> Address:
    """The ``number``-th stand-in peer: nothing listens there, and nothing needs to."""
    return Address(f"127.{block}.{number // 250}.{number % 250 + 1}", 1)


def spread(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median_s": statistics.median(ordered), "p99_s": ordered[int(0.99 * (len(ordered) - 1))],
            "mean_s": statistics.fmean(ordered)}


def time_seeds(count: int, workdir: Path) -> dict:
    """Register WARMUP then ``count`` stand-in peers at each of two seeds in turn; the timed round trips."""
    with Network(workdir / "registration-memory", auth=False) as memory, \
            Network(workdir / "registration-state", auth=False) as stored:
        state_file = stored.directory / "seed.sqlite"
        for stale in (state_file, state_file.with_name("seed.sqlite-wal"), state_file.with_name("seed.sqlite-shm")):
            stale.unlink(missing_ok=True)  # a kept directory's earlier run: another seed's file
        memory.start_seeds(1)
        stored.start_seeds(1, ["--state", str(state_file)])
        seeds = {"memory": memory.seeds[0], "state": stored.seeds[0]}
        conns = {name: Connection.open(seed.address) for name, seed in seeds.items()}
        round_trips: dict[str, list[float]] = {name: [] for name in seeds}
        try:
            for number in range(WARMUP + count):
                if number == WARMUP:
                    cpu = {name: cpu_seconds(seed.pid) for name, seed in seeds.items()}
                for name, conn in conns.items():
                    began = time.perf_counter()
                    conn.send(Register(stand_in(number)))
                    reply = conn.read()
                    round_trips[name].append(time.perf_counter() - began)
                    if not isinstance(reply, PeerList):
                        raise RuntimeError(f"registration {number} at the {name} seed answered {reply!r}")
            cpu = {name: (cpu_seconds(seed.pid) - cpu[name]) / count for name, seed in seeds.items()}
        finally:
            for conn in conns.values():
                conn.close()
    timed = {name: values[WARMUP:] for name, values in round_trips.items()}
    added = [with_state - in_memory for with_state, in_memory in zip(timed["state"], timed["memory"], strict=True)]
    return {name: {**spread(values), "seed_cpu_per_registration_s": cpu[name]} for name, values in timed.items()} \
        | {"added": spread(added)}


def time_journal(count: int) -> dict:
    """Seconds per journal write of a state file in this process: a new peer registered, a link recorded."""
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as directory:
        state = SeedState.open(Path(directory) / "seed.sqlite")
        try:
            began = time.perf_counter()
            for number in range(count):
                state.registered(stand_in(number), False, None)
            registered = (time.perf_counter() - began) / count
            began = time.perf_counter()
            for number in range(count):
                state.linked(stand_in(0), stand_in(number, block=79))
            linked = (time.perf_counter() - began) / count
        finally:
            state.close()
    return {"registered_s": registered, "linked_s": linked}


def run_registration(count: int, workdir: Path) -> dict:
    """A registration's cost at a seed with a state file, beside one keeping its state in memory."""
    progress(f"registration: {count} registrations at a seed with its state in memory and at one with a file")
    seeds = time_seeds(count, workdir)
    return {"registrations": count, "warmup": WARMUP, **seeds, "journal": time_journal(count),
            "load": os.getloadavg()[0]}
