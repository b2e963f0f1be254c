"""The scripts' command lines: help, and one-line errors for user mistakes."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from netharness import ROOT


def run(script: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


@pytest.mark.parametrize("script", ["seed.py", "peer.py"])
def test_help_describes_every_flag(script):
    result = run(script, "--help")
    assert result.returncode == 0
    for flag in ("--config", "--log", "--quiet"):
        assert flag in result.stdout
    if script == "peer.py":
        for flag in ("--gossip-interval", "--gossip-count", "--ping-interval", "--ping-misses",
                     "--degree-model", "--rng-seed"):
            assert flag in result.stdout


@pytest.mark.parametrize("script", ["seed.py", "peer.py"])
def test_malformed_config_names_file_and_line(script, tmp_path):
    config = tmp_path / "config.txt"
    config.write_text("# seeds\n127.0.0.1:8080\n\n127.0.0.1:80800\n")
    result = run(script, "127.0.0.1", "8080", "--config", str(config), "--log", str(tmp_path / "log"))
    assert result.returncode == 2
    assert f"{config}:4:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, words", [
    (["1.2.3", "0"], "not an IPv4 address"),
    (["127.0.0.1", "70000"], "out of range"),
    (["127.0.0.1", "0", "--gossip-interval", "0"], "must be a positive number"),
    (["127.0.0.1", "0", "--ping-misses", "zero"], "whole number"),
    (["127.0.0.1", "0", "--degree-model", "scale-free"], "invalid choice"),
])
def test_bad_arguments_are_one_line_errors(args, words):
    result = run("peer.py", *args)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("script", ["seed.py", "peer.py"])
def test_taken_port_is_a_clear_error(script, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.txt"
        config.write_text(f"127.0.0.1:{port}\n")
        result = run(script, "127.0.0.1", str(port), "--config", str(config), "--log", str(tmp_path / "log"))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_log_is_a_clear_error(tmp_path):
    result = run("seed.py", "127.0.0.1", "0", "--log", str(tmp_path / "missing-dir" / "log.txt"))
    assert result.returncode == 1
    assert "cannot open log" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["grader.py"], ["visualizer.py", "--text-only"]])
def test_a_reader_that_goes_away_ends_the_script_quietly(command, tmp_path):
    # `python grader.py LOG | head`: the pipe closes before the script writes; like any Unix
    # tool it ends with the SIGPIPE status and no traceback.
    from synthlog import Scenario, synthesize

    log = synthesize(Scenario(peers=6, edges=[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)])).write(tmp_path / "log.txt")
    process = subprocess.Popen([sys.executable, str(ROOT / command[0]), str(log), *command[1:]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    process.stdout.close()  # the reader is gone before the script has written a byte
    try:
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 141, err
    assert "Traceback" not in err and "error" not in err
