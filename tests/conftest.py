import pytest

from netharness import Network


@pytest.fixture
def network(tmp_path):
    """Seeds and peers as processes; every one of them is ended after the test."""
    net = Network(tmp_path)
    try:
        yield net
    finally:
        net.close()
