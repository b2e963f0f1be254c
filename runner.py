"""Run the gossip network as a user does: the seeds, or the whole run with a verdict.

    python runner.py                        # the seeds of config.txt, until Ctrl-C
    python runner.py --peers 20 [--fast]    # seeds, then 20 peers, to a verdict
    python runner.py --peers 20 --dashboard # and a web page watching it live (http://127.0.0.1:8000/)

Every seed of the config whose address is on this host is started as its own
``seed.py`` process, on the port the config gives it, with its state file in
the run's state folder (``outputfile.state/`` next to the log; ``--state-dir``,
``--no-state``), so a seed started again starts from it.  With ``--peers N`` the
peers follow (gossipnet.run.peerrun.PeerRun, the same code as PeerRunner.py),
the run goes on until it is complete or times out, and the exit status is
the verdict.  Whatever happens (a taken port, Ctrl-C, a crash), every process
started here is stopped again: SIGTERM by PID, SIGKILL after a deadline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from gossipnet import console
from gossipnet.config import (
    DEFAULT_LOG,
    ConfigError,
    SeedSettings,
    load_seeds,
    port_number,
    positive_float,
    positive_int,
)
from gossipnet.logs.runlog import LogTail
from gossipnet.run import launch
from gossipnet.run.launch import NodeProcess
from gossipnet.run.options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    add_network_arguments,
    add_run_arguments,
    finish,
    make_plan,
)
from gossipnet.run.peerrun import FAST, INTERRUPTED, REPORT, PeerRun, Status
from gossipnet.run.seeds import default_state_dir, in_use_error, is_local, ports_in_use, serve, start_seeds
from gossipnet.viz import dashboard

PROG = "runner.py"



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
    parser.add_argument("--dashboard", nargs="?", const=dashboard.DEFAULT_PORT, type=port_number, metavar="PORT",
                        help=f"also serve the dashboard, a web page showing the run live, on 127.0.0.1:PORT "
                             f"(default: {dashboard.DEFAULT_PORT}; 0 picks a free port); it stops with the run")
    parser.add_argument("--probe-timeout", type=positive_float, metavar="S",
                        help=f"seconds an accused peer has to answer a seed's own liveness check "
                             f"(default: {SeedSettings.probe_timeout:g}, --fast {FAST.probe_timeout:g})")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--state-dir", type=Path, metavar="DIR",
                       help="folder of the seeds' state files, one per seed (seed-IP-PORT.sqlite), kept across "
                            "runs: a seed started again starts from its file (default: next to the log, e.g. "
                            f"{default_state_dir(Path(DEFAULT_LOG))}/)")
    state.add_argument("--no-state", action="store_true", help="seeds keep their state in memory only")
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
    state_dir = None if args.no_state else args.state_dir or default_state_dir(args.log)
    if state_dir is not None:
        try:
            state_dir.mkdir(exist_ok=True)
        except OSError as exc:
            return fail(EXIT_FAILED, f"cannot make the seeds' state folder {state_dir}: {exc.strerror or exc}")
    tail = LogTail.from_end(args.log)
    status = Status()
    for seed in seeds:
        if seed not in local:
            status.note(f"not started here: seed {seed} (not an address of this host)")

    watch = None
    if args.dashboard is not None:
        try:
            watch = dashboard.Dashboard(args.log, dashboard.DEFAULT_HOST, args.dashboard).start()
        except dashboard.DashboardError as exc:
            return fail(EXIT_FAILED, f"--dashboard: {exc}")
        status.note(f"dashboard: {watch.url}")

    seed_nodes: list[NodeProcess] = []
    peer_run: PeerRun | None = None
    with tempfile.TemporaryDirectory(prefix="runner-") as workdir:
        try:
            try:
                start_seeds(local, args, probe_timeout, tail, stop_request, Path(workdir), seed_nodes, state_dir)
            except launch.LaunchError as exc:
                return fail(EXIT_FAILED, str(exc))
            for node in seed_nodes:
                status.note(f"seed {node.address} listening (pid {node.pid})")
            if plan is None:
                return serve(seed_nodes, stop_request, status, args, state_dir)
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
            if watch is not None:
                watch.stop()
    return finish(peer_run, PROG, {"seeds": [str(node.address) for node in seed_nodes],
                                   "probe_timeout": probe_timeout,
                                   "state_dir": str(state_dir) if state_dir is not None else None})


if __name__ == "__main__":
    sys.exit(console.run(main))
