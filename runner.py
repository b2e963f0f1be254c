"""Run the gossip network as a user does: the seeds, or the whole run with a verdict.

    python runner.py                        # the seeds of config.txt, until Ctrl-C
    python runner.py --peers 20 [--fast]    # seeds, then 20 peers, to a verdict

Every seed of the config whose address is on this host is started as its own
``seed.py`` process, on the port the config gives it.  With ``--peers N`` the
peers follow (:class:`PeerRunner.PeerRun`, the same code as PeerRunner.py),
the run goes on until it is complete or times out, and the exit status is
the verdict.  Whatever happens (a taken port, Ctrl-C, a crash), every process
started here is stopped again: SIGTERM by PID, SIGKILL after a deadline.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import launch
from config import DEFAULT_CONFIG, DEFAULT_LOG, ConfigError, SeedSettings, load_seeds, positive_float, positive_int
from launch import NodeProcess
from peerrun import FAST, INTERRUPTED, REPORT, PeerRun, Status
from PeerRunner import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_PASSED,
    EXIT_USAGE,
    add_network_arguments,
    add_run_arguments,
    finish,
    make_plan,
)
from runlog import LogTail
from wire import Address

PROG = "runner.py"

# Seconds the seeds get to log STARTED; a seed starts in well under a second.
SEED_START_TIMEOUT = 30.0


def is_local(ip: str) -> bool:
    """127.0.0.0/8, or an address some interface of this host has (it can be bound)."""
    if ipaddress.ip_address(ip).is_loopback:
        return True
    with socket.socket() as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
    return True


def ports_in_use(seeds: Sequence[Address]) -> list[Address]:
    """The seed addresses a seed could not listen on now (bound as a seed binds them)."""
    taken = []
    for seed in seeds:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((seed.ip, seed.port))
            except OSError:
                taken.append(seed)
    return taken


def in_use_error(seeds: Sequence[Address], config: Path) -> str:
    ports = ", ".join(str(seed.port) for seed in seeds)
    plural = len(seeds) > 1
    return (f"cannot start seed{'s' * plural} {', '.join(map(str, seeds))}: port{'s' * plural} {ports} "
            f"{'are' if plural else 'is'} already in use (an earlier run still going?); stop whatever holds "
            f"{'them' if plural else 'it'}, or list free ports in {config}")


def start_seeds(seeds: Sequence[Address], args: argparse.Namespace, probe_timeout: float, tail: LogTail,
                stop_request: launch.StopRequest, workdir: Path, nodes: list[NodeProcess]) -> None:
    """Start one process per seed (appended to ``nodes`` at once) and wait for each STARTED line.

    Raises launch.LaunchError, with a port already in use said plainly, or launch.Interrupted.
    """
    intended = {}
    for index, seed in enumerate(seeds):
        if stop_request:
            raise launch.Interrupted()
        node = launch.spawn("seed", [seed.ip, str(seed.port), "--config", str(args.config.resolve()),
                                     "--log", str(args.log.resolve()), "--quiet",
                                     "--probe-timeout", f"{probe_timeout:g}"], workdir / f"seed-{index}.err")
        nodes.append(node)
        intended[node.pid] = seed
    try:
        launch.wait_started(nodes, tail, SEED_START_TIMEOUT, interrupted=lambda: bool(stop_request))
    except launch.LaunchError as exc:
        in_use = [intended[node.pid] for node in exc.failed if "already in use" in node.error_line()]
        if in_use:
            raise launch.LaunchError(in_use_error(in_use, args.config), exc.failed) from None
        raise


def build_parser() -> tuple[argparse.ArgumentParser, list[str]]:
    """The command line, and the dests of the flags that only mean something with --peers."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Start the seeds of the config (those on this host) and keep them running until Ctrl-C. "
                    "With --peers N, also start N peers and run to a verdict: stop by itself when every message "
                    "has reached every live peer and every killed peer was reported and removed, print a "
                    "summary, and exit 0 if the run met all of it, 1 if not (or a seed could not start), 2 on a "
                    "bad command line or config, 130 on Ctrl-C. Seeds listen on the config's ports "
                    "(8080-8085 in the shipped config.txt). The log starts afresh unless --append.")
    parser.add_argument("-n", "--peers", type=positive_int, metavar="N",
                        help="also start N peers and run to a verdict (default: seeds only)")
    add_network_arguments(parser)
    parser.add_argument("--append", action="store_true",
                        help="add to the log instead of emptying it first (the summary still counts only this "
                             "run's lines)")
    parser.add_argument("--probe-timeout", type=positive_float, metavar="S",
                        help=f"seconds an accused peer has to answer a seed's own liveness check "
                             f"(default: {SeedSettings.probe_timeout:g}, --fast {FAST.probe_timeout:g})")
    run_flags = add_run_arguments(parser.add_argument_group("the run, with --peers"), default_kill="1; 0 for none")
    return parser, run_flags


