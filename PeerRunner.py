"""Start N peers as processes, show the run's progress, and end with a verdict.

    python PeerRunner.py -n 20 [--fast] [--kill K [--kill-after S]] [--timeout S] ...

The seeds must be running already (``python runner.py`` in another
terminal); ``python runner.py --peers N`` does both in one command with the
same code: the command line here (add_*_arguments, make_plan, finish), the
run in peerrun.py, the summary and verdict in runsummary.py.  The log is
appended to; only the lines this run adds are counted.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import launch
import topology
from config import (
    DEFAULT_CONFIG,
    DEFAULT_LOG,
    ConfigError,
    PeerSettings,
    load_seeds,
    majority,
    positive_float,
    positive_int,
)
from peerrun import FAST, INTERRUPTED, REPORT, PeerRun, Plan, Status, Timings
from runlog import LogTail
from runsummary import format_report, summarize, write_summary
from wire import MAX_NUMBER_DIGITS, Address, ProtocolError

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # what a shell reports for a Ctrl-C'd program


def default_summary_path(log: Path) -> Path:
    """``outputfile.txt`` -> ``outputfile.summary.json``, next to the log."""
    return log.with_name(f"{log.stem}.summary.json")


# --- Command line ---------------------------------------------------------------------------


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 0")
    return int(text)


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a number >= 0")
    return value


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --log and --fast: what seeds and peers both need."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE", type=Path,
                        help=f"seed list, one IP:port a line (default: {DEFAULT_CONFIG})")
    parser.add_argument("--log", default=DEFAULT_LOG, metavar="FILE", type=Path,
                        help=f"log file every node appends to (default: {DEFAULT_LOG})")
    parser.add_argument("--fast", action="store_true",
                        help="every interval ten times shorter (gossip 0.5 s, ping 1.3 s, seed probe 0.3 s, "
                             "kill after 1 s); flags given explicitly still win")


def add_peer_arguments(parser: argparse.ArgumentParser, default_kill: str) -> None:
    """The flags that shape the peers and the run; shared by PeerRunner.py and runner.py --peers."""
    parser.add_argument("--host", default="127.0.0.1", metavar="IP",
                        help="IPv4 address the peers listen on (default: 127.0.0.1)")
    parser.add_argument("--base-port", type=positive_int, metavar="P",
                        help="peers listen on ports P..P+N-1 (default: free ports the system picks)")
    peer = PeerSettings()
    parser.add_argument("--gossip-interval", type=positive_float, metavar="S",
                        help=f"seconds between a peer's messages (default: {REPORT.gossip_interval:g}, "
                             f"--fast {FAST.gossip_interval:g})")
    parser.add_argument("--gossip-count", type=positive_int, default=peer.gossip_count, metavar="N",
                        help=f"messages each peer creates (default: {peer.gossip_count})")
    parser.add_argument("--ping-interval", type=positive_float, metavar="S",
                        help=f"seconds between liveness requests (default: {REPORT.ping_interval:g}, "
                             f"--fast {FAST.ping_interval:g})")
    parser.add_argument("--ping-misses", type=positive_int, default=peer.ping_misses, metavar="N",
                        help=f"missed requests that make a neighbour dead (default: {peer.ping_misses})")
    parser.add_argument("--degree-model", choices=topology.DEGREE_MODELS, default=peer.degree_model,
                        help=f"how peers choose neighbours (default: {peer.degree_model})")
    parser.add_argument("--rng-seed", type=int, metavar="N",
                        help="repeatable run: peer i gets --rng-seed N+i, and the victims are drawn with N")
    parser.add_argument("--kill", type=non_negative_int, metavar="K",
                        help="SIGKILL K random peers once all are up, to show failure detection "
                             f"(default: {default_kill}). Victims are drawn among choices that leave each enough "
                             "live neighbours to report it and the other peers connected")
    parser.add_argument("--kill-after", type=non_negative_float, metavar="S",
                        help="seconds after every peer is up (has made its first message) before the kill "
                             f"(default: {REPORT.kill_after:g}, --fast {FAST.kill_after:g})")
    parser.add_argument("--timeout", type=positive_float, metavar="S",
                        help="give up, and fail, after S seconds (default: twice the time the run should take, "
                             "plus a margin for starting the processes)")
    parser.add_argument("--summary", type=Path, metavar="FILE",
                        help="write the summary here as JSON (default: next to the log, e.g. "
                             f"{default_summary_path(Path(DEFAULT_LOG))})")


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
    if args.gossip_count >= 10 ** MAX_NUMBER_DIGITS:
        parser.error(f"--gossip-count must be below 10^{MAX_NUMBER_DIGITS}")
    kill = default_kill if args.kill is None else args.kill
    if kill >= args.peers:
        parser.error(f"--kill {kill} must leave at least one of the {args.peers} peers alive to report the deaths")
    plan = Plan(peers=args.peers, config=args.config.resolve(), log=args.log.resolve(),
                summary=(args.summary or default_summary_path(args.log)).resolve(), timings=timings,
                host=host, base_port=args.base_port, gossip_count=args.gossip_count, ping_misses=args.ping_misses,
                degree_model=args.degree_model, rng_seed=args.rng_seed, kill=kill)
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


def main(argv: list[str] | None = None) -> int:
    stop_request = launch.StopRequest().install()
    parser = argparse.ArgumentParser(
        prog="PeerRunner.py",
        description="Start N peers of the gossip network as separate processes, show their progress, and "
                    "stop when every message has reached every live peer and every killed peer was "
                    "reported and removed (or at --timeout). Prints a summary and exits 0 if the run met all "
                    "of it, 1 if not, 2 on a bad command line, 130 on Ctrl-C. The seeds must be running "
                    "(python runner.py); the log is appended to, and only this run's lines are counted.")
    parser.add_argument("-n", "--peers", type=positive_int, required=True, metavar="N", help="peers to start")
    add_network_arguments(parser)
    add_peer_arguments(parser, default_kill="0")
    args = parser.parse_args(argv)
    plan = make_plan(parser, args, default_kill=0)
    try:
        seeds = load_seeds(plan.config)
    except ConfigError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
    need = majority(len(seeds))
    if len(answered := reachable(seeds)) < need:
        parser.exit(EXIT_FAILED, f"{parser.prog}: error: only {len(answered)} of the {len(seeds)} seeds in "
                                 f"{args.config} accept connections and a peer needs {need}; "
                                 "start them first (python runner.py)\n")
    try:
        plan.log.touch()
    except OSError as exc:
        parser.exit(EXIT_FAILED, f"{parser.prog}: error: cannot open log {args.log}: {exc.strerror or exc}\n")
    with tempfile.TemporaryDirectory(prefix="peerrunner-") as workdir:
        peer_run = PeerRun(plan, LogTail.from_end(plan.log), stop_request, Status(), Path(workdir))
        try:
            peer_run.start()
            peer_run.watch()
        except launch.Interrupted:
            peer_run.outcome = INTERRUPTED
        except launch.LaunchError as exc:
            parser.exit(EXIT_FAILED, f"{parser.prog}: error: {exc}\n")  # the peers are stopped on the way out
        finally:
            peer_run.stop()
    return finish(peer_run, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
