"""runner.py and PeerRunner.py as a user runs them: subprocesses, a verdict, nothing left behind.

Seeds listen on ports taken free from the system just before (several bound
at once, so they differ); peers on port 0.  Every test waits on the log or the
scripts' exit with a deadline, and kills whatever is left in a ``finally``.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import pytest

from gossipnet.logs import logformat
from gossipnet.protocol.wire import Address
from gossipnet.run import seeds as runner_seeds
from scripted import (
    assert_all_stopped,
    cleanup,
    events,
    free_ports,
    node_alive,
    one_line_error,
    run,
    script,
    started,
    wait_until,
    write_config,
)


def test_one_command_run_ends_with_a_passing_verdict(tmp_path):
    config = write_config(tmp_path, free_ports(3))
    log = tmp_path / "outputfile.txt"
    log.write_text("a line from an earlier run, which a new run drops\n")
    result = run("runner.py", "--peers", "6", "--fast", "--kill", "0", "--config", str(config),
                 "--log", str(log), cwd=tmp_path, log=log)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verdict: PASS" in result.stdout and "\r" not in result.stdout  # plain lines off a terminal
    assert "earlier run" not in log.read_text()
    report = json.loads((tmp_path / "outputfile.summary.json").read_text())
    summary = report["summary"]
    assert report["passed"] and report["outcome"] == "complete" and report["kills"] == []
    assert summary["peers"] == 6 and summary["seeds"] == 3
    assert summary["delivered"] == summary["expected"] == 6 * 5 * 10
    assert summary["duplicates"] == summary["false_reports"] == 0
    assert summary["messages_disseminated"] == 60 and summary["degree_min"] >= 1
    assert_all_stopped(log, 9)


def test_peer_runner_kills_a_peer_and_reports_its_detection(tmp_path):
    config = write_config(tmp_path, free_ports(3))
    log = tmp_path / "outputfile.txt"
    seeds = None
    try:
        seeds = subprocess.Popen(script("runner.py", "--fast", "--config", str(config), "--log", str(log)),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        wait_until(lambda: len(started(log)) == 3 or seeds.poll() is not None, 30, "the seeds to start")
        assert seeds.poll() is None, seeds.communicate()
        result = run("PeerRunner.py", "-n", "6", "--fast", "--kill", "1", "--config", str(config),
                     "--log", str(log), "--summary", str(tmp_path / "summary.json"), cwd=tmp_path, log=log)
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads((tmp_path / "summary.json").read_text())
        [kill] = report["kills"]
        assert f"killed {kill['peer']}" in result.stdout and "Verdict: PASS" in result.stdout
        interval, misses = 1.3, 3
        # [misses, misses + 1) intervals after the death, less up to one interval when the kill
        # lands between a request and its reply; generous above for a loaded machine.
        assert (misses - 1) * interval <= kill["first_report_s"] <= (misses + 1) * interval + 10, kill
        assert kill["first_report_s"] <= kill["last_removal_s"] <= kill["first_report_s"] + 10, kill
        assert len(kill["held_by"]) >= 2 and kill["removed_by"] == kill["held_by"] and kill["reporters"]
        assert report["summary"]["false_reports"] == 0 and report["summary"]["live_peers"] == 5
        assert not node_alive(kill["pid"])

        seeds.send_signal(signal.SIGINT)  # Ctrl-C on the seeds-only runner
        out, err = seeds.communicate(timeout=30)
        assert seeds.returncode == 0, out + err
        assert "Traceback" not in err
        # 3 seeds and 5 peers logged STOPPED; the killed peer could not.
        nodes = started(log)
        assert len(nodes) == 9 and not [pid for pid in nodes if node_alive(pid)]
        stopped = {event.node for event in events(log, logformat.STOPPED)}
        assert {event.node for event in nodes.values()} - stopped == {Address.parse(kill["peer"])}
    finally:
        cleanup(seeds, log)


def test_ctrl_c_stops_every_seed_and_peer(tmp_path):
    config = write_config(tmp_path, free_ports(2))
    log = tmp_path / "outputfile.txt"
    runner = None
    try:
        # Slow gossip: the run is far from complete when it is interrupted.
        runner = subprocess.Popen(script("runner.py", "--peers", "4", "--fast", "--gossip-interval", "5",
                                         "--config", str(config), "--log", str(log)),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        wait_until(lambda: len(events(log, logformat.GOSSIP_GENERATED)) >= 4 or runner.poll() is not None,
                   60, "every peer to join")
        assert runner.poll() is None, runner.communicate()
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=60)
    finally:
        cleanup(runner, log)
    assert runner.returncode == 130, out + err
    assert "Traceback" not in err
    assert "Summary after" in out and "Verdict: FAIL: interrupted by SIGINT" in out
    assert_all_stopped(log, 6)


# --- Mistakes and their one-line errors --------------------------------------------------------


def test_a_taken_port_is_a_clear_error_and_leaves_nothing_running(tmp_path):
    ports = free_ports(2)
    config = write_config(tmp_path, ports)
    log = tmp_path / "outputfile.txt"
    log.write_text("the log of the run that holds the port\n")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[1]))
        holder.listen()
        refused = run("runner.py", "--config", str(config), "--log", str(log), cwd=tmp_path, log=log)
        # With --append the seeds are started and the failing one is found by its exit.
        appended = run("runner.py", "--append", "--config", str(config), "--log", str(log), cwd=tmp_path, log=log)
    for result in (refused, appended):
        assert result.returncode == 1
        line = one_line_error(result.stderr)
        assert f"127.0.0.1:{ports[1]}: port {ports[1]} is already in use" in line, line
    # The first refusal touched nothing: the other run's log is as it was until --append.
    assert log.read_text().startswith("the log of the run that holds the port\n")
    [seed] = started(log).values()
    assert seed.node.port == ports[0]
    assert_all_stopped(log, 1)


def test_a_config_without_a_local_seed_is_refused(tmp_path):
    # Documentation addresses (RFC 5737) this host does not have; nothing is sent to them.
    remote = [ip for ip in ("203.0.113.7", "198.51.100.7", "192.0.2.77") if not runner_seeds.is_local(ip)]
    if not remote:
        pytest.skip("this host has every documentation address")
    config = tmp_path / "config.txt"
    config.write_text("".join(f"{ip}:8080\n" for ip in remote))
    log = tmp_path / "log"
    result = run("runner.py", "--config", str(config), "--log", str(log), cwd=tmp_path, log=log)
    assert result.returncode == 2
    assert "names no seed on this host" in one_line_error(result.stderr)
    assert not (tmp_path / "log").exists()


def test_peer_runner_without_running_seeds_says_so(tmp_path):
    config = write_config(tmp_path, free_ports(3))
    result = run("PeerRunner.py", "-n", "2", "--config", str(config), "--log", str(tmp_path / "log"), cwd=tmp_path)
    assert result.returncode == 1
    assert "only 0 of the 3 seeds" in one_line_error(result.stderr)


@pytest.mark.parametrize("name, args, words", [
    ("PeerRunner.py", ["-n", "0"], "whole number >= 1"),
    ("PeerRunner.py", [], "required: -n/--peers"),
    ("PeerRunner.py", ["-n", "3", "--kill", "3"], "at least one of the 3 peers alive"),
    ("PeerRunner.py", ["-n", "2", "--base-port", "65535"], "no room for 2 peers"),
    ("PeerRunner.py", ["-n", "2", "--host", "localhost"], "--host"),
    ("runner.py", ["--kill", "1"], "only makes sense with --peers"),
    ("runner.py", ["--peers", "5", "--timeout", "-1"], "must be a positive number"),
])
def test_bad_command_lines_are_one_line_errors(tmp_path, name, args, words):
    result = run(name, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and words in result.stderr.strip().splitlines()[-1], result.stderr


@pytest.mark.parametrize("name", ["runner.py", "PeerRunner.py"])
def test_help_describes_every_flag(tmp_path, name):
    result = run(name, "--help", cwd=tmp_path)
    assert result.returncode == 0
    for flag in ("--peers", "--config", "--log", "--fast", "--host", "--base-port", "--gossip-interval",
                 "--gossip-count", "--ping-interval", "--ping-misses", "--degree-model", "--kill",
                 "--kill-after", "--timeout", "--summary"):
        assert flag in result.stdout, flag
