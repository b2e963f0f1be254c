"""Signals end a node once and cleanly, however many arrive and however close together.

``timeout 25 peer.py`` sends SIGTERM to the node and again to its process
group; a Ctrl-C in a terminal reaches runner.py and every node it started at
once.  A handler that took a lock could land inside itself and wait forever
(a peer was found still running ten minutes after ``timeout`` ended it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time

import pytest

from gossipnet.logs import logformat
from tests.netharness import FAST_PEER, Network

# A deadline on a hang, not a timing threshold: a clean stop takes well under a second.
STOP_DEADLINE = 60


@pytest.mark.parametrize("role", ["seed", "peer"])
def test_a_stream_of_signals_stops_a_node_once_and_cleanly(tmp_path, role):
    """Signals keep coming until the node has exited, so some land inside the handling of earlier ones."""
    net = Network(tmp_path)
    try:
        seeds = net.start_seeds(1)
        node = seeds[0] if role == "seed" else net.start_peers(1, *FAST_PEER)[0]
        deadline = time.monotonic() + STOP_DEADLINE
        for sig in itertools.cycle((signal.SIGTERM, signal.SIGINT, signal.SIGHUP)):
            if node.process.poll() is not None:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the {role} was still running {STOP_DEADLINE} s into a stream of signals")
            with contextlib.suppress(ProcessLookupError):  # it has just exited
                os.kill(node.pid, sig)
        assert node.process.returncode == 0, f"the {role} exited {node.process.returncode}: {net.directory}"
        stops = net.events(logformat.STOPPED, node=node.address)
        assert len(stops) == 1, f"STOPPED logged {len(stops)} times"
    finally:
        net.close()
