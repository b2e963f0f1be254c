"""peer.py, unchanged, except that its first gossip message waits for a start signal.

    python -m gossipnet.bench.peer START_FILE OFFSET IP PORT [peer.py flags...]

The peer registers, links and answers as usual; its gossip loop (and so its
first message) begins only at ``T + OFFSET``, where ``T`` is the wall-clock
time bench.py writes into ``START_FILE`` once the whole network has joined.
A benchmark can then time messages with no startup in them: every peer
gossips at once (throughput), or each in its own slot (dissemination).
peer.py has no such flag; the only change here is when ``_gossip_loop``
starts.  Stopping works as for peer.py (SIGTERM).
"""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

from gossipnet.node.peer import Peer

# The project's root, where peer.py is (not run.launch.ROOT: importing the
# launcher would load modules a peer does not, and the bench measures peers' memory).
ROOT = Path(__file__).resolve().parents[2]

# Seconds between two looks for the start file: cheap for hundreds of peers.
POLL_INTERVAL = 0.1


def _delayed(gossip_loop, start_file: Path, offset: float):
    def wait_then_gossip(self: Peer) -> None:
        while not self.stopped.is_set():
            try:
                start = float(start_file.read_text())
            except (OSError, ValueError):
                self.stopped.wait(POLL_INTERVAL)
                continue
            if not self.stopped.wait(max(0.0, start + offset - time.time())):
                gossip_loop(self)
            return

    return wait_then_gossip


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m gossipnet.bench.peer START_FILE OFFSET IP PORT [peer.py flags...]", file=sys.stderr)
        return 2
    Peer._gossip_loop = _delayed(Peer._gossip_loop, Path(argv[0]), float(argv[1]))
    sys.argv = [str(ROOT / "peer.py"), *argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")  # peer.py itself, which exits with its status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
