"""The benchmark's figures as a Markdown table: each one beside its limit and goal.

bench.py measures; this module only words and formats what it measured (the
report dict that is also written as JSON).  A section that failed shows as a
row with its error.
"""

from __future__ import annotations

COLUMNS = ("#", "Figure", "Setting", "Result", "Limit (same run)", "Ratio", "Goal", "Met")

NOTES = """\
Notes. *floor*: median RTT/2 of ping-pongs of one gossip-sized line between this process and a bare Python
echo process (bench/relay.py), no protocol work. *Dissemination*: creation (the origin's GOSSIP_GENERATED
line) to the last live peer's first receipt (runlog.dissemination_times); peers start gossiping only once all
have joined, each message in its own slot (bench/peer.py delays the first message, nothing else). Times are of
each origin's later messages: its first also waits, at peers that joined before it and are not its neighbours,
for the seeds to tell its key. The floor of a message is its origin's eccentricity in the overlay times the
one-hop floor; the CPU floor is the CPU time all nodes spent per message (/proc/PID/stat over the run, less an
idle network's rate) divided by the cores: the time a message would take if its work ran perfectly parallel.
*Cost*: senders do not log what they send, so copies are derived from the log with the forwarding rule
(runlog.forwarded_copies: each accepting peer's links at that moment, less the sender) and checked against the
kernel's byte counters of every peer-to-peer socket (`ss -ti` bytes_received over the window, divided by the
lines' length; no pings run in the window; the derived bytes include each origin's KEY line, sent once ahead
of its first message over each link, runlog.binding_copies). Flooding to all neighbours but the sender crosses
each tree link once and every other link twice: 2|E| - (N-1) copies. *Throughput*: GOSSIP_RECEIVED lines per
second in the window after a warm-up, every peer making a message every 1 ms; the relay ceiling runs the same
overlay as bare relays (one selectors loop, same line length, dedupe by a set, flood to all but the sender,
new lines only while outputs are below 256 KiB), optionally also writing a log line per receipt. The signature
bound is the cores divided by one auth.verify, timed here: every first receipt needs one. *Scale*: peers
started 20 at a time; delivery is every message at every live peer; with nobody killed every
DEAD_NODE_REPORTED is false; memory is each peer's VmHWM (/proc) before it is stopped. *Detection*: delays run
from the recorded kill time; a neighbour reports after 3 unanswered pings, so between m*I and (m+1)*I after a
death. *Registration*: one client registers the same new stand-in peers at two --no-auth seeds (no key to
prove) in turn, one with a state file, one without, over one connection each, after a warm-up; round trips as
the client times them, the added cost per pair, the seeds' CPU from /proc; the journal's transactions timed
alone in the bench's process. *Report timings*: peers start 20 at a time and begin gossiping once all have
joined, each origin's first message at a random moment of the first 5 s (bench/timings.py); CPU is
/proc/PID/stat of every node, from its start (so start-up counts) to the last receipt, over the first
receipts; RSS and PSS from /proc/PID/smaps_rollup with every message in; key lookups are the seeds'
KEYS_LOOKUP lines; first against later is runlog.dissemination_times by message number."""


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return _us(seconds)
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _us(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e6:.0f} µs"


def _x(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}×"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}/s"


def _met(condition: bool | None) -> str:
    return "n/a" if condition is None else ("yes" if condition else "**no**")


def _error_row(number: str, figure: str, result: dict) -> list[str]:
    return [number, figure, "", f"error: {result['error']}", "", "", "", "n/a"]


def _floor(result: dict) -> list[list[str]]:
    if "error" in result:
        return [_error_row("1", "One-hop floor", result)]
    return [["1", "One-hop floor", f"2 processes, {result['line_bytes']} B lines, {result['rounds']} ping-pongs, "
             f"load {result['load']:.1f}",
             f"{_us(result['one_way_s'])} one way (median; p99 {_us(result['one_way_p99_s'])})", "", "", "", ""]]


