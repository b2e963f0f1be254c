"""Benchmarks of the real network, each figure beside the limit it could reach.

    python bench.py [--quick] [--json PATH] [--only NAME,...] [--sizes N,...] [--keep DIR]

Seeds and peers run as separate processes on 127.0.0.1 with real sockets
(bench/network.py).  Each section measures one figure and, in the same run, the
limit it is judged against:

- ``floor``: one newline-framed line between two Python processes (RTT/2);
- ``dissemination``: creation to last first receipt, beside the origin's
  eccentricity in the overlay times the one-hop floor;
- ``cost``: copies sent per message, beside |E| and N-1 (from the
  dissemination runs);
- ``throughput``: first receipts per second with every peer gossiping flat
  out, beside minimal relays (bench/relay.py) on the same overlay;
- ``auth``: the same throughput without signatures;
- ``scale``: the largest network that runs on the report's timings, and the
  peers' peak memory;
- ``detection``: time from ``kill -9`` to the report and the removals, beside
  the ping rule's own bound;
- ``registration``: what a seed's state file (seed.py --state) adds to a
  registration, beside the same seed keeping its state in memory;
- ``timings``: the report's timings, signed: CPU per delivered message,
  peer RSS and PSS, key lookups at the seeds, and each origin's first
  message against its later ones.

A section that fails is reported as an error and the others still run; every
process started is stopped by PID whatever happens.  The table goes to
stdout, the same figures as JSON to ``--json``; progress goes to stderr.

The sections live in bench/spread.py (1-3), bench/load.py (4, 5, 7),
bench/detect.py (6), bench/registration.py (8) and bench/timings.py (9);
bench/report.py words the table.  This module chooses what runs, at what
size, and keeps going when one section fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from gossipnet.bench import network as benchnet
from gossipnet.bench.detect import run_detection
from gossipnet.bench.load import run_relays, run_scale, run_throughput
from gossipnet.bench.network import progress
from gossipnet.bench.registration import run_registration
from gossipnet.bench.report import render_table
from gossipnet.bench.spread import measure_floor, run_dissemination
from gossipnet.bench.timings import run_timings
from gossipnet.config import network_sizes
from gossipnet.run import launch

SECTIONS = ("floor", "dissemination", "cost", "throughput", "auth", "scale", "detection", "registration",
            "timings")


@dataclass(frozen=True)
class Plan:
    """How big and how long each section runs."""

    floor_rounds: int  # ping-pongs timed for the one-hop floor
    sizes: tuple[int, ...]  # dissemination network sizes
    messages: int  # most messages per peer in a dissemination run (fewer in a large one)
    # Seconds between two messages anywhere in the network during a
    # dissemination run, per peer in it: each message has the network to
    # itself for N times this (a peer's interval is N slots).  A message's
    # work grows with N (it crosses ~2|E| ~ 4N links); 1.5 ms per peer keeps
    # the slot above the p99 dissemination time measured on 2 cores, so
    # messages do not overlap.
    slot_per_peer: float
    throughput_peers: int
    throughput_seconds: float
    relay_log: bool  # also run the relays writing a log line per receipt
    scale_sizes: tuple[int, ...]
    detection_peers: int
    kills: int
    registrations: int  # timed at each of two seeds (under the 800 peers a seed holds)
    timings_sizes: tuple[int, ...]  # networks on the report's timings (the goals name N=50 and N=100)


FULL = Plan(floor_rounds=3000, sizes=(50, 100, 200), messages=3, slot_per_peer=0.0015, throughput_peers=50,
            throughput_seconds=20.0, relay_log=True, scale_sizes=(100, 200, 300), detection_peers=30, kills=5,
            registrations=300, timings_sizes=(50, 100))
QUICK = Plan(floor_rounds=1000, sizes=(30, 60), messages=3, slot_per_peer=0.0015, throughput_peers=20,
             throughput_seconds=8.0, relay_log=False, scale_sizes=(60,), detection_peers=12, kills=2,
             registrations=100, timings_sizes=(20,))


# --- Running the sections ----------------------------------------------------------


def machine() -> dict:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu or platform.processor(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def run_sections(selected: set[str], plan: Plan, workdir: Path, results: dict) -> None:
    """Run every selected section (and what it needs) into ``results``, which keeps
    what was measured if the run is interrupted; each section's failure is its own error."""

    def attempt(name: str, action):
        try:
            return action()
        except launch.Interrupted:
            raise
        except Exception as exc:  # one section's failure must not stop the others
            progress(f"{name}: error: {type(exc).__name__}: {exc}")
            return {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}

    if selected & {"floor", "dissemination", "cost"}:
        progress("floor: timing one-hop ping-pongs")
        results["floor"] = attempt("floor", lambda: measure_floor(plan.floor_rounds))
    if selected & {"dissemination", "cost"}:
        results["dissemination"], results["cost"] = [], []
        floor_s = results["floor"].get("one_way_s")
        for n in plan.sizes:
            outcome = attempt(f"dissemination N={n}", lambda n=n: run_dissemination(
                n, plan.messages, plan.slot_per_peer, workdir, floor_s))
            pair = outcome if isinstance(outcome, tuple) else ({"peers": n, **outcome}, {"peers": n, **outcome})
            results["dissemination"].append(pair[0])
            results["cost"].append(pair[1])
    if selected & {"throughput", "auth"}:
        load = plan.throughput_peers, plan.throughput_seconds
        results["throughput"] = {"auth": attempt("throughput", lambda: run_throughput(*load, workdir, True))}
        if "auth" in selected:
            results["throughput"]["no_auth"] = attempt("throughput", lambda: run_throughput(*load, workdir, False))
        if "throughput" in selected:
            topology = results["throughput"]["auth"].get("topology", [])
            results["throughput"]["relay"] = attempt("relay", lambda: run_relays(*load, workdir, topology, False))
            if plan.relay_log:
                results["throughput"]["relay_log"] = attempt(
                    "relay", lambda: run_relays(*load, workdir, topology, True))
        for entry in results["throughput"].values():
            entry.pop("topology", None)
    if "scale" in selected:
        results["scale"] = []
        for n in plan.scale_sizes:
            outcome = attempt(f"scale N={n}", lambda n=n: run_scale(n, workdir))
            results["scale"].append({"peers": n, **outcome})
            if not outcome.get("ok"):
                break  # the largest N that runs is the one before
    if "detection" in selected:
        results["detection"] = attempt("detection", lambda: run_detection(plan.detection_peers, plan.kills, workdir))
    if "registration" in selected:
        results["registration"] = attempt("registration", lambda: run_registration(plan.registrations, workdir))
    if "timings" in selected:
        results["timings"] = [{"peers": n, **attempt(f"timings N={n}", lambda n=n: run_timings(n, workdir))}
                              for n in plan.timings_sizes]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gossipnet.bench",
        description="Benchmark the real gossip network (processes and sockets on 127.0.0.1) and print each "
                    "figure beside the limit it could reach, measured in the same run. About 15 minutes; "
                    "--quick about 3.")
    parser.add_argument("--quick", action="store_true", help="smaller networks and shorter runs")
    parser.add_argument("--json", type=Path, default=Path("bench.json"), metavar="PATH",
                        help="where to write the figures as JSON (default: bench.json)")
    parser.add_argument("--only", metavar="NAME,...",
                        help=f"run only these sections: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--sizes", type=network_sizes, metavar="N,...",
                        help="network sizes of the dissemination runs (default: 50,100,200; --quick: 30,60) "
                             "and of the report-timings runs (default: 50,100; --quick: 20)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep every run's log and files under DIR (default: a temporary directory, removed)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    selected = set(SECTIONS)
    if args.only:
        selected = {name.strip() for name in args.only.split(",") if name.strip()}
        if unknown := selected - set(SECTIONS):
            parser.error(f"--only: unknown section {', '.join(sorted(unknown))} (choose from {', '.join(SECTIONS)})")
    plan = QUICK if args.quick else FULL
    if args.sizes:
        plan = replace(plan, sizes=args.sizes, timings_sizes=args.sizes)
    benchnet.STOP.install()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = {"mode": "quick" if args.quick else "full", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": machine(), "plan": asdict(plan), "load_average": {"start": os.getloadavg()},
              "sections": {}}
    status = 0
    began = time.monotonic()
    try:
        run_sections(selected, plan, workdir, report["sections"])
    except launch.Interrupted:
        progress("interrupted: stopping every process started")
        report["interrupted"] = True
        status = 130
    finally:
        benchnet.stop_everything()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report["load_average"]["end"] = os.getloadavg()
    report["seconds"] = time.monotonic() - began
    report["table"] = render_table(report)
    print(report["table"])
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    progress(f"done in {report['seconds']:.0f} s; figures in {args.json}")
    return status
