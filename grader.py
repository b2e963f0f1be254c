"""Grade a run: check its log against the rules of the assignment's report.

    python grader.py outputfile.txt [more files ...] [--json] [--explain]
                     [--seeds N] [--gossip-count N] [--gossip-interval S]
                     [--ping-interval S] [--ping-misses N] [--tolerance S] [--max-offenders N]

Several files are one run (e.g. one file per node): their events are merged
by time, and a line is named ``FILE:LINE``.  Each rule prints one line, PASS or
FAIL; under a failure, the nodes and log lines that break it (the first
``--max-offenders``, then a count).  Exit status 0 when every rule passes, 1
when one fails, 2 for a usage error (a missing file, a setting that can be
neither inferred from the peers' STARTED lines nor read from a flag).

The checks are grading/rules.py's; this module owns the command line and the
report (text or JSON).
"""

from __future__ import annotations

import argparse
import json
import sys

from gossipnet.config import PEER_FLAGS, add_peer_arguments, non_negative_int, positive_float, positive_int
from gossipnet.grading.rules import DEFAULT_TOLERANCE, RULES, SETTINGS, Grading, Offence, UsageError, Verdict, grade
from gossipnet.logs.runlog import collector_paused

PROG = "grader"
DEFAULT_MAX_OFFENDERS = 10
LINES_SHOWN = 10  # line numbers listed per offender; the rest are counted


def report_text(g: Grading, verdicts: list[Verdict], limit: int, explain: bool) -> str:
    settings = g.describe_settings()
    out = [f"{PROG}: {len(g.files.paths)} file(s), {g.files.ends[-1]} lines: {len(g.run.seeds)} seeds, "
           f"{len(g.run.peers)} peers ({len(g.live)} live, {len(g.dead)} dead); n={settings['seeds']}, "
           f"gossip {settings['gossip_count']} x {settings['gossip_interval']} s, ping every "
           f"{settings['ping_interval']} s, dead after {settings['ping_misses']} misses"]
    for verdict in verdicts:
        state = "PASS" if verdict.passed else "FAIL"
        count = len(verdict.offences)
        summary = verdict.detail if verdict.passed else f"{count} offence{'' if count == 1 else 's'}; {verdict.detail}"
        out.append(f"{state} {verdict.number} {verdict.name}: {summary}")
        if explain:
            out.append(f"    rule: {RULES[verdict.number][1]}")
        offences = sorted(verdict.offences, key=_order)
        for offence in offences[:limit or None]:
            shown = offence.lines[:LINES_SHOWN]
            where = g.where(shown) + (f" (+{len(offence.lines) - len(shown)} more)" if len(offence.lines) > len(shown)
                                      else "")
            out.append(f"    {offence.node or '?'} [{where or 'no line'}]: {offence.reason}")
        if limit and len(offences) > limit:
            out.append(f"    ... and {len(offences) - limit} more")
    passed = sum(verdict.passed for verdict in verdicts)
    out.append(f"{PROG}: {passed} of {len(verdicts)} rules pass")
    return "\n".join(out)


def report_json(g: Grading, verdicts: list[Verdict], limit: int) -> str:
    def place(line: int) -> dict[str, object]:
        path, number = g.files.locate(line)
        return {"file": str(path), "line": number}

    rules = []
    for verdict in verdicts:
        offences = sorted(verdict.offences, key=_order)
        rules.append({
            "rule": verdict.number, "name": verdict.name, "meaning": RULES[verdict.number][1],
            "passed": verdict.passed, "detail": verdict.detail, "offences_total": len(offences),
            "offences": [{"node": str(offence.node) if offence.node else None, "reason": offence.reason,
                          "lines": [place(line) for line in offence.lines[:LINES_SHOWN]],
                          "lines_total": len(offence.lines)}
                         for offence in offences[:limit or None]],
        })
    return json.dumps({
        "files": [str(path) for path in g.files.paths], "lines": g.files.ends[-1],
        "seeds": len(g.run.seeds), "peers": len(g.run.peers), "live": len(g.live), "dead": len(g.dead),
        "settings": g.describe_settings(), "passed": all(v.passed for v in verdicts), "rules": rules,
    }, indent=2)


def _order(offence: Offence) -> tuple[int, str]:
    return (min(offence.lines, default=0), str(offence.node))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grader.py", description="Check a run's log against the rules of the assignment's report: one line "
        "per rule, PASS or FAIL, and the nodes and lines that break it. Exit status 0 if every rule passes.")
    parser.add_argument("logs", nargs="+", metavar="LOG", help="log file(s) of one run (several: merged by time)")
    parser.add_argument("--json", action="store_true", help="print the same as JSON")
    parser.add_argument("--explain", action="store_true", help="print what each rule means, exactly")
    parser.add_argument("--seeds", type=positive_int, metavar="N", help="seeds in the config (default: the "
                        "peers' STARTED seeds=, else the seeds in the log)")
    graded = [name for name in SETTINGS if name in PEER_FLAGS]  # the peer's own flags, as peer.py spells them
    add_peer_arguments(parser, graded, scripted=dict.fromkeys(graded, "default: each peer's STARTED line"))
    parser.add_argument("--tolerance", type=positive_float, default=DEFAULT_TOLERANCE, metavar="S",
                        help="seconds a loaded machine may delay a timer: a message may come this much (+10%% of "
                        "the interval) late, a dead-node report this much early (default: %(default)s)")
    parser.add_argument("--max-offenders", type=non_negative_int, default=DEFAULT_MAX_OFFENDERS, metavar="N",
                        help="offenders listed per rule, 0 for all (default: %(default)s)")
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name) for name in SETTINGS}
    try:
        with collector_paused():  # returning frees the run before the collector runs again
            return _grade_and_report(args, overrides)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def _grade_and_report(args: argparse.Namespace, overrides: dict[str, float | int | None]) -> int:
    grading, verdicts = grade(args.logs, overrides, args.tolerance)
    if args.json:
        print(report_json(grading, verdicts, args.max_offenders))
    else:
        print(report_text(grading, verdicts, args.max_offenders, args.explain))
    return 0 if all(verdict.passed for verdict in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
