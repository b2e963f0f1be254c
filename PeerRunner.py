"""Start N peers as processes, show the run's progress, and end with a verdict.

    python PeerRunner.py -n 20 [--fast] [--kill K [--kill-after S]] [--timeout S] ...

The seeds must be running already (``python runner.py`` in another
terminal); ``python runner.py --peers N`` does both in one command with the
same code: the command line (gossipnet.run.options), the
run in gossipnet.run.peerrun, the summary and verdict in gossipnet.run.summary.  The log is
appended to; only the lines this run adds are counted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from gossipnet import console
from gossipnet.config import (
    ConfigError,
    load_seeds,
    majority,
    positive_int,
)
from gossipnet.logs.runlog import LogTail
from gossipnet.run import launch
from gossipnet.run.options import (
    EXIT_FAILED,
    EXIT_USAGE,
    add_network_arguments,
    add_run_arguments,
    finish,
    make_plan,
    reachable,
)
from gossipnet.run.peerrun import INTERRUPTED, PeerRun, Status


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
    add_run_arguments(parser, default_kill="0")
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
    sys.exit(console.run(main))
