"""Seeds with a state file (seed.py --state) as processes: SIGKILLed mid-registration, restarted, misused.

Seeds and peers run as processes on 127.0.0.1, on free ports, with fast
flags; every wait is on the log or on replies, with a deadline.  The stand-in
peers of the registration storm live at 127.77.x.y port 1, where nothing
listens, so a seed's check of them is refused at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from gossipnet.logs import logformat
from gossipnet.node import transport
from gossipnet.node.seedstate import SeedState
from gossipnet.protocol import restore
from gossipnet.protocol.wire import Address, LinkReport, Ok, PeerList, PeerListRequest, ProtocolError, Register
from gossipnet.run.seeds import default_state_dir, state_file
from netharness import Network, wait_for
from scripted import cleanup, free_ports, one_line_error, script, started, wait_until, write_config

CLIENTS = 8
PEERS_PER_CLIENT = 90  # 720 stand-in peers, under the 800 a seed holds


def stand_in(client: int, number: int) -> Address:
    return Address(f"127.77.{client}.{number + 1}", 1)


def restart_seed(network: Network, seed, state) -> object:
    """Start a seed again on the address it had, with its state file."""
    node = network.spawn("seed", seed.address.ip, str(seed.address.port), "--log", str(network.log_path), "--quiet",
                         "--config", str(network.config_path), "--probe-timeout", "1", "--state", str(state))
    network.wait_started([node])
    return node


def test_a_seed_killed_in_a_registration_storm_leaves_a_file_with_every_registration_it_answered(network, tmp_path):
    state = tmp_path / "seed.sqlite"
    [seed] = network.start_seeds(1, "--no-auth", "--state", str(state))
    registered: list[Address] = []  # answered registrations (list.append is atomic)
    linked: list[tuple[Address, Address]] = []  # answered link reports
    started_clients = threading.Barrier(CLIENTS + 1)

    def client(index: int) -> None:
        started_clients.wait()
        try:
            for number in range(PEERS_PER_CLIENT):
                peer = stand_in(index, number)
                if isinstance(transport.request(seed.address, Register(peer), timeout=10), PeerList):
                    registered.append(peer)
                if number and transport.request(seed.address, LinkReport(peer, stand_in(index, 0)),
                                                timeout=10) == Ok():
                    linked.append((peer, stand_in(index, 0)))
            while True:  # keep the seed writing until it dies: new links of the last peer
                neighbour = stand_in(index + 100, len(linked) % 200)
                if transport.request(seed.address, LinkReport(peer, neighbour), timeout=10) == Ok():
                    linked.append((peer, neighbour))
        except (OSError, ProtocolError):
            return  # the seed is gone

    clients = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(CLIENTS)]
    for thread in clients:
        thread.start()
    started_clients.wait()
    wait_for(lambda: len(registered) >= 200, "200 answered registrations", timeout=60)
    network.kill(seed)
    seed.process.wait()
    for thread in clients:
        thread.join(timeout=30)
    assert not [thread for thread in clients if thread.is_alive()]
    assert 200 <= len(registered) < CLIENTS * PEERS_PER_CLIENT  # killed mid-storm

    with contextlib.closing(sqlite3.connect(state)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    opened = SeedState.open(state)
    saved = opened.load()
    opened.close()
    assert set(registered) <= set(saved.peers)
    for reporter, neighbour in linked:
        assert neighbour in saved.claims[reporter], (reporter, neighbour)

    # The seed itself starts on the file, and checks every peer it held: none answers.
    again = restart_seed(network, seed, state)
    [line] = [event for pid, event in started(network.log_path).items() if pid == again.pid]
    assert line.fields["restored_peers"] == str(len(saved.peers))
    wait_for(lambda: len(network.events(logformat.RESTORE_DROPPED, again.address)) == len(saved.peers),
             "every restored peer checked", timeout=60)
    assert {event.fields["reason"] for event in network.events(logformat.RESTORE_DROPPED)} == {restore.NO_ANSWER}
    assert transport.request(again.address, PeerListRequest()) == PeerList(())


def test_a_majority_of_seeds_restarted_on_their_state_lists_every_peer_again_and_gossip_goes_on(network, tmp_path):
    states = [tmp_path / f"seed-{index}.sqlite" for index in range(3)]
    seeds = [network.start_node("seed", "--probe-timeout", "1", "--state", str(state)) for state in states]
    network.wait_started(seeds)
    network.config_path.write_text("".join(f"{seed.address}\n" for seed in seeds))
    count = 100  # 30 s of gossip: most of it after the restart, even on a loaded machine
    peers = network.start_peers(6, "--gossip-interval", "0.3", "--gossip-count", str(count),
                                "--ping-interval", "1.0", "--ping-misses", "3")
    # Before the kill: every peer registered with a majority, and holds every other peer's key
    # (it verified a message of each).
    network.wait_until(lambda: network.all_delivered(peers, 1), 60, "a message of every peer at every peer")
    registered_at: dict[Address, set[Address]] = {seed.address: set() for seed in seeds}
    for event in network.events(logformat.REGISTERED):
        registered_at[event.address("seed")].add(event.node)
    assert all(len([s for s in registered_at.values() if peer.address in s]) >= 2 for peer in peers)

    restarted = []
    for seed, state in zip(seeds[:2], states[:2], strict=True):
        network.kill(seed)
        seed.process.wait()
        restarted.append(restart_seed(network, seed, state))
    after = max(event.timestamp for pid, event in started(network.log_path).items()
                if pid in {node.pid for node in restarted})

    for node in restarted:
        [line] = [event for pid, event in started(network.log_path).items() if pid == node.pid]
        assert line.fields["restored_peers"] == str(len(registered_at[node.address]))

        def lists_its_peers_again(node=node) -> bool:
            listed = {peer for peer, _ in transport.request(node.address, PeerListRequest()).peers}
            return registered_at[node.address] <= listed

        network.wait_until(lists_its_peers_again, 30, f"{node.address} to list its peers again")
    assert not network.events(logformat.RESTORE_DROPPED)

    network.wait_until(lambda: len(network.events(logformat.GOSSIP_GENERATED)) == count * len(peers), 120,
                       "every peer to make its messages")
    late = {(event.node, event.fields["msg"]) for event in network.events(logformat.GOSSIP_GENERATED)
            if event.timestamp > after}
    assert {origin for origin, _ in late} == {peer.address for peer in peers}  # everyone gossiped after

    def every_late_message_everywhere() -> bool:
        receipts = network.receipts()
        return all(receipts[peer.address][message] == 1 for message in late for peer in peers
                   if peer.address != message[0])

    network.wait_until(every_late_message_everywhere, 60, "every message made after the restart at every peer")


@pytest.mark.parametrize("case", ["text", "foreign", "damaged", "other-seed", "directory", "no-directory",
                                  "unwritable-directory"])
def test_a_state_file_the_seed_cannot_use_is_a_one_line_error_and_left_as_it_was(tmp_path, case):
    path = tmp_path / "state.sqlite"
    if case == "text":
        path.write_text("127.0.0.1:9001\n")
    elif case == "foreign":
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE notes (text TEXT)")
    elif case in ("damaged", "other-seed"):
        state = SeedState.open(path)
        state.claim(Address("127.0.0.1", 1))
        state.close()
        if case == "damaged":
            path.write_bytes(path.read_bytes()[:-1000])
    elif case == "directory":
        path.mkdir()
    elif case == "no-directory":
        path = tmp_path / "missing" / "state.sqlite"
    else:  # nobody can create a file there, root included
        path = Path("/proc") / f"gossipnet-test-{os.getpid()}.sqlite"
    before = path.read_bytes() if path.is_file() else None
    log = tmp_path / "log.txt"
    done = subprocess.run(script("seed.py", "127.0.0.1", "0", "--state", str(path), "--log", str(log), "--quiet"),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    line = one_line_error(done.stderr)
    assert line.startswith("seed: error: ") and str(path) in line, line
    assert (path.read_bytes() if path.is_file() else None) == before  # nothing reset
    assert not started(log)


def test_without_a_state_file_the_seed_says_it_keeps_its_state_in_memory(network):
    [seed] = network.start_seeds(1)
    [line] = started(network.log_path).values()
    assert line.fields["state"] == "memory" and "restored_peers" not in line.fields


def test_runner_gives_each_seed_a_state_file_in_the_run_folder_unless_told_not_to(tmp_path):
    ports = free_ports(2)
    config = write_config(tmp_path, ports)
    log = tmp_path / "outputfile.txt"
    folder = tmp_path / "states"
    files = {port: state_file(folder, Address("127.0.0.1", port)) for port in ports}
    for flags, expected in ((["--state-dir", str(folder)], {port: str(path) for port, path in files.items()}),
                            (["--no-state", "--append"], dict.fromkeys(ports, "memory"))):
        runner = None
        try:
            before = len(started(log))
            runner = subprocess.Popen(script("runner.py", "--fast", "--config", str(config), "--log", str(log),
                                             *flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      cwd=tmp_path)
            wait_until(lambda before=before, runner=runner: len(started(log)) == before + 2
                       or runner.poll() is not None, 30, "the seeds")
            assert runner.poll() is None, runner.communicate()
            lines = list(started(log).values())[before:]
            assert {line.node.port: line.fields["state"] for line in lines} == expected
            runner.send_signal(signal.SIGINT)
            assert runner.wait(timeout=30) == 0
        finally:
            cleanup(runner, log)
    assert {path.name for path in folder.iterdir()} == {path.name for path in files.values()}
    # By default the folder is next to the log.
    assert default_state_dir(tmp_path / "runs" / "outputfile.txt") == tmp_path / "runs" / "outputfile.state"
