"""Running the seeds of a config as processes (runner.py): which are on this host, their ports, start, serve.

Every seed process is started by launch.spawn and stopped by PID by the
caller (launch.stop), whatever happens.  Each seed keeps its state in a file
of its own in the run's state folder (seed.py --state), unless runner.py is
given --no-state.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gossipnet.config import (
    DEFAULT_CONFIG,
    DEFAULT_LOG,
)
from gossipnet.logs.runlog import LogTail
from gossipnet.protocol.wire import Address
from gossipnet.run import launch
from gossipnet.run.launch import NodeProcess
from gossipnet.run.options import (
    EXIT_FAILED,
    EXIT_PASSED,
)
from gossipnet.run.peerrun import Status

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


def default_state_dir(log: Path) -> Path:
    """``outputfile.txt`` -> ``outputfile.state``: the seeds' state folder, next to the log."""
    return log.with_name(f"{log.stem}.state")


def state_file(state_dir: Path, seed: Address) -> Path:
    """The state file of ``seed`` in ``state_dir``: ``seed-127.0.0.1-8080.sqlite``."""
    return state_dir / f"seed-{seed.ip}-{seed.port}.sqlite"


def start_seeds(seeds: Sequence[Address], args: argparse.Namespace, probe_timeout: float, tail: LogTail,
                stop_request: launch.StopRequest, workdir: Path, nodes: list[NodeProcess],
                state_dir: Path | None = None) -> None:
    """Start one process per seed (appended to ``nodes`` at once) and wait for each STARTED line.

    With ``state_dir`` (which must exist), each seed keeps its state in its file there.
    Raises launch.LaunchError, with a port already in use said plainly, or launch.Interrupted.
    """
    intended = {}
    for index, seed in enumerate(seeds):
        if stop_request:
            raise launch.Interrupted()
        state = [] if state_dir is None else ["--state", str(state_file(state_dir.resolve(), seed))]
        node = launch.spawn("seed", [seed.ip, str(seed.port), "--config", str(args.config.resolve()),
                                     "--log", str(args.log.resolve()), "--quiet",
                                     "--probe-timeout", f"{probe_timeout:g}", *state], workdir / f"seed-{index}.err")
        nodes.append(node)
        intended[node.pid] = seed
    try:
        launch.wait_started(nodes, tail, SEED_START_TIMEOUT, interrupted=lambda: bool(stop_request))
    except launch.LaunchError as exc:
        in_use = [intended[node.pid] for node in exc.failed if "already in use" in node.error_line()]
        if in_use:
            raise launch.LaunchError(in_use_error(in_use, args.config), exc.failed) from None
        raise


def serve(seed_nodes: list[NodeProcess], stop_request: launch.StopRequest, status: Status,
          args: argparse.Namespace, state_dir: Path | None = None) -> int:
    """Seeds only: keep them until a signal; 1 if one of them dies first."""
    flags = "".join(f" --{name} {value}" for name, value in (("config", args.config), ("log", args.log))
                    if str(value) != str(Path(DEFAULT_CONFIG if name == "config" else DEFAULT_LOG)))
    kept = f"their state in {state_dir}/" if state_dir is not None else "their state in memory only"
    status.note(f"{len(seed_nodes)} seeds running, logging to {args.log}, {kept}. Start peers in another "
                f"terminal with: python PeerRunner.py -n 20{flags}{' --fast' if args.fast else ''}. "
                "Ctrl-C stops the seeds.")
    while not stop_request:
        if exited := [node for node in seed_nodes if not node.running]:
            node = exited[0]
            print(f"{PROG}: error: {node.describe()} exited with status {node.process.returncode}: "
                  f"{node.error_line() or 'no error message'}; stopping the other seeds", file=sys.stderr)
            return EXIT_FAILED
        time.sleep(0.2)
    status.note(f"{stop_request.name}: stopping {len(seed_nodes)} seeds")
    return EXIT_PASSED
