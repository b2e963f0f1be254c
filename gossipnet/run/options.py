"""What runner.py, PeerRunner.py and the lab share: a run's command line, its plan, and how it ends.

The command line of a peer run (add_network_arguments, add_run_arguments),
the plan made from it (make_plan), whether the seeds answer (reachable), and
the summary and exit status at the end (finish).  The run itself is
peerrun.py, its summary and verdict summary.py.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gossipnet.config import (
    DEFAULT_CONFIG,
    DEFAULT_LOG,
    add_peer_arguments,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from gossipnet.protocol.wire import Address, ProtocolError
from gossipnet.run.peerrun import FAST, INTERRUPTED, REPORT, PeerRun, Plan, Timings
from gossipnet.run.summary import format_report, summarize, write_summary

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # what a shell reports for a Ctrl-C'd program

# The peers' settings a run takes from its command line (config.PEER_FLAGS); the others are the defaults.
PEER_SETTINGS = ("gossip_interval", "gossip_count", "ping_interval", "ping_misses", "liveness", "degree_model",
                 "rng_seed")


def default_summary_path(log: Path) -> Path:
    """``outputfile.txt`` -> ``outputfile.summary.json``, next to the log."""
    return log.with_name(f"{log.stem}.summary.json")


# --- Command line ---------------------------------------------------------------------------


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --log and --fast: what seeds and peers both need."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE", type=Path,
                        help=f"seed list, one IP:port a line (default: {DEFAULT_CONFIG})")
    parser.add_argument("--log", default=DEFAULT_LOG, metavar="FILE", type=Path,
                        help=f"log file every node appends to (default: {DEFAULT_LOG})")
    parser.add_argument("--fast", action="store_true",
                        help="every interval ten times shorter (gossip 0.5 s, ping 1.3 s, seed probe 0.3 s, "
                             "kill after 1 s); flags given explicitly still win")


def add_run_arguments(parser: argparse.ArgumentParser, default_kill: str) -> list[str]:
    """The flags that shape the peers and the run; shared by PeerRunner.py and runner.py --peers.

    Returns their dests.  The peers' settings are config.py's flags; the
    intervals left out default to the report's, or --fast's.
    """
    actions = [
        parser.add_argument("--host", default="127.0.0.1", metavar="IP",
                            help="IPv4 address the peers listen on (default: 127.0.0.1)"),
        parser.add_argument("--base-port", type=positive_int, metavar="P",
                            help="peers listen on ports P..P+N-1 (default: free ports the system picks)"),
        *add_peer_arguments(parser, PEER_SETTINGS, scripted={
            "gossip_interval": f"default: {REPORT.gossip_interval:g}, --fast {FAST.gossip_interval:g}",
            "ping_interval": f"default: {REPORT.ping_interval:g}, --fast {FAST.ping_interval:g}",
            "rng_seed": "peer i gets N+i, and the victims are drawn with N; default: random"}),
        parser.add_argument("--kill", type=non_negative_int, metavar="K",
                            help="SIGKILL K random peers once all are up, to show failure detection "
                                 f"(default: {default_kill}). Victims are drawn among choices that leave each "
                                 "enough live neighbours to report it and the other peers connected"),
        parser.add_argument("--kill-after", type=non_negative_float, metavar="S",
                            help="seconds after every peer is up (has made its first message) before the kill "
                                 f"(default: {REPORT.kill_after:g}, --fast {FAST.kill_after:g})"),
        parser.add_argument("--timeout", type=positive_float, metavar="S",
                            help="give up, and fail, after S seconds (default: twice the time the run should "
                                 "take, plus a margin for starting the processes)"),
        parser.add_argument("--summary", type=Path, metavar="FILE",
                            help="write the summary here as JSON (default: next to the log, e.g. "
                                 f"{default_summary_path(Path(DEFAULT_LOG))})"),
    ]
    return [action.dest for action in actions]


def make_plan(parser: argparse.ArgumentParser, args: argparse.Namespace, default_kill: int,
              probe_timeout: float | None = None) -> Plan:
    """Check the parsed flags and fill the defaults (the report's or --fast's); exit 2 when wrong."""
    preset = FAST if args.fast else REPORT
    timings = Timings(
        gossip_interval=args.gossip_interval or preset.gossip_interval,
        ping_interval=args.ping_interval or preset.ping_interval,
        probe_timeout=probe_timeout or preset.probe_timeout,
        kill_after=preset.kill_after if args.kill_after is None else args.kill_after,
    )
    try:
        host = Address(args.host, 1).ip
    except ProtocolError as exc:
        parser.error(f"--host: {exc}")
    if args.base_port is not None and args.base_port + args.peers - 1 > 65535:
        parser.error(f"--base-port {args.base_port} leaves no room for {args.peers} peers below port 65536")
    kill = default_kill if args.kill is None else args.kill
    if kill >= args.peers:
        parser.error(f"--kill {kill} must leave at least one of the {args.peers} peers alive to report the deaths")
    plan = Plan(peers=args.peers, config=args.config.resolve(), log=args.log.resolve(),
                summary=(args.summary or default_summary_path(args.log)).resolve(), timings=timings,
                host=host, base_port=args.base_port, gossip_count=args.gossip_count, ping_misses=args.ping_misses,
                liveness=args.liveness, degree_model=args.degree_model, rng_seed=args.rng_seed, kill=kill)
    timeout = args.timeout or 30 + 0.5 * args.peers + 2 * plan.expected_duration()
    return replace(plan, timeout=timeout)


    # --- The verdict -------------------------------------------------------------------------

def finish(peer_run: PeerRun, prog: str, extra_settings: dict | None = None) -> int:
    """Print and write the summary of a stopped run; the exit status it deserves."""
    report = summarize(peer_run, extra_settings)
    error = write_summary(report, peer_run.plan.summary)
    print(format_report(report, None if error else peer_run.plan.summary), flush=True)
    if error:
        print(f"{prog}: error: {error}", file=sys.stderr)
    if peer_run.outcome == INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_PASSED if report["passed"] and not error else EXIT_FAILED


# --- The script -------------------------------------------------------------------------------


def reachable(seeds: Sequence[Address], timeout: float = 2.0) -> list[Address]:
    """The seeds that accept a TCP connection (closed at once, so a seed logs nothing)."""
    answered = []
    for seed in seeds:
        try:
            with socket.create_connection((seed.ip, seed.port), timeout=timeout):
                answered.append(seed)
        except OSError:
            pass
    return answered
