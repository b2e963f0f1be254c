"""A multi-host lab: every seed and peer on an address of its own, and faults at chosen times.

    python -m gossipnet.lab --seeds 3 --peers 12 --fast --fault crash:3:30%        # namespaces: needs root
    python -m gossipnet.lab --loopback --peers 8 --fast --fault hang:2:6            # all on 127.0.0.1

Each node runs in its own Linux network namespace, joined by a bridge
(labnet.Namespaces), or, with ``--loopback``, on 127.0.0.1 (labnet.Loopback).
The lab writes the matching config.txt, starts the seeds and the peers
through launch.py, plays the scenario's faults (faults.py) once every peer is
up, follows the log (runlog.LogTail), and stops when every check of
lab/verdict.py holds, or when the log has been quiet for a detection time
after the last fault, or at the timeout.  Whatever happens (a failure,
Ctrl-C, SIGTERM), every process it started is stopped by PID and every
namespace and link it made is removed.  Exit status: 0 every check holds, 1
one does not (or the lab could not run), 2 a bad command line, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from gossipnet.config import DEFAULT_LOG, PeerSettings, SeedSettings, add_peer_arguments, positive_float, positive_int
from gossipnet.lab import net as labnet
from gossipnet.lab.faults import Fault, FaultError, Scenario, parse_fault
from gossipnet.lab.run import Lab, Result
from gossipnet.lab.verdict import delivery_counts, duplicates, false_reports, held_by, removals_since
from gossipnet.run import launch
from gossipnet.run.options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_PASSED, default_summary_path
from gossipnet.run.peerrun import FAST, INTERRUPTED, REPORT, TIMED_OUT, Status
from gossipnet.run.summary import format_report, write_summary

PROG = "python -m gossipnet.lab"

# --- The report --------------------------------------------------------------------------


def report(result: Result, scenario: Scenario, backend: str) -> dict:
    """The run as runsummary's report (the same summary table), with the lab's checks and faults."""
    run, facts = result.run, result.facts
    summary = asdict(run.summary())
    delivered, expected = delivery_counts(run, facts)
    summary.update(live_peers=len(facts.live), delivered=delivered, expected=expected, duplicates=duplicates(run),
                   false_reports=len(false_reports(run, facts)),
                   delivery=1.0 if not expected else delivered / expected,
                   messages_disseminated=len(run.dissemination_times()))
    struck = []
    for incident in result.facts.incidents:
        if incident.kind not in ("crash", "hang", "cut"):  # a cut: when the peers outside first reported it
            continue
        reports = [event for event in run.reports
                   if event.address("dead") == incident.node and event.timestamp >= incident.start]
        removed = removals_since(run, incident.node, incident.start)
        struck.append({"peer": f"{incident.node} ({incident.kind})",
                       "label": "struck" if incident.kind == "cut" else "killed",
                       "first_report_s": round(min(e.timestamp for e in reports) - incident.start, 3)
                       if reports else None,
                       "reporters": sorted({str(event.node) for event in reports}),
                       "held_by": [str(seed) for seed in sorted(held_by(run, incident.node, incident.start))],
                       "removed_by": [str(seed) for seed in removed],
                       "last_removal_s": round(max(removed.values()) - incident.start, 3) if removed else None})
    failures = ([result.problem] if result.problem else []) + \
        ([f"{result.outcome} before every check held"] if result.outcome in (TIMED_OUT, INTERRUPTED) else []) + \
        [check.name + (" (needs overlay repair/rejoin)" if check.needs_repair else "")
         for check in result.checks if not check.ok] + \
        [f"left behind: {', '.join(result.leftovers)}"] * bool(result.leftovers)
    return {"passed": result.passed, "outcome": result.outcome, "failures": failures,
            "elapsed_s": round(result.elapsed, 3), "backend": backend,
            "settings": {**asdict(scenario), "faults": [str(fault) for fault in scenario.faults]},
            "summary": summary, "kills": struck,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "needs_repair": c.needs_repair}
                       for c in result.checks],
            "incidents": [{"kind": i.kind, "node": str(i.node), "start": i.start, "end": i.end}
                          for i in facts.incidents]}


def format_result(data: dict, result: Result, summary_path: Path | None) -> str:
    lines = format_report(data, summary_path).splitlines()
    checks = [f"Checks ({data['backend']}; faults: {' '.join(data['settings']['faults']) or 'none'}):"]
    checks += [f"  {check}" for check in result.checks]
    return "\n".join(lines[:-1] + checks + lines[-1:])


# --- The command line ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run seeds and peers each in its own network namespace with its own IP address, joined "
                    "by a bridge (or all on 127.0.0.1 with --loopback), inject faults at chosen times, and end "
                    "with a verdict from the log. Needs root unless --loopback. Exits 0 if every check holds, "
                    "1 if not (or the lab could not run), 2 on a bad command line, 130 on Ctrl-C. Everything "
                    "the lab starts or creates is removed at the end, also on Ctrl-C or a failure.",
        epilog="Faults (AT: seconds after every peer is up): crash:AT:COUNT (SIGKILL; COUNT may be N%), "
               "hang:AT:DURATION[:COUNT] (SIGSTOP, then SIGCONT), cut:AT:DURATION[:COUNT] (link down, then "
               "up; namespaces only), seeds-down:AT:COUNT[:DURATION] (SIGKILL seeds; with DURATION they start "
               "again), join:AT[:COUNT] (new peers), restart:AT (dead peers start again on their own "
               "addresses), seeds-restart:AT[:COUNT] (SIGKILL seeds, default a majority, and start them again "
               "at once, empty), churn:AT:DURATION[:EVERY] (every EVERY s, default 2, for DURATION s: SIGKILL "
               "a peer and start a new one). A crash strikes the best-linked peers whose deaths stay "
               "detectable; a hang or a cut, random linked peers; seeds-down spares, when it can, one seed of "
               "every peer, and seeds-restart strikes every seed of as many peers as it can; a churn kills a "
               "neighbour of its last victim when it can, but never the last live neighbour of a victim not "
               "reported yet.")
    parser.add_argument("--seeds", type=positive_int, default=3, metavar="N", help="seeds to start (default: 3)")
    parser.add_argument("-n", "--peers", type=positive_int, default=12, metavar="N",
                        help="peers to start (default: 12)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC", type=_fault,
                        help="a fault to inject (repeatable), e.g. crash:3:30%% or hang:2:6")
    parser.add_argument("--loopback", action="store_true",
                        help="every node on 127.0.0.1 instead of namespaces (no root needed; no cable cuts)")
    parser.add_argument("--fast", action="store_true",
                        help="every interval ten times shorter (gossip 0.5 s, ping 1.3 s, seed probe 0.3 s)")
    parser.add_argument("--log", type=Path, default=Path(DEFAULT_LOG), metavar="FILE",
                        help=f"the log every node writes to, started afresh (default: {DEFAULT_LOG})")
    parser.add_argument("--summary", type=Path, metavar="FILE", help="JSON summary (default: next to the log)")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="keep config.txt and the nodes' stderr here (default: a temporary directory)")
    parser.add_argument("--timeout", type=positive_float, metavar="S",
                        help="give up, and fail, after S seconds (default: from the timings and the faults)")
    peer_flags = ("gossip_interval", "gossip_count", "ping_interval", "ping_misses", "liveness")
    add_peer_arguments(parser, peer_flags, scripted={
        "gossip_interval": f"default: {REPORT.gossip_interval:g}, --fast {FAST.gossip_interval:g}",
        "gossip_count": "default: enough that gossip goes on until the last fault has played out",
        "ping_interval": f"default: {REPORT.ping_interval:g}, --fast {FAST.ping_interval:g}"})
    parser.add_argument("--probe-timeout", type=positive_float, metavar="S",
                        help=f"(seeds) default {SeedSettings.probe_timeout:g}, --fast {FAST.probe_timeout:g}")
    add_peer_arguments(parser, ("rng_seed",), scripted={
        "rng_seed": "peer i gets N+i (+1000 at each restart), and the faults' victims are drawn with N; "
                    "default: random"})
    return parser


def _fault(text: str) -> Fault:
    try:
        return parse_fault(text)
    except FaultError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def make_scenario(args: argparse.Namespace) -> Scenario:
    preset = FAST if args.fast else REPORT
    scenario = Scenario(args.seeds, args.peers, tuple(args.fault),
                        gossip_interval=args.gossip_interval or preset.gossip_interval,
                        gossip_count=args.gossip_count or PeerSettings.gossip_count,
                        ping_interval=args.ping_interval or preset.ping_interval, ping_misses=args.ping_misses,
                        probe_timeout=args.probe_timeout or preset.probe_timeout, rng_seed=args.rng_seed,
                        liveness=args.liveness)
    return scenario if args.gossip_count else scenario.lasting()


def main(argv: list[str] | None = None) -> int:
    stop_request = launch.StopRequest().install()
    parser = build_parser()
    args = parser.parse_args(argv)
    scenario = make_scenario(args)
    backend_class = labnet.Loopback if args.loopback else labnet.Namespaces
    try:
        scenario.check(backend_class.can_cut)
    except FaultError as exc:
        parser.error(str(exc))

    def fail(message: str) -> int:
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
        return EXIT_FAILED

    if not args.loopback and (why := labnet.namespaces_unavailable()):
        return fail(why)
    try:
        args.log.write_text("")
    except OSError as exc:
        return fail(f"cannot open log {args.log}: {exc.strerror or exc}")
    summary_path = (args.summary or default_summary_path(args.log)).resolve()
    with tempfile.TemporaryDirectory(prefix="lab-") as temporary:
        workdir = args.workdir or Path(temporary)
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            lab = Lab(scenario, backend_class(), args.log, workdir, stop_request, Status(), args.timeout)
            result = lab.run()
        except (labnet.LabNetError, OSError) as exc:
            return fail(str(exc))  # lab.run tore everything down on its way out
    data = report(result, scenario, backend_class.name)
    error = write_summary(data, summary_path)
    print(format_result(data, result, None if error else summary_path), flush=True)
    if error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
    if result.outcome == INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_PASSED if result.passed and not error else EXIT_FAILED
