"""What a run of peers amounts to: its summary figures and its verdict.

Every figure comes from :class:`runlog.Run`, the facts every tool shares;
this module adds what only the runner knows (when it killed whom, which
seeds each victim registered with) and decides whether the run passed:
every peer started, every message reached every live peer exactly once,
every killed peer was reported and removed by each seed that held it, no
live peer was reported dead, the log is well formed, and the run finished
before its timeout.  It starts and stops nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from gossipnet.run.peerrun import FAILED, INTERRUPTED, TIMED_OUT, PeerRun


def summarize(peer_run: PeerRun, extra_settings: dict | None = None) -> dict:
    """The summary of a stopped run and its verdict, as plain data (the JSON summary)."""
    run, plan = peer_run.run, peer_run.plan
    summary = run.summary()
    addresses = peer_run.addresses()
    failures = []
    if peer_run.outcome == INTERRUPTED:
        failures.append(f"interrupted by {peer_run.stop_request.name or 'the user'} before the run was complete")
    elif peer_run.outcome == TIMED_OUT:
        failures.append(f"not complete after the --timeout of {plan.timeout:g} s")
    elif peer_run.outcome == FAILED:
        failures.append(peer_run.problem)
    if len(addresses) < plan.peers:
        failures.append(f"only {len(addresses)} of {plan.peers} peers started")
    made = peer_run.made()
    short = [peer for peer in addresses if peer not in peer_run.kills and made[peer] < plan.gossip_count]
    if short:
        failures.append(f"{len(short)} live peers made fewer than {plan.gossip_count} messages")
    if summary.delivered < summary.expected:
        failures.append(f"delivery {100 * summary.delivery:.1f}%: "
                        f"{summary.expected - summary.delivered} receipts missing")
    if summary.duplicates:
        failures.append(f"{summary.duplicates} messages logged as received twice")
    kills = []
    deaths = {death.peer: death for death in run.deaths()}
    for victim, kill in sorted(peer_run.kills.items()):
        death = deaths.get(victim)
        held = sorted(peer_run.registered[victim])
        removed = death.removed if death else {}
        first = death.first_report if death else None
        removed_everywhere = bool(held) and all(seed in removed for seed in held)
        kills.append({
            "peer": str(victim), "pid": kill.pid, "killed_at": kill.time, "degree": kill.degree,
            "first_report_s": None if first is None else round(first - kill.time, 3),
            "reporters": [str(reporter) for reporter in (death.reporters if death else ())],
            "held_by": [str(seed) for seed in held],
            "removed_by": [str(seed) for seed in sorted(removed)],
            "last_removal_s": round(max(removed[seed] for seed in held) - kill.time, 3)
            if removed_everywhere else None,
        })
        if first is None:
            failures.append(f"killed peer {victim} was never reported dead")
        if not removed_everywhere:
            missing = ", ".join(str(seed) for seed in held if seed not in removed) or "(it registered nowhere)"
            failures.append(f"killed peer {victim} not removed by {missing}")
    if summary.false_reports:
        failures.append(f"{summary.false_reports} false dead-node reports (the accused was alive)")
    if run.errors:
        failures.append(f"{len(run.errors)} malformed log lines")
    settings = {"peers": plan.peers, "host": plan.host, "base_port": plan.base_port,
                **asdict(plan.timings), "gossip_count": plan.gossip_count, "ping_misses": plan.ping_misses,
                "liveness": plan.liveness, "degree_model": plan.degree_model, "rng_seed": plan.rng_seed,
                "kill": plan.kill,
                "timeout": plan.timeout, "config": str(plan.config), "log": str(plan.log),
                **(extra_settings or {})}
    return {
        "passed": not failures,
        "outcome": peer_run.outcome,
        "failures": failures,
        "elapsed_s": round(peer_run.elapsed(), 3),
        "settings": settings,
        "summary": {**asdict(summary), "delivery": summary.delivery,
                    "messages_disseminated": len(run.dissemination_times())},
        "kills": kills,
        "nodes": [{"role": node.role, "address": str(node.address) if node.address else None, "pid": node.pid}
                  for node in peer_run.nodes],
        "log_errors": len(run.errors),
    }


def format_report(report: dict, summary_path: Path | None) -> str:
    """The summary table and the verdict, for the console."""
    s = report["summary"]

    def seconds(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f} s"

    rows = [
        ("peers", f"{s['peers']} started, {s['live_peers']} live; {s['seeds']} seeds"),
        ("links", f"{s['links']}; degree min {s['degree_min']}, median {s['degree_median']:g}, "
                  f"max {s['degree_max']}"),
        ("delivery", f"{s['delivered']} of {s['expected']} receipts ({100 * s['delivery']:.1f}%), "
                     f"{s['duplicates']} duplicates"),
        ("dissemination", f"median {seconds(s['dissemination_median'])}, p99 {seconds(s['dissemination_p99'])} "
                          f"over {s['messages_disseminated']} messages"),
    ]
    for kill in report["kills"]:
        first = kill["first_report_s"]
        last = kill["last_removal_s"]
        text = "never reported" if first is None else \
            f"first report after {first:.1f} s ({len(kill['reporters'])} reporter{'s' * (len(kill['reporters']) != 1)})"
        text += f", removed by {len(kill['removed_by'])}/{len(kill['held_by'])} seeds"
        text += "" if last is None else f" after {last:.1f} s"
        rows.append((f"{kill.get('label', 'killed')} {kill['peer']}", text))  # the lab's cuts: 'struck'
    rows.append(("false dead reports", str(s["false_reports"])))
    width = max(len(name) for name, _ in rows)
    lines = [f"Summary after {report['elapsed_s']:.1f} s ({report['outcome']}):"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    if summary_path is not None:
        lines.append(f"  {'written to':<{width}}  {summary_path}")
    if report["passed"]:
        lines.append("Verdict: PASS: every message reached every live peer"
                     + (", every killed peer was reported and removed" if report["kills"] else "")
                     + ", no false reports")
    else:
        lines.append("Verdict: FAIL: " + "; ".join(report["failures"]))
    return "\n".join(lines)


def write_summary(report: dict, path: Path) -> str | None:
    """Write the JSON summary; the reason if it could not be written."""
    try:
        path.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        return f"cannot write the summary {path}: {exc.strerror or exc}"
    return None
