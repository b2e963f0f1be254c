"""grader.py on students' own output files: every shape read, each rule PASS, FAIL or NOT CHECKED as the
files allow, hostile files a verdict or a one-line error.

The files are written here (tests/foreignsamples.py and the lines below); none is copied from a submission.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

import grader
from foreignsamples import WRITERS, Plan
from gossipnet.grading import foreigngrading, gradeinput
from gossipnet.grading import rules as grading
from gossipnet.grading.foreignline import SHAPES, read_line
from netharness import ROOT

COUNT = 3  # messages per peer in the plans
SETTINGS = foreigngrading.Settings(gossip_count=COUNT)
STATUS_OF_A_CLEAN_RUN = {name: dict.fromkeys(range(1, 10), "pass") for name in WRITERS}
# Bare lines in shared files name no node: who received what cannot be judged.
STATUS_OF_A_CLEAN_RUN["bare"].update({6: "not checked", 7: "not checked"})
NAMED = [name for name in WRITERS if name != "bare"]  # shapes whose lines say which node wrote them


def plan(shape: str, **changes) -> Plan:
    return Plan(first_number=0 if shape in ("bracketed", "level-and-tag") else 1, count=COUNT, **changes)


def graded(paths: list[Path], settings: foreigngrading.Settings = SETTINGS) -> dict[int, foreigngrading.Verdict]:
    _, verdicts = foreigngrading.grade(paths, settings)
    return {verdict.number: verdict for verdict in verdicts}


def statuses(verdicts: dict[int, foreigngrading.Verdict]) -> dict[int, str]:
    return {number: verdict.status for number, verdict in verdicts.items()}


def write(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "grader.py"), *args], capture_output=True, text=True,
                          timeout=120)


# --- Reading lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, node, role, clock", [
    ("[2025-02-17 21:31:07] [127.0.0.1:6000] Received new message from ('127.0.0.1', 59273): "
     "1739808067.21:127.0.0.1:0", "127.0.0.1:6000", None, "local"),
    ("2025-02-16 20:31:50,521 - Peer 10.0.0.5:1500 detected dead node: "
     "Dead Node:10.0.0.6:1501:2025-02-16 20:31:50:10.0.0.5", "10.0.0.5:1500", "peer", "local"),
    ("2026-02-26 22:40:43.894 [INFO] [127.0.0.1:6002] [GOSSIP RECEIVED] 1772125843:127.0.0.1:6001:0 | From: "
     "127.0.0.1:6001", "127.0.0.1:6002", None, "local"),
    ("17:05:43 [PEER peer_6002] GOSSIP (first time): '1739700000.5:127.0.0.1:2'  from 127.0.0.1:6001",
     "*:6002", "peer", "day"),
    ("[Peer a] Received Gossip Message: 1739700000.5:127.0.0.1:Msg#2", "a", "peer", None),
    ("1739700000.123456:127.0.0.1:7002:GOSSIP3", None, None, None),
    ("2026-11-23T23:10:34.115092Z peer 127.0.0.1:9003 GOSSIP_RECEIVED msg=1795475434.100912:127.0.0.1:1 "
     "origin=127.0.0.1:9005 from=127.0.0.1:9005", "127.0.0.1:9003", "peer", "epoch"),
])
def test_each_shape_of_line_gives_its_node_time_and_text(text, node, role, clock):
    facts = read_line(text)
    assert (facts.node, facts.role, facts.clock) == (node, role, clock)
    assert facts.understood
    assert all(gossip.problem is None for gossip, _ in facts.gossip)
    assert all(report.problem is None for report in facts.dead)


def test_gossip_variants_are_named():
    def variant(text: str) -> str:
        ((gossip, _),) = read_line(text).gossip
        return gossip.variant

    assert variant("1739700000.5:127.0.0.1:3") == "handout"
    assert variant("1739700000:127.0.0.1:6001:0") == "integer timestamp, origin's port"
    assert variant("1739700000.5:127.0.0.1:GOSSIP3") == "word 'GOSSIP' before the number"
    assert variant("1739700000500:127.0.0.1:3") == "millisecond timestamp"
    assert variant("2025-02-17 21:31:07.25:127.0.0.1:3") == "date-time timestamp"
    ((bad, _),) = read_line("got 1739700000.5:300.1.1.1:3").gossip
    assert "300.1.1.1 is not an IPv4 address" in bad.problem


@pytest.mark.parametrize("text, dead, time, variant", [
    ("Dead Node:127.0.0.1:7002:1739700100.5:127.0.0.1", "127.0.0.1:7002", 1739700100.5, "handout"),
    ("Dead Node:127.0.0.1:7002:1739700100:127.0.0.1", "127.0.0.1:7002", 1739700100.0, "integer timestamp"),
    ("Dead Node:127.0.0.1:7002:2025-02-16 20:31:50:127.0.0.1", "127.0.0.1:7002", 1739737910.0,
     "date-time timestamp"),
    ('{"type": "dead_node", "dead_ip": "127.0.0.1", "dead_port": 7002, "timestamp": 1739700100, '
     '"reporter": "127.0.0.1"}', "127.0.0.1:7002", 1739700100.0, "JSON record"),
    ("{'event': 'DEAD', 'node': '127.0.0.1:7002', 'time': 1739700100.5, 'reported_by': '127.0.0.1'}",
     "127.0.0.1:7002", 1739700100.5, "JSON record"),
])
def test_dead_node_texts_in_every_variant(text, dead, time, variant):
    (report,) = read_line(text).dead
    assert (report.dead, report.reporter_ip, report.time, report.variant, report.problem) == (
        dead, "127.0.0.1", time, variant, None)


def test_a_broken_dead_node_text_says_why():
    (report,) = read_line("Dead Node:localhost:7002:1739700100.5:127.0.0.1").dead
    assert "'localhost' is not an IPv4 address" in report.problem
    (report,) = read_line("sent Dead Node:127.0.0.1").dead
    assert report.problem == "not Dead Node:<IP>:<Port>:<timestamp>:<IP>"


@pytest.mark.parametrize("text, peers, shape", [
    ("Received peer list from seed 127.0.0.1:5000: [{'ip': '127.0.0.1', 'port': 6001}, {'ip': '127.0.0.1', "
     "'port': 6002}]", ["127.0.0.1:6001", "127.0.0.1:6002"], "Python list of dicts"),
    ("Peer list: [('127.0.0.1', 6001)]", ["127.0.0.1:6001"], "Python list of tuples"),
    ('got peer list: {"peers": [{"ip": "127.0.0.1", "port": 6001}]}', ["127.0.0.1:6001"], "JSON"),
    ("Peer list: 127.0.0.1:6001, 127.0.0.1:6002", ["127.0.0.1:6001", "127.0.0.1:6002"], "inline"),
    ("Address: 127.0.0.1:7001, Degree: 0", ["127.0.0.1:7001"], "address and degree lines"),
    ("127.0.0.1:7001", ["127.0.0.1:7001"], "IP:port lines"),
    ("Peer list received: []", [], "empty list"),
])
def test_peer_lists_in_every_shape(text, peers, shape):
    listed = read_line(text).peer_list
    assert (list(listed.peers), listed.shape) == (peers, shape)


def test_no_line_makes_the_reader_raise():
    rng = random.Random(7)
    pieces = ["Dead Node:", "127.0.0.1", ":", "6001", "1739700000.5", "[", "]", "{", "}", "'", '"', "peer list",
              "[Peer a]", "2025-02-17 21:31:07", " ", "\x00", "é", "\ufffd", "GOSSIP", "#", "=", "(", ")", ","]
    for _ in range(5000):
        read_line("".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))))


# --- Whole submissions ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(WRITERS))
def test_a_clean_run_in_each_shape_fails_nothing(tmp_path, shape):
    verdicts = graded(WRITERS[shape](plan(shape), tmp_path))
    assert statuses(verdicts) == STATUS_OF_A_CLEAN_RUN[shape]
    assert verdicts[3].checked == 4 * COUNT  # every distinct gossip text read
    assert verdicts[8].checked >= 1


@pytest.mark.parametrize("shape", NAMED)
def test_a_planted_duplicate_fails_no_duplicates_only(tmp_path, shape):
    run = plan(shape)
    run.repeat(1, 0, run.first_number + 1)
    paths = WRITERS[shape](run, tmp_path)
    submission, verdicts = foreigngrading.grade(paths, SETTINGS)
    failed = {verdict.number: verdict for verdict in verdicts if verdict.status == "fail"}
    assert list(failed) == [6]
    (offence,) = failed[6].offences
    assert len(offence.lines) == 2 and "2 times" in offence.reason
    assert submission.where(offence.lines).count(":") >= 2  # FILE:LINE, FILE:LINE


@pytest.mark.parametrize("shape", NAMED)
def test_a_message_missing_at_one_peer_fails_delivery_only(tmp_path, shape):
    run = plan(shape)
    run.drop(2, 0, run.first_number + 1)
    verdicts = graded(WRITERS[shape](run, tmp_path))
    failed = {number: verdict for number, verdict in verdicts.items() if verdict.status == "fail"}
    assert list(failed) == [7]
    (offence,) = failed[7].offences
    assert "never logged 1 message" in offence.reason
    assert offence.node == {"logging": "10.0.0.3:1500", "no-time": "c", "clock-per-node": "*:6003",
                            "level-and-tag": "127.0.0.1:6003"}.get(shape, "127.0.0.1:6002")


def test_a_console_echo_is_not_a_duplicate(tmp_path):
    paths = WRITERS["no-time"](plan("no-time"), tmp_path)  # every line written twice
    submission, verdicts = foreigngrading.grade(paths, SETTINGS)
    assert verdicts[5].status == "pass"
    assert submission.summaries[0].echoes == submission.summaries[0].lines // 2


def test_files_with_no_gossip_leave_the_gossip_rules_not_checked(tmp_path):
    path = write(tmp_path, "outputfile.txt", [
        "[Seed 127.0.0.1:5000] New connection from 127.0.0.1:6001",
        "[Peer 127.0.0.1:6001] Peer list received: []",
        "[Peer 127.0.0.1:6002] Peer list: 127.0.0.1:6001",
    ])
    verdicts = graded([path])
    assert statuses(verdicts) == {1: "pass", 2: "pass", 3: "not checked", 4: "not checked", 5: "not checked",
                                  6: "not checked", 7: "not checked", 8: "not checked", 9: "pass"}


def test_a_short_count_a_gap_and_a_hurried_message_fail_their_rules(tmp_path):
    lines = [f"[127.0.0.1:600{peer}] received {1739700000 + 5 * step + 0.1 * origin:.1f}:127.0.0.1:600{origin}:"
             f"{step}" for step in range(4) for origin in (1, 2) for peer in (1, 2) if peer != origin]
    lines = [line for line in lines if not line.endswith(":6001:2")]  # origin 6001 skips number 2
    lines = [line.replace("1739700015.2:127.0.0.1:6002:3", "1739700012.2:127.0.0.1:6002:3") for line in lines]
    lines.append("[127.0.0.1:6001] still running at 1739700100.0:127.0.0.1:6002:4 (late)")
    verdicts = graded([write(tmp_path, "out.txt", lines)], foreigngrading.Settings(gossip_count=4))
    assert statuses(verdicts)[4] == "fail" and statuses(verdicts)[5] == "fail"
    reasons = {node: " / ".join(offence.reason for offence in verdicts[4].offences if offence.node == node)
               for node in ("127.0.0.1:6001", "127.0.0.1:6002")}
    assert "number(s) 2 missing" in reasons["127.0.0.1:6001"]
    assert "made 5 messages" in reasons["127.0.0.1:6002"]
    assert any("2.000 s apart" in offence.reason for offence in verdicts[5].offences)


def test_origins_that_cannot_be_told_apart_are_not_judged(tmp_path):
    lines = [f"got {1739700000 + 5 * step + 0.1 * origin:.1f}:127.0.0.1:{step + 1}"  # no port, no node
             for step in range(3) for origin in (1, 2, 3) for peer in (1, 2, 3) if peer != origin]
    verdicts = graded([write(tmp_path, "out.txt", lines)])
    assert verdicts[4].status == "not checked" and verdicts[5].status == "not checked"
    assert "several origins share the IP" in verdicts[4].detail


@pytest.mark.parametrize("lost_at", [(), (1,), (1, 2)])
def test_the_peer_that_never_logged_a_text_is_its_origin(tmp_path, lost_at):
    run = plan("bracketed")
    for peer in lost_at:
        run.drop(peer, 0, 1)
    (path,) = WRITERS["bracketed"](run, tmp_path)
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if "Generated" not in line))
    verdicts = graded([path])
    assert "4 known as the one peer that never logged its texts" in verdicts[4].detail
    assert {number for number, status in statuses(verdicts).items() if status != "pass"} == ({7} if lost_at else set())
    assert sorted(offence.node for offence in verdicts[7].offences) == [f"127.0.0.1:{6000 + peer}" for peer in lost_at]


def test_a_report_with_another_reporter_ip_or_at_no_seed_fails(tmp_path):
    peer = write(tmp_path, "peer_127.0.0.1_6001.txt", ["Peer list: []", "Sending Dead Node:127.0.0.1:6002:"
                                                       "1739700100.5:10.9.9.9", "Sending Dead Node:127.0.0.1:6003:"
                                                       "1739700101.5:127.0.0.1"])
    seed = write(tmp_path, "seed_127.0.0.1_5000.txt", ["Peer 127.0.0.1:6001 registered"])
    verdicts = graded([peer, seed])
    reasons = sorted(offence.reason for offence in verdicts[8].offences)
    assert verdicts[8].status == "fail"
    assert any("the reporter IP is not the IP of 127.0.0.1:6001" in reason for reason in reasons)
    assert any("no seed recorded it" in reason for reason in reasons)


# --- Hostile files ----------------------------------------------------------------------------------


def test_an_empty_file_fails_output_present_and_checks_nothing_else(tmp_path, capsys):
    path = write(tmp_path, "outputfile.txt", [])
    assert grader.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL 1 output present" in out and "is empty" in out
    assert out.count("NOT CHECKED") == 8
    assert "1 fail, 8 not checked" in out


def test_binary_and_mixed_encodings_give_a_verdict(tmp_path, capsys):
    binary = tmp_path / "binary" / "outputfile.txt"
    binary.parent.mkdir()
    binary.write_bytes(bytes(random.Random(3).randrange(256) for _ in range(100_000)))
    mixed = tmp_path / "mixed" / "outputfile.txt"
    mixed.parent.mkdir()
    mixed.write_bytes("[Peer 127.0.0.1:6001] reçu 1739700000.5:127.0.0.1:1\n".encode("latin-1")
                      + "[Peer 127.0.0.1:6002] reçu 1739700000.5:127.0.0.1:1 ✓\n".encode()
                      + b"\xff\xfe[Peer 127.0.0.1:6003] \xe9\x00\n")
    assert grader.main([str(binary.parent), str(mixed.parent)]) == 1
    out = capsys.readouterr().out
    assert "holds NUL bytes" in out
    assert "1739700000.5:127.0.0.1:1" in out


def test_a_one_gigabyte_line_is_cut_and_the_rest_graded(tmp_path, capsys):
    path = tmp_path / "outputfile.txt"
    with open(path, "wb") as handle:  # sparse: the gigabyte of NUL bytes is never written
        handle.write(b"[127.0.0.1:6001] Peer list: []\n")
        handle.seek(handle.tell() + (1 << 30))
        handle.write(b"\n[127.0.0.1:6002] Peer list: 127.0.0.1:6001\n")
    started = time.monotonic()
    assert grader.main([str(path)]) == 1
    assert time.monotonic() - started < 60
    out = capsys.readouterr().out
    assert "1 line(s) over 1,048,576 bytes, cut" in out
    assert "holds NUL bytes: not text output" in out
    assert "PASS 2 peer lists" in out


def test_a_long_text_line_is_cut_and_the_rest_graded(tmp_path, capsys):
    path = tmp_path / "outputfile.txt"
    with open(path, "w") as handle:
        handle.write("[127.0.0.1:6001] Peer list: []\n[127.0.0.1:6001] ")
        for _ in range(64):  # 8 MiB, streamed
            handle.write("x" * (1 << 17))
        handle.write("\n[127.0.0.1:6002] Peer list: 127.0.0.1:6001\n")
    assert grader.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 line(s) over 1,048,576 bytes, cut" in out and "PASS 1 output present" in out


def test_the_command_line_never_shows_a_traceback(tmp_path):
    empty_folder = tmp_path / "nothing"
    empty_folder.mkdir()
    (tmp_path / "garbage.txt").write_bytes(b"\x00\x01\x02" * 1000)
    result = cli(str(empty_folder), str(tmp_path / "garbage.txt"), str(tmp_path / "missing"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "cannot read" in result.stderr
    result = cli(str(empty_folder), str(tmp_path / "garbage.txt"))
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    assert "no output file" in result.stdout and "holds NUL bytes" in result.stdout


# --- The command line -------------------------------------------------------------------------------


def test_a_class_of_folders_gets_one_verdict_each(tmp_path):
    for shape in WRITERS:
        WRITERS[shape](plan(shape), tmp_path / shape)
    broken = plan("bracketed")
    broken.repeat(1, 0, 1)
    WRITERS["bracketed"](broken, tmp_path / "broken")
    (tmp_path / "broken" / "config.txt").write_text("127.0.0.1:5000\n")  # not output: left out
    (tmp_path / "broken" / "README.md").write_text("# Gossip\n")
    folders = [str(tmp_path / name) for name in [*WRITERS, "broken"]]
    result = cli(*folders, "--gossip-count", str(COUNT), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1
    verdicts = {Path(entry["label"]).name: entry["verdict"]["status"] for entry in report["submissions"]}
    assert verdicts == {**dict.fromkeys(WRITERS, "pass"), "broken": "fail"}
    broken_entry = report["submissions"][-1]
    assert broken_entry["files"] == [str(tmp_path / "broken" / "outputfile.txt")]
    text = cli(*folders, "--gossip-count", str(COUNT))
    assert text.stdout.count("\n== ") + text.stdout.startswith("== ") == len(folders)
    assert text.stdout.rstrip().endswith("7 submissions: 6 PASS, 1 FAIL or NOTHING CHECKED, 0 error(s)")


def test_output_files_of_a_folder(tmp_path):
    for name in ("outputfile_peer_6001.txt", "logs/seed.log", "config.txt", "requirements.txt", "notes.md",
                 ".hidden/outputfile.txt", "venv/output.txt", "peer.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    assert [path.relative_to(tmp_path).as_posix() for path in gradeinput.output_files(tmp_path)] == [
        "outputfile_peer_6001.txt", "logs/seed.log"]


def test_json_says_what_was_understood_and_keeps_the_old_keys(tmp_path, capsys):
    paths = WRITERS["clock-per-node"](plan("clock-per-node"), tmp_path)
    assert grader.main([str(tmp_path), "--json", "--gossip-count", str(COUNT)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"files", "lines", "seeds", "peers", "live", "dead", "settings", "passed", "rules"} <= set(report)
    assert report["format"] == "foreign" and report["passed"] is True
    assert report["lines"] == sum(len(path.read_text().splitlines()) for path in paths)
    assert 0 < report["lines_understood"] <= report["lines"]
    assert {node["node"]: node["role"] for node in report["nodes"]} == {
        "*:6001": "peer", "*:6002": "peer", "*:6003": "peer", "*:6004": "peer", "*:5001": "seed", "*:5002": "seed"}
    assert len(report["messages"]) == 4 * COUNT and len(report["dead_node_texts"]) == 1
    assert [(rule["status"], rule["passed"]) for rule in report["rules"]] == [("pass", True)] * 9
    assert all(rule["checked"] > 0 for rule in report["rules"])


def test_explain_says_what_each_rule_needs(tmp_path, capsys):
    path = write(tmp_path, "outputfile.txt", ["[Peer 127.0.0.1:6001] Peer list: []"])
    grader.main([str(path), "--explain"])
    out = capsys.readouterr().out
    assert out.count("    needs: ") == 9
    assert "NOT CHECKED 8 dead-node reports" in out and "a run in which no peer died has none" in out


def test_this_projects_log_is_detected_and_foreign_can_be_forced(tmp_path, capsys):
    from synthlog import Scenario, synthesize

    path = synthesize(Scenario(peers=4, edges=[(0, 1), (1, 2), (2, 3)], messages_per_peer=COUNT, dead=(3,),
                               peer_lists=True)).write(tmp_path / "outputfile.txt")
    assert gradeinput.detect([path])[0] == gradeinput.PROJECT
    assert grader.main([str(path)]) == 0
    assert capsys.readouterr().out.startswith("format: project (")
    assert grader.main([str(path), "--foreign", "--gossip-count", str(COUNT), "--gossip-interval", "0.2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("format: foreign (") and "9 pass, 0 fail, 0 not checked" in out


def test_the_worked_example_in_the_grading_doc_is_what_the_grader_prints(tmp_path, monkeypatch, capsys):
    doc = (ROOT / "docs" / "GRADING.md").read_text(encoding="utf-8")

    def block(marker: str) -> str:
        return doc.split(f"<!-- {marker} -->\n```text\n", 1)[1].split("```", 1)[0]

    run = Plan(peers=3, seeds=1, count=2, first_number=0, dead=2)
    run.drop(1, 0, 1)
    run.repeat(2, 1, 0)
    (path,) = WRITERS["level-and-tag"](run, tmp_path / "submission")
    assert path.read_text() == block("worked-example-file")
    command, *expected = block("worked-example-output").splitlines()
    monkeypatch.chdir(tmp_path)
    assert grader.main(command.split()[3:]) == 1
    assert capsys.readouterr().out.splitlines() == expected


def test_the_grading_doc_lists_every_rule_and_what_it_needs():
    doc = (ROOT / "docs" / "GRADING.md").read_text(encoding="utf-8")
    for number, (name, _) in grading.RULES.items():
        assert f"| {number} | {name} |" in doc
    for number, (name, _) in foreigngrading.RULES.items():
        assert f"| {number} | {name} |" in doc
    for shapes in SHAPES:
        assert f"| {shapes} |" in doc