def _dissemination(results: list[dict]) -> list[list[str]]:
    rows = []
    for result in results:
        figure = f"Dissemination N={result['peers']}"
        if "error" in result:
            rows.append(_error_row("2", figure, result))
            continue
        time, floor, ratio = result["time_s"], result["floor_s"], result["ratio"]
        first, cpu_floor = result["first_message_time_s"], result["cpu_floor_s"]
        met = ratio["p99"] <= 2 if ratio["p99"] is not None else None
        over_cpu = time["p99"] / cpu_floor if time["p99"] is not None and cpu_floor else None
        rows.append([
            "2", figure,
            f"{result['messages']} msgs, 1 per {result['slot_s']:g} s; |E|={result['links']}; auth; "
            f"load {result['load']:.1f}",
            f"{result['steady_messages']} msgs after each origin's first: median {_ms(time['median'])}, "
            f"p99 {_ms(time['p99'])}; first msgs (key lookup): median {_ms(first['median'])}, "
            f"p99 {_ms(first['p99'])}; delivery {result['delivery']:.2%}; tree depth median "
            f"{result['depth']['median']}",
            f"floor median {_ms(floor['median'])} (eccentricity median {result['eccentricity']['median']}, "
            f"diameter {result['diameter']}, × {_us(result['one_hop_s'])}); CPU floor {_ms(cpu_floor)} "
            f"({_ms(result['cpu_per_message_s'])} CPU/msg ÷ cores)",
            f"p99/floor {_x(result['p99_over_median_floor'], 0)}; per message median "
            f"{_x(ratio['median'], 0)}, p99 {_x(ratio['p99'], 0)}; p99/CPU floor {_x(over_cpu, 1)}",
            "p99 ≤ 2× floor (at N=100)", _met(met)])
    return rows


def _cost(results: list[dict]) -> list[list[str]]:
    rows = []
    for result in results:
        figure = f"Cost per message N={result['peers']}"
        if "error" in result:
            rows.append(_error_row("3", figure, result))
            continue
        links, n, derived = result["links"], result["peers"], result["derived_mean"]
        measured = result["measured_per_message"]
        bytes_ratio = result["measured_bytes"] / result["derived_bytes"] if result["derived_bytes"] else None
        rows.append([
            "3", figure, "same runs as 2",
            f"{derived:.1f} copies/msg derived, {measured:.1f} measured; duplicates logged "
            f"{result['duplicates_logged']}; dropped as duplicates {result['duplicates_dropped_per_message']:.1f}"
            f"/msg; catch-up replays {result['catch_up_copies']}",
            f"|E|={links}, N-1={n - 1}, rule 2|E|-(N-1)={result['rule_per_message']}",
            f"{derived / links:.2f}×|E|, {derived / (n - 1):.2f}×(N-1), {derived / result['rule_per_message']:.3f}"
            f"× rule; measured/derived bytes {_x(bytes_ratio, 3)}",
            "≤ 1.1×|E|", _met(derived <= 1.1 * links)])
    return rows


def _throughput(results: dict) -> list[list[str]]:
    rows = []
    signed = results.get("auth", {})
    relay, relay_log = results.get("relay"), results.get("relay_log")
    if "error" in signed:
        rows.append(_error_row("4", "Throughput", signed))
    elif signed:
        limit, ratio, met = "", "", None
        if relay and "error" not in relay:
            limit = f"bare relays {_rate(relay['deliveries_per_s'])}"
            ratio = _x(signed["deliveries_per_s"] / relay["deliveries_per_s"])
            met = signed["deliveries_per_s"] >= 0.5 * relay["deliveries_per_s"]
            if relay_log and "error" not in relay_log:
                limit += f"; relays + log line {_rate(relay_log['deliveries_per_s'])}"
                ratio += f" ({_x(signed['deliveries_per_s'] / relay_log['deliveries_per_s'])} of relays + log)"
        elif relay:
            limit = f"relay error: {relay['error']}"
        if signed.get("signature_bound_per_s"):
            limit += (f"; signature bound {_rate(signed['signature_bound_per_s'])} (cores ÷ "
                      f"{_us(signed['verify_s'])} per check)")
            ratio += f"; {_x(signed['deliveries_per_s'] / signed['signature_bound_per_s'])} of signature bound"
        rows.append([
            "4", f"Throughput N={signed['peers']}",
            f"every peer 1 msg/ms, auth, {signed['window_s']:g} s window after {signed['warmup_s']:g} s; "
            f"load {signed['load']:.1f}",
            f"{_rate(signed['deliveries_per_s'])} first receipts ({_rate(signed['generated_per_s'])} made; "
            f"{signed['links_closed']} links closed; peak {signed['peak_memory_mib'] or 0:.0f} MiB/peer)",
            limit, ratio, "≥ 0.5", _met(met)])
        if signed.get("signature_bound_per_s"):
            bound = signed["deliveries_per_s"] / signed["signature_bound_per_s"]
            rows.append(["4", "Throughput against the signature bound", "as above",
                         f"{_rate(signed['deliveries_per_s'])} first receipts",
                         f"{_rate(signed['signature_bound_per_s'])} (cores ÷ {_us(signed['verify_s'])} per check)",
                         _x(bound), "≥ 0.75", _met(bound >= 0.75)])
    unsigned = results.get("no_auth")
    if unsigned and "error" in unsigned:
        rows.append(_error_row("7", "Authentication cost", unsigned))
    elif unsigned:
        ratio = _x(signed["deliveries_per_s"] / unsigned["deliveries_per_s"]) if signed.get("deliveries_per_s") \
            else "n/a"
        rows.append([
            "7", "Authentication cost", f"as 4 with --no-auth; load {unsigned['load']:.1f}",
            f"without {_rate(unsigned['deliveries_per_s'])} ({_rate(unsigned['generated_per_s'])} made, "
            f"{unsigned['links_closed']} links closed); with {_rate(signed.get('deliveries_per_s'))}",
            "", f"with/without {ratio}", "", ""])
    return rows


