"""grader.py: a clean run passes every rule; one planted defect fails exactly its rule, at its line.

Defects are planted into copies of a synthetic log (tests/synthlog.py), whose
facts are known; one real run of processes checks that what the nodes
actually write passes.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import grader
from gossipnet.grading import rules as grading
from gossipnet.logs import logformat
from gossipnet.protocol import topology
from gossipnet.protocol.wire import Address
from netharness import ROOT
from synthlog import Scenario, peer_address, synthesize

COUNT, INTERVAL, PING, MISSES = 3, 0.2, 0.5, 3
VICTIM = 3  # the synthetic run's dead peer


def scenario(**changes) -> Scenario:
    settings = dict(peers=10, edges=topology.grow(10, topology.PREFERENTIAL, random.Random(4)), seeds=3,
                    messages_per_peer=COUNT, gossip_interval=INTERVAL, ping_interval=PING, ping_misses=MISSES,
                    dead=(VICTIM,), peer_lists=True)
    settings.update(changes)
    return Scenario(**settings)


@pytest.fixture(scope="module")
def clean() -> list[str]:
    return synthesize(scenario()).lines


def failing(path: Path, **overrides) -> dict[int, grading.Verdict]:
    _, verdicts = grading.grade([str(path)], overrides)
    return {verdict.number: verdict for verdict in verdicts if not verdict.passed}


def write(tmp_path: Path, lines: list[str], name: str = "planted.txt") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


def find(lines: list[str], event: str, node: Address | None = None, last: bool = False, **fields: str) -> int:
    """Index of the first (or last) line of ``event`` by ``node`` whose fields include ``fields``."""
    order = range(len(lines) - 1, -1, -1) if last else range(len(lines))
    for index in order:
        parsed = logformat.parse_line(lines[index], index + 1)
        if (parsed.event == event and (node is None or parsed.node == node)
                and all(parsed.fields.get(key) == value for key, value in fields.items())):
            return index
    raise LookupError(f"no {event} line for {node} {fields}")


def fields_of(line: str) -> dict[str, str]:
    return logformat.parse_line(line).fields


def with_fields(line: str, **changes: str) -> str:
    """The same line with some fields replaced (in place, other fields untouched)."""
    event = logformat.parse_line(line)
    fields = {**event.fields, **changes}
    return f"{line.split(' ', 4)[0]} {event.role} {event.node} {event.event} {logformat.format_fields(fields)}"


def with_time(line: str, timestamp: float) -> str:
    return f"{logformat.format_time(timestamp)} {line.split(' ', 1)[1]}"


def neighbours(lines: list[str], peer: Address) -> set[Address]:
    found = set()
    for index, text in enumerate(lines):
        event = logformat.parse_line(text, index + 1)
        if event.event == logformat.LINK_OPENED and event.node == peer:
            found.add(event.address("neighbour"))
    return found


LIVE = peer_address(5)  # a live peer of the synthetic run


# --- Clean runs -----------------------------------------------------------------------------


def test_a_clean_synthetic_run_passes_every_rule(tmp_path, clean):
    graded, verdicts = grading.grade([str(write(tmp_path, clean))])
    assert [verdict.number for verdict in verdicts if not verdict.passed] == []
    assert len(verdicts) == 8
    assert graded.dead == {peer_address(VICTIM)}
    assert "1 dead peer" in verdicts[6].detail
    assert "power law P(k) ~ k^-" in verdicts[5].detail or "no power-law fit" in verdicts[5].detail


def test_one_file_per_node_is_one_run_and_names_files(tmp_path, clean):
    by_node: dict[str, list[str]] = {}
    for line in clean:
        by_node.setdefault(line.split(" ")[2].replace(":", "-"), []).append(line)
    paths = [write(tmp_path, lines, f"{node}.log") for node, lines in sorted(by_node.items())]
    _, verdicts = grading.grade([str(path) for path in paths])
    assert all(verdict.passed for verdict in verdicts)

    planted = by_node[str(LIVE).replace(":", "-")]
    index = find(planted, logformat.GOSSIP_RECEIVED)
    planted.insert(index + 1, planted[index])
    path = write(tmp_path, planted, f"{str(LIVE).replace(':', '-')}.log")
    graded, verdicts = grading.grade([str(path) for path in paths])
    assert [verdict.number for verdict in verdicts if not verdict.passed] == [4]
    offence = verdicts[3].offences[0]
    assert graded.where([offence.lines[-1]]) == f"{path}:{index + 2}"


def test_a_peer_that_died_before_its_last_message_is_exempt_from_the_count(tmp_path, clean):
    victim = peer_address(VICTIM)
    cut = fields_of(clean[find(clean, logformat.GOSSIP_GENERATED, victim, number=str(COUNT))])["msg"]
    died = float(cut.split(":")[0])
    kept = [line for line in clean if logformat.parse_line(line).node != victim
            or logformat.parse_line(line).timestamp < died]
    assert sum(f" peer {victim} {logformat.GOSSIP_GENERATED} " in line for line in kept) == COUNT - 1
    assert failing(write(tmp_path, kept)) == {}


# --- One planted defect, one failing rule ---------------------------------------------------------


def test_malformed_line_fails_format_only(tmp_path, clean):
    lines = list(clean)
    lines.insert(40, "2026-13-99 garbage that is not a log line")
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [1]
    assert [offence.lines for offence in failed[1].offences] == [(41,)]


def test_dead_node_text_naming_another_reporter_fails_format_only(tmp_path, clean):
    lines = list(clean)
    index = find(lines, logformat.DEAD_NODE_REPORTED)
    text = fields_of(lines[index])["msg"]
    lines[index] = with_fields(lines[index], msg=text.rsplit(":", 1)[0] + ":10.0.0.9")
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [1]
    assert failed[1].offences[0].lines == (index + 1,)
    assert "reporter IP" in failed[1].offences[0].reason


def test_peer_with_one_seed_fails_registration_only(tmp_path, clean):
    lines = list(clean)
    second = find(lines, logformat.REGISTERED, LIVE, last=True)
    seed = fields_of(lines[second])["seed"]
    del lines[find(lines, logformat.PEER_LIST, LIVE, seed=seed)]
    del lines[second]
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [2]
    (offence,) = failed[2].offences
    assert offence.node == LIVE
    assert offence.lines == (find(lines, logformat.REGISTERED, LIVE) + 1,)
    assert "registered with 1 of 3 seeds" in offence.reason


def test_missing_peer_list_fails_registration_only(tmp_path, clean):
    lines = list(clean)
    index = find(lines, logformat.PEER_LIST, LIVE)
    registered = find(lines, logformat.REGISTERED, LIVE, seed=fields_of(lines[index])["seed"])
    del lines[index]
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [2]
    assert [offence.lines for offence in failed[2].offences] == [(registered + 1,)]


def test_wrong_message_count_fails_generation_only(tmp_path, clean):
    lines = list(clean)
    del lines[find(lines, logformat.GOSSIP_GENERATED, LIVE, number=str(COUNT))]
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [3]
    (offence,) = failed[3].offences
    assert offence.node == LIVE
    assert offence.lines == (find(lines, logformat.GOSSIP_GENERATED, LIVE, number=str(COUNT - 1)) + 1,)


def test_messages_too_close_together_fail_generation_only(tmp_path, clean):
    first = fields_of(clean[find(clean, logformat.GOSSIP_GENERATED, LIVE, number="1")])["msg"]
    second = fields_of(clean[find(clean, logformat.GOSSIP_GENERATED, LIVE, number="2")])["msg"]
    hurried = f"{float(first.split(':')[0]) + INTERVAL / 4:.6f}:{LIVE.ip}:2"
    lines = [line.replace(f"msg={second} ", f"msg={hurried} ") for line in clean]  # everywhere it travels
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [3]
    (offence,) = failed[3].offences
    assert offence.lines == (find(lines, logformat.GOSSIP_GENERATED, LIVE, number="1") + 1,
                             find(lines, logformat.GOSSIP_GENERATED, LIVE, number="2") + 1)
    assert "apart" in offence.reason


def test_message_number_that_disagrees_with_its_text_fails_format_and_order(tmp_path, clean):
    lines = list(clean)
    index = find(lines, logformat.GOSSIP_GENERATED, LIVE, number="2")
    lines[index] = with_fields(lines[index], number="3")
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [1, 3]
    assert failed[1].offences[0].lines == failed[3].offences[0].lines == (index + 1,)


def test_duplicate_receipt_fails_duplicates_only(tmp_path, clean):
    lines = list(clean)
    index = find(lines, logformat.GOSSIP_RECEIVED, LIVE)
    lines.insert(index + 1, lines[index])
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [4]
    (offence,) = failed[4].offences
    assert (offence.node, offence.lines) == (LIVE, (index + 1, index + 2))


def test_missing_message_fails_delivery_only(tmp_path, clean):
    lines = list(clean)
    index = find(lines, logformat.GOSSIP_RECEIVED, LIVE)
    received = fields_of(lines[index])
    generated = find(lines, logformat.GOSSIP_GENERATED, Address.parse(received["origin"]), msg=received["msg"])
    del lines[index]
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [5]
    (offence,) = failed[5].offences
    assert (offence.node, offence.lines) == (LIVE, (generated + 1,))
    assert "never received 1 message" in offence.reason


def test_receipt_from_a_non_neighbour_fails_delivery_only(tmp_path, clean):
    lines = list(clean)
    index = find(lines, logformat.GOSSIP_RECEIVED, LIVE)
    stranger = next(peer_address(i) for i in range(10)
                    if peer_address(i) not in neighbours(clean, LIVE) | {LIVE, peer_address(VICTIM)})
    lines[index] = with_fields(lines[index], **{"from": str(stranger)})
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [5]
    (offence,) = failed[5].offences
    assert (offence.node, offence.lines) == (LIVE, (index + 1,))
    assert str(stranger) in offence.reason


def test_disconnected_overlay_fails_overlay_only(tmp_path):
    big = topology.grow(6, topology.PREFERENTIAL, random.Random(1))
    small = [(a + 6, b + 6) for a, b in topology.grow(4, topology.PREFERENTIAL, random.Random(2))]
    lines = synthesize(scenario(edges=big + small)).lines
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [6]
    cut_off = {offence.node: offence.lines for offence in failed[6].offences}
    assert cut_off == {peer_address(i): (find(lines, logformat.STARTED, peer_address(i)) + 1,) for i in range(6, 10)}


def test_false_dead_report_fails_reports_only(tmp_path, clean):
    lines = list(clean)
    accuser = next(iter(neighbours(clean, LIVE) - {peer_address(VICTIM)}))
    index = find(lines, logformat.GOSSIP_RECEIVED, LIVE) + 1
    at = logformat.parse_line(lines[index - 1]).timestamp
    text = f"Dead Node:{LIVE.ip}:{LIVE.port}:{at:.6f}:{accuser.ip}"
    lines.insert(index, f"{logformat.format_time(at)} peer {accuser} {logformat.DEAD_NODE_REPORTED} "
                        + logformat.format_fields({"dead": LIVE, "msg": text}))
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [7]
    (offence,) = failed[7].offences
    assert offence.node == accuser and offence.lines[0] == index + 1
    assert "logged" in offence.reason and "after the report" in offence.reason


def test_early_dead_report_fails_reports_only(tmp_path, clean):
    lines = list(clean)
    victim = peer_address(VICTIM)
    last_line = max(i for i, line in enumerate(lines) if logformat.parse_line(line).node == victim)
    index = find(lines, logformat.DEAD_NODE_REPORTED, dead=str(victim))
    early = logformat.parse_line(lines[last_line]).timestamp + 0.3 * MISSES * PING
    lines[index] = with_time(lines[index], early)
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [7]
    (offence,) = failed[7].offences
    assert offence.node == logformat.parse_line(lines[index]).node
    assert offence.lines == (index + 1, last_line + 1)
    assert "after its last line" in offence.reason


def test_silence_before_a_clean_stop_counts_from_the_line_before_stopped(tmp_path, clean):
    # A stopping peer writes STOPPED after it stops answering: a report soon after STOPPED is not early.
    lines = list(clean)
    victim = peer_address(VICTIM)
    report = logformat.parse_line(lines[find(lines, logformat.DEAD_NODE_REPORTED, dead=str(victim))])
    lines.append(f"{logformat.format_time(report.timestamp - 0.1)} peer {victim} {logformat.STOPPED}")
    assert failing(write(tmp_path, lines)) == {}


def test_seed_that_keeps_a_dead_peer_fails_reports_and_peer_lists(tmp_path, clean):
    lines = list(clean)
    victim = peer_address(VICTIM)
    index = find(lines, logformat.PL_REMOVED, peer=str(victim))
    seed = logformat.parse_line(lines[index]).node
    del lines[index]
    stopped = find(lines, logformat.STOPPED, seed)  # the seed lives on, long enough to have decided
    lines[stopped] = with_time(lines[stopped], logformat.parse_line(lines[stopped]).timestamp + 5)
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [7, 8]
    assert {offence.node for offence in failed[7].offences} == {seed}
    assert {offence.node for offence in failed[8].offences} == {seed}


@pytest.mark.parametrize("event, peer", [(logformat.PL_REMOVED, LIVE), (logformat.PL_ADDED, Address("127.0.0.1", 1))])
def test_seed_that_drops_a_live_peer_or_holds_a_stranger_fails_peer_lists_only(tmp_path, clean, event, peer):
    lines = list(clean)
    registered = find(lines, logformat.REGISTERED, LIVE)
    seed = fields_of(lines[registered])["seed"]
    index = find(lines, logformat.GOSSIP_GENERATED, LIVE)
    at = logformat.parse_line(lines[index]).timestamp
    lines.insert(index, f"{logformat.format_time(at)} seed {seed} {event} peer={peer} size=1")
    failed = failing(write(tmp_path, lines))
    assert list(failed) == [8]
    (offence,) = failed[8].offences
    assert (str(offence.node), offence.lines) == (seed, (index + 1,))


def test_settings_come_from_flags_when_no_started_line_gives_them(tmp_path, clean):
    lines = [line for line in clean if not (" peer " in line and f" {logformat.STARTED} " in line)]
    path = write(tmp_path, lines)
    with pytest.raises(grading.UsageError, match="--gossip-count"):
        grading.grade([str(path)])
    flags = {"gossip_count": COUNT, "gossip_interval": INTERVAL, "ping_interval": PING, "ping_misses": MISSES}
    assert failing(path, **flags) == {}
    assert list(failing(path, **{**flags, "gossip_count": COUNT + 1})) == [3]


# --- Nothing to check is not a pass ----------------------------------------------------------------
# Before, rules 2-8 passed on a log with no peers ("no peers", "0 messages created"): a pass on no evidence.


def test_a_log_with_no_peers_checks_only_the_format(tmp_path, clean):
    seeds_only = [line for line in clean if " seed " in line and (" STARTED " in line or line.endswith(" STOPPED"))]
    _, verdicts = grading.grade([str(write(tmp_path, seeds_only))])
    assert [verdict.status for verdict in verdicts] == ["pass"] + ["not checked"] * 7
    assert [verdict.checked for verdict in verdicts][1:] == [0] * 7
    assert not any(verdict.passed for verdict in verdicts[1:])


def test_a_run_where_nobody_died_leaves_the_reports_rule_not_checked(tmp_path, capsys):
    lines = synthesize(scenario(dead=())).lines
    path = write(tmp_path, lines)
    _, verdicts = grading.grade([str(path)])
    assert {verdict.number: verdict.status for verdict in verdicts if verdict.status != "pass"} == {7: "not checked"}
    assert grader.main([str(path), "--json"]) == 0  # something was checked and nothing failed
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["format"] == "project" and report["verdict"]["not checked"] == 1
    assert [(rule["status"], rule["passed"]) for rule in report["rules"]][6] == ("not checked", False)
    assert report["lines"] == report["lines_understood"] == len(lines)
    assert len(report["messages"]) == 10 * COUNT and report["dead_node_texts"] == []
    assert {node["role"] for node in report["nodes"]} == {"seed", "peer"} and len(report["nodes"]) == 13


def test_each_rule_counts_what_it_checked(clean, tmp_path):
    _, verdicts = grading.grade([str(write(tmp_path, clean))])
    checked = {verdict.number: verdict.checked for verdict in verdicts}
    assert checked[1] == len(clean) and checked[2] == checked[6] == 10
    assert checked[4] == sum(" GOSSIP_RECEIVED " in line for line in clean)
    assert checked[7] == sum(" DEAD_NODE_REPORTED " in line for line in clean)


# --- The command line -----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "grader.py"), *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_missing_file_is_a_usage_error(tmp_path):
    result = run_cli(str(tmp_path / "nothing-here.txt"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "grader: error: cannot read" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_text_report_names_rule_node_and_line(tmp_path, clean, capsys):
    lines = list(clean)
    index = find(lines, logformat.GOSSIP_RECEIVED, LIVE)
    lines.insert(index + 1, lines[index])
    assert grader.main([str(write(tmp_path, lines))]) == 1
    out = capsys.readouterr().out.splitlines()
    states = [line.split(" ")[:2] for line in out if line.startswith(("PASS", "FAIL"))]
    assert states == [["PASS", "1"], ["PASS", "2"], ["PASS", "3"], ["FAIL", "4"], ["PASS", "5"], ["PASS", "6"],
                      ["PASS", "7"], ["PASS", "8"]]
    assert f"    {LIVE} [line {index + 1}, line {index + 2}]: received" in "\n".join(out)


# --- A real run -----------------------------------------------------------------------------------


def test_a_real_run_passes_every_rule(network):
    network.start_seeds(3)
    peers = network.start_peers(6, "--gossip-interval", "0.2", "--gossip-count", "10",
                                "--ping-interval", str(PING), "--ping-misses", str(MISSES))
    network.wait_until(lambda: network.all_delivered(peers, 10), 60, "every message at every peer")
    victim = peers[-1]
    holders = {event.address("seed") for event in network.events(logformat.REGISTERED, victim.address)}

    def removed_by() -> set[Address]:
        return {event.node for event in network.events(logformat.PL_REMOVED)
                if event.address("peer") == victim.address}

    network.kill(victim, signal.SIGKILL)
    network.wait_until(lambda: removed_by() == holders, MISSES * PING + 30, "the seeds holding it to remove it")
    network.close()

    result = run_cli(str(network.log_path), "--json")
    report = json.loads(result.stdout)
    failures = [(rule["rule"], rule["name"], rule["offences"]) for rule in report["rules"] if not rule["passed"]]
    assert (result.returncode, failures) == (0, [])
    assert report["passed"] and report["dead"] == 1 and report["live"] == 5
    assert report["settings"] == {"seeds": 3, "gossip_count": 10, "gossip_interval": 0.2, "ping_interval": PING,
                                  "ping_misses": MISSES}
