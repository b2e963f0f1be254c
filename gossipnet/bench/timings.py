"""What a network costs on the report's timings: CPU per delivered message, peer
memory, key lookups at the seeds, and an origin's first message against its later ones.

Section 9 of bench.py.  ``n`` signed peers run with the peer's defaults (a
message every 5 s, 10 messages, pings every 13 s), started 20 at a time as
in the other sections, through gossipnet/bench/peer.py: each peer makes its
first message at a random moment of one gossip interval after the whole
network has joined, so every origin's first message reaches peers that
joined before it and are not its neighbours, which is when a receiver may
not hold the origin's key yet.

- *CPU per delivered message*: the CPU all nodes (seeds and peers) spent from
  their start to the last receipt (/proc/PID/stat), divided by the first
  receipts at the peers; also the same for the gossip alone (from the start
  signal), and start-up (up to every peer joined) per node.
- *Memory*: each peer's resident set (RSS) and proportional share (PSS,
  shared pages split between the processes sharing them), from
  /proc/PID/smaps_rollup once every message has arrived, every peer still running.
- *Key lookups*: the seeds' KEYS_LOOKUP lines over the run (one per GET_KEYS answered).
- *First against later*: runlog.dissemination_times of each origin's message
  number 1 against its numbers 2 and on.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from gossipnet.bench.network import BenchError, Network, progress
from gossipnet.logs import logformat, runlog
from gossipnet.logs.runlog import spread

# The report's timings (the peer's defaults): a message every 5 s, 10 of them.
REPORT_MESSAGES = 10
REPORT_INTERVAL = 5.0

# Seconds past the last message's making that its receipts may take before the run ends anyway.
GRACE = 60.0


def memory_kib(pid: int) -> tuple[int, int] | None:
    """A process's resident set and proportional share (Rss, Pss of /proc/PID/smaps_rollup), in KiB."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            fields[name] = int(rest.split()[0])
    return (fields["Rss"], fields["Pss"]) if len(fields) == 2 else None


def _mib(values: list[int]) -> dict:
    return {key: None if value is None else value / 1024 for key, value in spread(values).items()}


def run_timings(n: int, workdir: Path) -> dict:
    """``n`` signed peers on the report's timings: the section's figures (module docstring)."""
    offsets = [random.Random(n + index).uniform(0.0, REPORT_INTERVAL) for index in range(n)]
    with Network(workdir / f"timings-{n}") as net:
        progress(f"timings N={n}: starting {n} peers on the report's timings")
        net.start_seeds()
        net.start_peers(n, [], offsets=offsets)
        net.wait_joined()
        startup_cpu = net.cpu_seconds()
        lookups_joining = net.tail.counts[logformat.KEYS_LOOKUP]
        gossip_cpu = -startup_cpu
        start = time.time() + 1.0
        net.go(start)
        total = n * REPORT_MESSAGES
        note = ""
        progress(f"timings N={n}: {total} messages over {REPORT_MESSAGES * REPORT_INTERVAL:g} s")
        try:
            net.wait_for(lambda: net.tail.counts[logformat.GOSSIP_GENERATED] >= total
                         and net.tail.counts[logformat.GOSSIP_RECEIVED] >= total * (n - 1),
                         start - time.time() + REPORT_INTERVAL * REPORT_MESSAGES + GRACE,
                         "every message to reach every peer")
        except BenchError as exc:
            note = str(exc)
            progress(f"timings N={n}: {note}")
        cpu = net.cpu_seconds()
        gossip_cpu += cpu
        memory = [sample for node in net.peers if node.running and (sample := memory_kib(node.pid))]
        net.tail.poll()
        lookups = net.tail.counts[logformat.KEYS_LOOKUP]
        load = os.getloadavg()[0]
    run = runlog.Run.load(net.log_path)
    delivered, expected = run.delivery_counts()
    times = run.dissemination_times()
    first = [times[key] for key, message in run.messages.items() if message.number == 1 and key in times]
    later = [times[key] for key, message in run.messages.items() if message.number > 1 and key in times]
    first_spread, later_spread = spread(first), spread(later)
    ratio = (first_spread["p99"] / later_spread["p99"]) if first and later and later_spread["p99"] else None
    nodes = n + len(net.seeds)
    return {
        "peers": n, "seeds": len(net.seeds), "note": note, "messages": len(run.messages),
        "delivery": delivered / expected if expected else 0, "delivered": delivered,
        "cpu_s": cpu, "startup_cpu_s": startup_cpu, "startup_cpu_per_node_s": startup_cpu / nodes,
        "cpu_per_delivery_s": cpu / delivered if delivered else None,
        "gossip_cpu_per_delivery_s": gossip_cpu / delivered if delivered else None,
        "rss_mib": _mib([rss for rss, _ in memory]), "pss_mib": _mib([pss for _, pss in memory]),
        "key_lookups": lookups, "key_lookups_joining": lookups_joining,
        "first_message_s": first_spread, "later_messages_s": later_spread, "first_over_later_p99": ratio,
        "load": load,
    }