def _scale(results: list[dict]) -> list[list[str]]:
    rows = []
    largest = 0
    for result in results:
        figure = f"Scale N={result['peers']}"
        if "error" in result:
            rows.append(_error_row("5", figure, result))
            continue
        memory = result["memory_mib"]
        largest = result["peers"] if result["ok"] else largest
        note = f"; {result['note']}" if result["note"] else ""
        rows.append([
            "5", figure, f"report timings (5 s, 10 msgs, 13 s pings), auth; startup {result['startup_s']:.0f} s; "
                         f"load {result['load']:.1f}",
            f"delivery {result['delivery']:.2%}, false reports {result['false_reports']}; VmHWM per peer median "
            f"{memory['median']:.1f} MiB, max {memory['max']:.1f} MiB; dissemination p99 "
            f"{_ms(result['dissemination_s']['p99'])}{note}",
            "", "", "N=300, < 30 MB/peer",
            _met(result["ok"] and memory["max"] * 1.048576 < 30)])
    if results:
        tried = max(result["peers"] for result in results)
        met = _met(largest >= 300) if tried >= 300 or largest < tried else f"n/a (tried up to {tried})"
        rows.append(["5", "Largest N that ran", "", f"{largest or 'none'}", "", "", "300", met])
    return rows


def _detection(result: dict) -> list[list[str]]:
    if "error" in result:
        return [_error_row("6", "Detection", result)]
    bound = result["bound_s"]
    report, removal = result["report_s"], result["removal_s"]
    worst = max((value for value in (report["max"], removal["max"]) if value is not None), default=None)
    missing = f"; {'; '.join(result['missing'])}" if result["missing"] else ""
    return [[
        "6", f"Detection N={result['peers']}",
        f"kill -9 {result['kills']} peers; ping {result['ping_interval_s']:g} s × {result['ping_misses']} misses; "
        f"load {result['load']:.1f}",
        f"first report median {_ms(report['median'])}, max {_ms(report['max'])} "
        f"({_x(result['report_over_rule']['max'])} m·I); removed at every holding seed median "
        f"{_ms(removal['median'])}, max {_ms(removal['max'])} ({_x(result['removal_over_rule']['max'])} m·I); "
        f"false reports {result['false_reports']}{missing}",
        f"rule: report {result['rule_s']:g}-{bound:g} s after death (m·I to (m+1)·I)",
        f"max/bound {_x(worst / bound if worst is not None else None)}",
        "≤ 1.2× bound, 0 false", _met(worst is not None and worst <= 1.2 * bound and not result["false_reports"]
                                      and not result["missing"])]]


