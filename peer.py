"""A peer node of the report (§2 "Peer Nodes", §4.2 "Peer Node"): joins, gossips, watches its neighbours.

    python peer.py IP PORT [--config FILE] [--log FILE] [--quiet] [--gossip-interval 5]
                   [--gossip-count 10] [--ping-interval 13] [--ping-misses 3] [--liveness app|icmp|both]
                   [--degree-model preferential|report] [--no-auth] [--rng-seed N]
                   [--repair-interval S] [--no-repair]

The peer registers with a random majority of the seeds of the config, links to
peers from the lists they return, creates and forwards gossip, pings its
neighbours (by --liveness: over the link, by the system ping, or both) and
reports a dead one to the seeds.  The node is
gossipnet.node.peer; its rules are in gossipnet.protocol.
"""

from __future__ import annotations

import argparse
import os
import random
import sys

from gossipnet import console
from gossipnet.config import (
    MAX_CONNECTIONS,
    PEER_EXTRA_CONNECTIONS,
    ConfigError,
    add_peer_arguments,
    listen_address,
    load_seeds,
    node_address_arguments,
    peer_settings_from,
)
from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.node.icmp import ping_unavailable
from gossipnet.node.peer import Peer
from gossipnet.protocol.liveness import uses_icmp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Peer node of the gossip network: registers with the seeds, links to other "
                    "peers, gossips and reports dead neighbours.")
    node_address_arguments(parser, "peer")
    add_peer_arguments(parser)
    args = parser.parse_args(argv)
    ip, port = listen_address(parser, args.ip, args.port)
    settings = peer_settings_from(args)
    try:
        seeds = load_seeds(args.config)
    except ConfigError as exc:
        parser.exit(2, f"peer: error: {exc}\n")
    if uses_icmp(settings.liveness) and (why := ping_unavailable()):
        parser.exit(2, f"peer: error: {why}\n")
    server, log = transport.open_node(parser, "peer", ip, port, args.log, args.quiet,
                                      MAX_CONNECTIONS + PEER_EXTRA_CONNECTIONS)
    peer = Peer(server, log, seeds, settings, random.Random(args.rng_seed))
    watch = transport.SignalWatch(peer.stopped)  # before STARTED: a signal after it stops cleanly
    log.event(logformat.STARTED, listen=peer.address, pid=os.getpid(), seeds=len(seeds),
              gossip_interval=settings.gossip_interval, gossip_count=settings.gossip_count,
              ping_interval=settings.ping_interval, ping_misses=settings.ping_misses, liveness=settings.liveness,
              degree_model=settings.degree_model, rng_seed=args.rng_seed, auth="yes" if settings.auth else "no",
              repair_interval=settings.repair_period if settings.repair else "off")
    # A peer process that stops tells its seeds, which take it out of their lists (PROTOCOL.md §3.7).
    return transport.run_until_signalled(peer.stopped, peer.start, lambda: peer.stop(leave=True), log, "peer",
                                         peer.failure, watch)


if __name__ == "__main__":
    sys.exit(console.run(main))
