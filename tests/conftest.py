import pytest

from gossipnet.config import SeedSettings
from gossipnet.logs import logformat
from gossipnet.node.seed import Seed
from gossipnet.node.transport import NodeServer
from netharness import PROBE_TIMEOUT, Network


@pytest.fixture
def network(tmp_path):
    """Seeds and peers as processes; every one of them is ended after the test."""
    net = Network(tmp_path)
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def seed(tmp_path):
    """An in-process seed on a free port, logging to tmp_path/log.txt; it takes plain
    registrations too (--no-auth), so most tests need no keys."""
    server = NodeServer("127.0.0.1", 0, handler=lambda conn: None)
    log = logformat.NodeLog("seed", server.address, tmp_path / "log.txt", console=False)
    server.log = log
    node = Seed(server, log, SeedSettings(probe_timeout=PROBE_TIMEOUT, auth=False))
    server.start()
    try:
        yield node
    finally:
        server.stop()
        log.close()