def main(argv: list[str] | None = None) -> int:
    stop_request = launch.StopRequest().install()
    parser, run_flags = build_parser()
    args = parser.parse_args(argv)
    probe_timeout = args.probe_timeout or (FAST if args.fast else REPORT).probe_timeout
    plan = None
    if args.peers:
        plan = make_plan(parser, args, default_kill=1 if args.peers > 1 else 0, probe_timeout=probe_timeout)
    elif given := [f"--{dest.replace('_', '-')}" for dest in run_flags
                   if getattr(args, dest) != parser.get_default(dest)]:
        parser.error(f"{', '.join(given)} only make{'s' * (len(given) == 1)} sense with --peers N")

    def fail(status: int, message: str) -> int:
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
        return status

    try:
        seeds = load_seeds(args.config)
    except ConfigError as exc:
        return fail(EXIT_USAGE, str(exc))
    local = [seed for seed in seeds if is_local(seed.ip)]
    if not local:
        return fail(EXIT_USAGE, f"{args.config} names no seed on this host (127.0.0.0/8 or one of its "
                                f"addresses), so there is nothing to start: {', '.join(map(str, seeds))}")
    # Refuse a taken port before emptying the log, which may be an earlier run's that is still going.
    if not args.append and (taken := ports_in_use(local)):
        return fail(EXIT_FAILED, in_use_error(taken, args.config))
    try:
        with open(args.log, "a" if args.append else "w"):
            pass
    except OSError as exc:
        return fail(EXIT_FAILED, f"cannot open log {args.log}: {exc.strerror or exc}")
    tail = LogTail.from_end(args.log)
    status = Status()
    for seed in seeds:
        if seed not in local:
            status.note(f"not started here: seed {seed} (not an address of this host)")

    seed_nodes: list[NodeProcess] = []
    peer_run: PeerRun | None = None
    with tempfile.TemporaryDirectory(prefix="runner-") as workdir:
        try:
            try:
                start_seeds(local, args, probe_timeout, tail, stop_request, Path(workdir), seed_nodes)
            except launch.LaunchError as exc:
                return fail(EXIT_FAILED, str(exc))
            for node in seed_nodes:
                status.note(f"seed {node.address} listening (pid {node.pid})")
            if plan is None:
                return serve(seed_nodes, stop_request, status, args)
            peer_run = PeerRun(plan, tail, stop_request, status, Path(workdir), others=seed_nodes)
            try:
                peer_run.start()
            except launch.LaunchError as exc:
                return fail(EXIT_FAILED, str(exc))
            peer_run.watch()
        except launch.Interrupted:
            if peer_run is None:
                status.note(f"{stop_request.name}: stopping")
                return EXIT_INTERRUPTED
            peer_run.outcome = INTERRUPTED
        finally:
            if peer_run is not None:
                peer_run.stop()
            launch.stop(seed_nodes)
    return finish(peer_run, PROG, {"seeds": [str(node.address) for node in seed_nodes],
                                   "probe_timeout": probe_timeout})


def serve(seed_nodes: list[NodeProcess], stop_request: launch.StopRequest, status: Status,
          args: argparse.Namespace) -> int:
    """Seeds only: keep them until a signal; 1 if one of them dies first."""
    flags = "".join(f" --{name} {value}" for name, value in (("config", args.config), ("log", args.log))
                    if str(value) != str(Path(DEFAULT_CONFIG if name == "config" else DEFAULT_LOG)))
    status.note(f"{len(seed_nodes)} seeds running, logging to {args.log}. Start peers in another terminal with: "
                f"python PeerRunner.py -n 20{flags}{' --fast' if args.fast else ''}. Ctrl-C stops the seeds.")
    while not stop_request:
        if exited := [node for node in seed_nodes if not node.running]:
            node = exited[0]
            print(f"{PROG}: error: {node.describe()} exited with status {node.process.returncode}: "
                  f"{node.error_line() or 'no error message'}; stopping the other seeds", file=sys.stderr)
            return EXIT_FAILED
        time.sleep(0.2)
    status.note(f"{stop_request.name}: stopping {len(seed_nodes)} seeds")
    return EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())
