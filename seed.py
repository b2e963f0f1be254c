"""A seed node of the report (§2 "Seed Nodes", §4.3 "Seed Node"): keeps the Peer List, removes dead peers.

    python seed.py IP PORT [--config FILE] [--log FILE] [--quiet] [--probe-timeout S] [--no-auth]
                           [--state FILE]

The seed registers peers (binding each one's key once the address proves it
holds it), answers a registration with its Peer List, records the links peers
report, and removes a peer reported dead only when enough of its neighbours
reported it and the seed's own liveness check fails too.  With --state it
writes all of that to an SQLite file before it answers, and starts from the
file when it exists.  The node is gossipnet.node.seed (its state file
gossipnet.node.seedstate); the rule it follows is gossipnet.protocol.deadnode.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gossipnet import console
from gossipnet.config import (
    SEED_MAX_CONNECTIONS,
    ConfigError,
    SeedSettings,
    listen_address,
    load_seeds,
    node_address_arguments,
    positive_float,
)
from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.node.seed import Seed
from gossipnet.node.seedstate import SeedState, StateError
from gossipnet.protocol.wire import Address


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Seed node of the gossip network: keeps the Peer List and removes dead peers.")
    node_address_arguments(parser, "seed")
    parser.add_argument("--probe-timeout", type=positive_float, default=SeedSettings.probe_timeout,
                        metavar="S", help="seconds an accused peer has to answer the seed's own "
                        f"liveness check (default: {SeedSettings.probe_timeout:g})")
    parser.add_argument("--no-auth", action="store_true",
                        help="also register peers without a public key (peers run with --no-auth); "
                             "by default every peer must prove its address with an Ed25519 key")
    parser.add_argument("--state", type=Path, metavar="FILE",
                        help="keep the Peer List, key bindings and recorded links in this SQLite file, written "
                             "before each answer, and start from it when it exists (its peers are listed again "
                             "once they answer the seed's liveness check). Default: in memory only")
    args = parser.parse_args(argv)
    ip, port = listen_address(parser, args.ip, args.port)
    # A seed's own work does not need the seed list; it checks that peers can
    # find it there.  A seed on PORT 0 (tests, tools) cannot be listed in advance.
    seeds: list[Address] = []
    if port != 0:
        try:
            seeds = load_seeds(args.config)
        except ConfigError as exc:
            parser.exit(2, f"seed: error: {exc}\n")
    state = None
    try:
        if args.state is not None:
            try:
                state = SeedState.open(args.state)
                saved = state.load()
            except StateError as exc:
                parser.exit(2, f"seed: error: {exc}\n")
        # Every peer the seed lists holds a connection to it (its seed connection).
        server, log = transport.open_node(parser, "seed", ip, port, args.log, args.quiet, SEED_MAX_CONNECTIONS)
        if state is not None:
            try:
                state.claim(server.address)
            except StateError as exc:
                server.server_close()
                log.close()
                parser.exit(2, f"seed: error: {exc}\n")
        seed = Seed(server, log, SeedSettings(probe_timeout=args.probe_timeout, auth=not args.no_auth),
                    config=args.config, journal=state)
        kept = {"state": "memory"} if state is None else {"state": args.state.resolve(), **seed.restore(saved)}
        watch = transport.SignalWatch(seed.failure.stopping)  # before STARTED: a signal after it stops cleanly
        log.event(logformat.STARTED, listen=seed.address, pid=os.getpid(), probe_timeout=args.probe_timeout,
                  auth="yes" if seed.settings.auth else "no",
                  listed="yes" if seed.address in seeds else "no" if seeds else "unchecked", **kept)
        if seeds and seed.address not in seeds:
            print(f"seed: warning: {seed.address} is not listed in {args.config}; peers will not find it",
                  file=sys.stderr)
        return transport.run_until_signalled(seed.failure.stopping, seed.start, seed.stop, log, "seed", seed.failure,
                                             watch)
    finally:
        if state is not None:
            state.close()


if __name__ == "__main__":
    sys.exit(console.run(main))
