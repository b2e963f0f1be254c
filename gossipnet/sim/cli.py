"""Simulate the gossip network at scales one machine's sockets cannot reach, or replay a real run.

    python simulate.py -n 100000 [--latency DIST] [--fail 0.1] [--churn RATE]
                       [--degree-model preferential|report] [--rng-seed N] [--out DIR]
    python simulate.py --scale 100,1000,10000,100000 [--out DIR]
    python simulate.py --replay outputfile.txt [--bench bench.json]

The overlay is grown by replaying joins through simulated seeds with the
project's own code (sim/network.py), then a discrete-event simulation (sim/engine.py)
runs gossip and liveness over it with the project's own Message List,
forwarding rule and liveness rule.  sim/report.py writes the numbers and
figures; sim/replay.py checks the simulator against a real run's log.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gossipnet.config import (
    MAX_CONNECTIONS,
    PeerSettings,
    SeedSettings,
    add_peer_arguments,
    bounded_float,
    network_sizes,
    non_negative_float,
    non_negative_int,
    positive_int,
)
from gossipnet.protocol import topology
from gossipnet.sim import report as simreport
from gossipnet.sim.engine import CRASH, JOIN, LEAVE, Simulation, schedule_messages
from gossipnet.sim.network import Latency, Network, SimulationError

DEFAULT_OUT = "sim"

# CPU a real peer spends per message it forwards, in ms: bench.py's CPU per
# message at N=100 (77.7 ms) over its 100 peers, rounded (README, Performance).
DEFAULT_PROCESSING_MS = 0.8

# Sizes of --scale when none are given.
DEFAULT_SCALE = (100, 1_000, 10_000, 100_000)


@dataclass
class Scenario:
    """One synthetic run: the command line's settings, with the report's timings as defaults."""

    peers: int = 1000
    seeds: int = 3
    messages: int = 100
    message_gap: float = 0.1  # seconds between two messages' creation
    latency: str = "lognormal:20:0.5"
    processing_ms: float = DEFAULT_PROCESSING_MS
    cores: int = 0
    degree_model: str = topology.PREFERENTIAL
    fail: float = 0.0
    fail_at: tuple[float, ...] | None = None  # when --fail strikes, each time; None: half way through the messages
    churn: float = 0.0  # joins per second, and as many leaves
    ping_interval: float = PeerSettings.ping_interval
    ping_misses: int = PeerSettings.ping_misses
    probe_timeout: float = SeedSettings.probe_timeout
    max_links: int = MAX_CONNECTIONS
    repair: bool = True  # overlay repair after lost links, as real peers do unless --no-repair
    repair_interval: float | None = None  # None: the ping interval
    rng_seed: int = 1

    @property
    def last_message(self) -> float:
        return max(self.messages - 1, 0) * self.message_gap

    @property
    def crash_times(self) -> tuple[float, ...]:
        if not self.fail:
            return ()
        return (self.last_message / 2,) if self.fail_at is None else tuple(self.fail_at)


class Progress:
    """A one-line progress bar on stderr, redrawn at most every 0.2 s; silent when off."""

    WIDTH = 30

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0
        self._shown = False

    def show(self, label: str, fraction: float, detail: str | Callable[[], str] = "") -> None:
        """Redraw if due; ``detail`` may be a function, called only then."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2 and fraction < 1:
            return
        if callable(detail):
            detail = detail()
        self._last = now
        filled = int(self.WIDTH * min(max(fraction, 0.0), 1.0))
        sys.stderr.write(f"\r{label:<10} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                         f"{100 * min(fraction, 1.0):5.1f}% {detail}\033[K")
        sys.stderr.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            self._shown = False


def arrivals(rng: random.Random, rate: float, until: float) -> list[float]:
    """Moments of a Poisson process of ``rate`` per second on [0, until); none at rate 0."""
    moments: list[float] = []
    if rate:
        moment = rng.expovariate(rate)
        while moment < until:
            moments.append(moment)
            moment += rng.expovariate(rate)
    return moments


def run(scenario: Scenario, progress: Progress | None = None) -> tuple[dict, Simulation]:
    """Grow the overlay, run the events, and summarise: (result, simulation)."""
    progress = progress or Progress(False)
    rng = random.Random(scenario.rng_seed)
    latency = Latency(scenario.latency, np.random.default_rng(scenario.rng_seed))
    events_end = scenario.last_message
    liveness = scenario.fail > 0 or scenario.churn > 0
    joins = arrivals(rng, scenario.churn, events_end)
    network = Network(scenario.peers + len(joins), scenario.seeds, scenario.degree_model, latency, rng,
                      scenario.ping_misses, scenario.probe_timeout, scenario.max_links)
    started = time.monotonic()
    for count in range(scenario.peers):
        network.join(network.new_peer())
        if not count % 1000:
            progress.show("overlay", count / scenario.peers, f"{count:,} peers joined")
    progress.show("overlay", 1.0, f"{scenario.peers:,} peers joined in {time.monotonic() - started:.1f} s")
    progress.done()
    repair_interval = None
    if scenario.repair:
        repair_interval = scenario.repair_interval or scenario.ping_interval
    simulation = Simulation(network, rng, scenario.processing_ms / 1000, scenario.cores, scenario.ping_interval,
                            liveness=liveness, repair_interval=repair_interval)
    for peer in range(scenario.peers):
        simulation.start_ticks(peer, 0.0)
    schedule_messages(simulation, scenario.messages, 0.0, scenario.message_gap)
    end = math.inf
    if scenario.fail:
        for moment in scenario.crash_times:
            simulation.at(moment, CRASH, scenario.fail)
    for moment in joins:
        simulation.at(moment, JOIN)
    for moment in arrivals(rng, scenario.churn, events_end):
        simulation.at(moment, LEAVE)
    if liveness:
        # Every departure has time to be detected (ping-misses + 1 intervals) and removed.
        last_departure = max((*scenario.crash_times, events_end))
        end = last_departure + (scenario.ping_misses + 2) * scenario.ping_interval + 3 * scenario.probe_timeout
    horizon = end if end < math.inf else max(events_end, 1e-9)
    started = time.monotonic()
    outcome = simulation.run(end, lambda now: progress.show("events", now / horizon,
                                                            lambda: f"{now:.2f} simulated s"))
    progress.show("events", 1.0, f"{outcome.events:,} events in {time.monotonic() - started:.1f} s")
    progress.done()
    result = simreport.summarise(outcome, network, {**asdict(scenario), "crash_times": scenario.crash_times})
    result["repair"] = {"rounds": simulation.repairs, "links": simulation.repair_links}
    return result, simulation


def run_scale(base: Scenario, sizes: Sequence[int], progress: Progress, out: Path) -> list[dict]:
    rows = []
    for size in sizes:
        scenario = Scenario(**{**asdict(base), "peers": size})
        started = time.monotonic()
        result, _ = run(scenario, progress)
        result["wall_s"] = time.monotonic() - started
        rows.append(result)
        print(f"N={size:>7,}: dissemination median {simreport.seconds(result['dissemination_s']['median'])}, "
              f"p99 {simreport.seconds(result['dissemination_s']['p99'])}, hops mean {result['hops']['mean']:.2f}, "
              f"reach {100 * result['reach']['mean']:.2f}%, {result['wall_s']:.1f} s")
    slim = [{key: value for key, value in row.items() if key not in ("degrees", "per_message", "reach_curve")}
            for row in rows]
    (out / "scale.json").write_text(json.dumps(slim, indent=1))
    simreport.draw_scale(rows, str(out / "scale.png"))
    return rows


def parse_times(text: str) -> tuple[float, ...]:
    times = tuple(non_negative_float(part) for part in text.split(",") if part.strip())
    if not times:
        raise argparse.ArgumentTypeError("give at least one time")
    return times


fraction = bounded_float(lambda value: 0 <= value < 1, "must be in [0, 1)")


def main(argv: list[str] | None = None) -> int:
    defaults = Scenario()
    parser = argparse.ArgumentParser(
        prog="python -m gossipnet.sim",
        description="Simulate the gossip protocol (the project's own rules) on one core at up to 100,000+ "
                    "peers, or replay a real run's log to check the simulator against it. Writes "
                    "result.json and figures to --out. Exit 0 on success (for --replay: the match met "
                    "every criterion), 1 when a replay does not match, 2 on a usage error, 130 on Ctrl-C.")
    parser.add_argument("-n", "--peers", type=positive_int, default=defaults.peers,
                        help=f"peers (default: {defaults.peers})")
    parser.add_argument("--seeds", type=positive_int, default=defaults.seeds,
                        help=f"seeds; each peer registers with a majority (default: {defaults.seeds})")
    parser.add_argument("--messages", type=positive_int, default=defaults.messages,
                        help=f"gossip messages in all, each from a random live peer (default: {defaults.messages})")
    parser.add_argument("--message-gap", type=non_negative_float, default=defaults.message_gap, metavar="S",
                        help=f"seconds between two messages' creation (default: {defaults.message_gap:g})")
    parser.add_argument("--latency", default=defaults.latency, metavar="DIST",
                        help="one-way latency of each link, drawn once per link, in ms: const:M, "
                             "uniform:LOW:HIGH, normal:MEAN:SD, lognormal:MEDIAN:SIGMA, exp:MEAN "
                             f"(default: {defaults.latency})")
    parser.add_argument("--processing", type=non_negative_float, default=defaults.processing_ms, metavar="MS",
                        help="ms a peer works on a message new to it before forwarding (default: "
                             f"{defaults.processing_ms:g}, a real peer's CPU per message from bench.py)")
    parser.add_argument("--cores", type=non_negative_int, default=0, metavar="C",
                        help="share C cores among all peers, as when every peer runs on one host "
                             "(default: 0, every peer has its own)")
    add_peer_arguments(parser, ["degree_model"])
    parser.add_argument("--fail", type=fraction, default=0.0, metavar="F",
                        help="share of the live peers that crash at once, at each --fail-at time (default: 0)")
    parser.add_argument("--fail-at", type=parse_times, default=None, metavar="S[,S...]",
                        help="when they crash, in simulated seconds; several times crash F of the live peers at each "
                             "(default: half way through the messages)")
    parser.add_argument("--churn", type=non_negative_float, default=0.0, metavar="RATE",
                        help="peers joining per second, and as many leaving, while messages are made (default: 0)")
    add_peer_arguments(parser, ["ping_interval", "ping_misses"])
    parser.add_argument("--probe-timeout", type=non_negative_float, default=defaults.probe_timeout, metavar="S",
                        help=f"a seed's own liveness check of an accused peer (default: {defaults.probe_timeout:g})")
    parser.add_argument("--max-links", type=positive_int, default=defaults.max_links, metavar="K",
                        help=f"links a peer accepts before it refuses more (default: {defaults.max_links}, "
                             "a real peer's connection limit)")
    add_peer_arguments(parser, ["repair_interval"])
    parser.add_argument("--no-repair", action="store_true",
                        help="lost links are not replaced (the report's behaviour; default: repair, as real peers)")
    parser.add_argument("--rng-seed", type=int, default=defaults.rng_seed, metavar="N",
                        help=f"seed of every random draw; the same seed gives the same run (default: "
                             f"{defaults.rng_seed})")
    parser.add_argument("--scale", type=network_sizes, nargs="?", const=DEFAULT_SCALE, default=None,
                        metavar="N,N,...", help="run each size in turn and plot dissemination time against N "
                                                f"(default sizes: {','.join(map(str, DEFAULT_SCALE))})")
    parser.add_argument("--replay", metavar="LOG", help="replay a real run's log and compare (sim/replay.py)")
    parser.add_argument("--bench", metavar="JSON",
                        help="with --replay: bench.py's JSON, for its one-hop floor and CPU per message "
                             "(default: bench.json if there is one here, else the floor is measured now and "
                             "the processing is the default)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    out = Path(args.out)
    progress = Progress(not args.quiet and sys.stderr.isatty())
    try:
        Latency(args.latency, np.random.default_rng(0))  # a bad spec fails before any work
        out.mkdir(parents=True, exist_ok=True)
        if args.replay:
            from gossipnet.sim import replay as simreplay
            bench = args.bench or ("bench.json" if Path("bench.json").is_file() else None)
            return simreplay.main(args.replay, out, bench, args.rng_seed)
        scenario = Scenario(peers=args.peers, seeds=args.seeds, messages=args.messages,
                            message_gap=args.message_gap, latency=args.latency, processing_ms=args.processing,
                            cores=args.cores, degree_model=args.degree_model, fail=args.fail,
                            fail_at=args.fail_at, churn=args.churn, ping_interval=args.ping_interval,
                            ping_misses=args.ping_misses, probe_timeout=args.probe_timeout,
                            max_links=args.max_links, repair=not args.no_repair,
                            repair_interval=args.repair_interval, rng_seed=args.rng_seed)
        if args.scale:
            run_scale(scenario, args.scale, progress, out)
            print(f"wrote {out / 'scale.json'} and {out / 'scale.png'}")
            return 0
        started = time.monotonic()
        result, _ = run(scenario, progress)
        result["wall_s"] = time.monotonic() - started
        (out / "result.json").write_text(json.dumps(result))
        simreport.draw_reach(result, str(out / "reach.png"))
        simreport.draw_degrees(result, str(out / "degrees.png"))
        print(simreport.text(result))
        print(f"wall time {result['wall_s']:.1f} s; wrote {out / 'result.json'}, {out / 'reach.png'}, "
              f"{out / 'degrees.png'}")
        return 0
    except (SimulationError, OSError) as exc:
        progress.done()
        print(f"python -m gossipnet.sim: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        progress.done()
        print("python -m gossipnet.sim: error: out of memory; a run needs about 15 KB per peer plus 18 bytes per peer "
              "per message (fewer --peers or --messages)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress.done()
        print("python -m gossipnet.sim: interrupted", file=sys.stderr)
        return 130
