"""bench.py end to end on a tiny network, and the cost figures it derives from a log.

No timing thresholds: the machine's speed is what the bench measures, not
what the tests check.  What is checked is that the table and the JSON are
well formed and carry the figures, and that the copies derived from the
forwarding rule match what the kernel saw cross the links.
"""

from __future__ import annotations

import json
import re
import subprocess

from gossipnet.logs import logformat, runlog
from gossipnet.protocol.wire import Address
from gossipnet.run import launch

COLUMNS = 8


def cells(row: str) -> list[str]:
    """A Markdown table row's cells (escaped pipes stay inside their cell)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_bench_prints_a_table_and_writes_json_for_floor_and_dissemination(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([*launch.module_command("gossipnet.bench"), "--only", "floor,dissemination",
                           "--sizes", "5", "--json", str(out)], env=launch.module_env(),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[bench" in done.stderr  # progress goes to stderr, the table to stdout

    rows = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert cells(rows[0])[:4] == ["#", "Figure", "Setting", "Result"]
    assert set(rows[1]) <= set("|-")
    assert all(len(cells(row)) == COLUMNS for row in rows)
    figures = {cells(row)[1] for row in rows[2:]}
    assert {"One-hop floor", "Dissemination N=5", "Cost per message N=5"} <= figures
    assert not any("error:" in row for row in rows), done.stdout

    report = json.loads(out.read_text())
    assert report["mode"] == "full"
    assert {"nproc", "cpu", "python"} <= report["machine"].keys()
    assert len(report["load_average"]["start"]) == 3
    assert report["table"] in done.stdout
    sections = report["sections"]
    assert set(sections) == {"floor", "dissemination", "cost"}
    assert sections["floor"]["one_way_s"] > 0
    [spread] = sections["dissemination"]
    assert spread["peers"] == 5 and spread["messages"] == 5 * report["plan"]["messages"]  # the most a peer makes
    assert spread["delivery"] == 1.0
    assert {"median", "p99"} <= spread["time_s"].keys() and {"median", "p99"} <= spread["ratio"].keys()
    assert spread["floor_s"]["median"] == spread["eccentricity"]["median"] * spread["one_hop_s"]
    [cost] = sections["cost"]
    # A connected overlay with no link change: the rule's count is exact, and the kernel agrees.
    assert cost["derived_mean"] == cost["rule_per_message"] == 2 * cost["links"] - 4
    assert cost["measured_bytes"] == cost["derived_bytes"]
    assert cost["duplicates_logged"] == 0 and cost["catch_up_copies"] == 0


def _log(*lines: str) -> runlog.Run:
    stamp = "2026-11-24T00:00:{:0>2}.000000Z peer 127.0.0.1:{} "
    return runlog.Run([logformat.parse_line(stamp.format(second, port) + rest, number)
                       for number, (second, port, rest) in enumerate((line.split(" ", 2) for line in lines), 1)])


def test_forwarded_and_catch_up_copies_follow_each_peers_links_at_the_time():
    # 1 - 2 - 3 in a line; 1 makes a message, 2 and 3 pass it on; then 3 links to 1 and replays.
    message = "msg=1795000000.000000:127.0.0.1:1"
    run = _log(
        "1 9001 LINK_OPENED neighbour=127.0.0.1:9002 initiator=127.0.0.1:9002",
        "1 9002 LINK_OPENED neighbour=127.0.0.1:9001 initiator=127.0.0.1:9002",
        "1 9002 LINK_OPENED neighbour=127.0.0.1:9003 initiator=127.0.0.1:9003",
        "1 9003 LINK_OPENED neighbour=127.0.0.1:9002 initiator=127.0.0.1:9003",
        f"2 9001 GOSSIP_GENERATED {message} number=1",
        f"3 9002 GOSSIP_RECEIVED {message} origin=127.0.0.1:9001 from=127.0.0.1:9001",
        f"4 9003 GOSSIP_RECEIVED {message} origin=127.0.0.1:9001 from=127.0.0.1:9002",
        f"5 9003 GOSSIP_RECEIVED {message} origin=127.0.0.1:9001 from=127.0.0.1:9002",  # a logged duplicate
        "6 9003 LINK_OPENED neighbour=127.0.0.1:9001 initiator=127.0.0.1:9003",
        "6 9001 LINK_OPENED neighbour=127.0.0.1:9003 initiator=127.0.0.1:9003",
        "7 9001 LINK_CLOSED neighbour=127.0.0.1:9004 reason=\"cannot connect: refused\"",
    )
    key = (Address("127.0.0.1", 9001), "1795000000.000000:127.0.0.1:1")
    # 9001 sends to 9002 (1), 9002 to 9003 (1, not back to 9001), 9003 to nobody (its only link is the sender).
    assert runlog.forwarded_copies(run) == {key: 2}
    # With authentication, 9001's binding goes ahead of its message once per link a forwarder sends it on:
    # 9002 -> 9003 (9001's own binding went when its link opened; 9003 sends nothing on).
    assert runlog.binding_copies(run) == {key[0]: 1}
    # The late link 9003-9001: each end replays its Message List of one message.
    assert runlog.catch_up_copies(run) == 2


def test_bench_timings_reports_cpu_memory_key_lookups_and_first_against_later(tmp_path):
    # The report's timings: 10 messages 5 s apart, so this takes about a minute whatever the machine.
    out = tmp_path / "bench.json"
    done = subprocess.run([*launch.module_command("gossipnet.bench"), "--only", "timings", "--sizes", "4",
                           "--json", str(out)], env=launch.module_env(), cwd=tmp_path, capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    rows = [cells(line) for line in done.stdout.splitlines() if line.startswith("|")][2:]
    assert {row[1] for row in rows} == {"CPU per delivered message N=4", "Peer memory N=4",
                                        "Key lookups at the seeds N=4", "First message against later N=4"}
    assert not any("error:" in row[3] for row in rows), done.stdout

    [timings] = json.loads(out.read_text())["sections"]["timings"]
    assert timings["delivery"] == 1.0 and timings["delivered"] == 4 * 10 * 3  # each message at the 3 others
    assert timings["messages"] == 40
    assert 0 < timings["startup_cpu_s"] < timings["cpu_s"]
    assert timings["cpu_per_delivery_s"] == timings["cpu_s"] / timings["delivered"]
    # PSS splits shared pages, so it never exceeds RSS; every peer was sampled.
    assert 0 < timings["pss_mib"]["median"] <= timings["rss_mib"]["median"] <= timings["rss_mib"]["max"]
    assert isinstance(timings["key_lookups"], int) and timings["key_lookups"] >= timings["key_lookups_joining"] >= 0
    # Each origin's message 1 against its messages 2-10, all of them timed.
    assert timings["first_message_s"]["median"] is not None and timings["later_messages_s"]["p99"] is not None
    assert timings["first_over_later_p99"] == timings["first_message_s"]["p99"] / timings["later_messages_s"]["p99"]


def test_nodes_started_by_the_launcher_find_the_package_compiled(monkeypatch):
    # Where bytecode is not written (PYTHONDONTWRITEBYTECODE), each node would compile every module it
    # imports; the launcher compiles the package once instead, where Python looks for it.
    import importlib.util
    import sys

    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    launch.compile_package.cache_clear()
    source = launch.ROOT / "gossipnet" / "node" / "peer.py"
    cached = launch.ROOT / importlib.util.cache_from_source(str(source))
    cached.unlink(missing_ok=True)
    launch.module_command("gossipnet.bench")
    assert cached.exists() and cached.stat().st_mtime >= source.stat().st_mtime