def _registration(result: dict) -> list[list[str]]:
    if "error" in result:
        return [_error_row("8", "Registration with a state file", result)]
    memory, state, added, journal = result["memory"], result["state"], result["added"], result["journal"]
    return [[
        "8", "Registration with a state file",
        f"{result['registrations']} new peers at each of 2 seeds in turn, after {result['warmup']}; --no-auth; "
        f"load {result['load']:.1f}",
        f"--state: median {_us(state['median_s'])}, p99 {_us(state['p99_s'])}, seed CPU "
        f"{_us(state['seed_cpu_per_registration_s'])}; one journal transaction {_us(journal['registered_s'])} "
        f"(a link {_us(journal['linked_s'])})",
        f"in memory: median {_us(memory['median_s'])}, p99 {_us(memory['p99_s'])}, seed CPU "
        f"{_us(memory['seed_cpu_per_registration_s'])}",
        f"added per registration: median {_us(added['median_s'])}, mean {_us(added['mean_s'])} "
        f"({_x(state['mean_s'] / memory['mean_s'])} the mean)",
        "", ""]]


def _timings(results: list[dict]) -> list[list[str]]:
    rows = []
    for result in results:
        n = result["peers"]
        if "error" in result:
            rows.append(_error_row("9", f"Report timings N={n}", result))
            continue
        note = f"; {result['note']}" if result["note"] else ""
        setting = f"report timings (5 s, 10 msgs, 13 s pings), auth, {result['seeds']} seeds; load {result['load']:.1f}"
        rss, pss = result["rss_mib"], result["pss_mib"]
        first, later = result["first_message_s"], result["later_messages_s"]
        rows += [
            ["9", f"CPU per delivered message N={n}", setting,
             f"{_ms(result['cpu_per_delivery_s'])} all nodes, start to last receipt, per first receipt "
             f"({result['delivered']} receipts, delivery {result['delivery']:.2%}){note}",
             f"gossip alone {_ms(result['gossip_cpu_per_delivery_s'])}; start-up "
             f"{_ms(result['startup_cpu_per_node_s'])} CPU per node", "", "½ of before (at N=100)", "n/a"],
            ["9", f"Peer memory N={n}", "same run, every peer running, all messages in",
             f"RSS median {rss['median']:.1f} MiB, max {rss['max']:.1f} MiB; PSS median {pss['median']:.1f} MiB, "
             f"max {pss['max']:.1f} MiB", "", "", "RSS median ≤ 16 MB",
             _met(rss["median"] is not None and rss["median"] * 1.048576 <= 16)],
            ["9", f"Key lookups at the seeds N={n}", "same run",
             f"{result['key_lookups']} GET_KEYS answered ({result['key_lookups_joining']} while joining)", f"N={n}",
             _x(result["key_lookups"] / n), "≤ N", _met(result["key_lookups"] <= n)],
            ["9", f"First message against later N={n}", "same run; each origin starts at a random moment",
             f"first: median {_ms(first['median'])}, p99 {_ms(first['p99'])}; later: median "
             f"{_ms(later['median'])}, p99 {_ms(later['p99'])}", "later messages' p99",
             f"first/later p99 {_x(result['first_over_later_p99'])}", "≤ 1.5× (at N=50)",
             _met(result["first_over_later_p99"] <= 1.5) if result["first_over_later_p99"] is not None else "n/a"],
        ]
    return rows


def render_table(report: dict) -> str:
    sections = report.get("sections", {})
    rows: list[list[str]] = []
    if "floor" in sections:
        rows += _floor(sections["floor"])
    rows += _dissemination(sections.get("dissemination", []))
    rows += _cost(sections.get("cost", []))
    rows += _throughput(sections.get("throughput", {}))
    rows += _scale(sections.get("scale", []))
    if "detection" in sections:
        rows += _detection(sections["detection"])
    if "registration" in sections:
        rows += _registration(sections["registration"])
    rows += _timings(sections.get("timings", []))
    machine, load = report["machine"], report["load_average"]
    lines = [
        f"Benchmark ({report['mode']}), {report['started']}: {machine['nproc']} CPUs ({machine['cpu']}), "
        f"Python {machine['python']}, {machine['system']}; load average at start "
        f"{' '.join(f'{value:.2f}' for value in load['start'])}, at end "
        f"{' '.join(f'{value:.2f}' for value in load.get('end', ()))}; {report.get('seconds', 0):.0f} s"
        f"{'; INTERRUPTED, figures incomplete' if report.get('interrupted') else ''}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines + ["", NOTES])
