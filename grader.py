"""Grade output files: this project's log by the assignment's rules, any student's files by what the handout fixes.

    python grader.py PATH... [--foreign] [--json] [--explain] [--seeds N] [--gossip-count N]
                     [--gossip-interval S] [--ping-interval S] [--ping-misses N] [--tolerance S]
                     [--max-offenders N]

A PATH is a file or a folder.  The files named are one submission (several
files are one run, e.g. one per node, merged by time); each folder is one
more submission, made of its output files: one verdict each, to grade a
class.  A submission is read as this project's log when most lines at the
start of its files are log lines, else as a student's own output
(gradeinput.py says exactly how; ``--foreign`` forces it).

The report starts with what was understood (the format; per file its lines,
the lines understood, its node and role; the gossip and dead-node texts
found), then gives one line per rule: PASS, FAIL, or NOT CHECKED when the
files hold nothing the rule can judge.  Under a failure, the nodes and lines
that break it (``FILE:LINE``; the first ``--max-offenders``, then a count).
Exit status: 0 when, in every submission, at least one rule was checked and
none failed; 1 otherwise; 2 for a usage error (a missing path, a setting that
can be neither inferred from the peers' STARTED lines nor read from a flag).

The checks are grading.py's (the project's log) and foreigngrading.py's (any
other files); this module owns the command line and the report (text or JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import foreigngrading
import gradeinput
import grading
from foreignline import SHAPES
from gradeinput import FOREIGN, PROJECT, Given, Understood
from grading import DEFAULT_TOLERANCE, FAIL, NOT_CHECKED, PASS, SETTINGS, Offence, UsageError, Verdict
from runlog import collector_paused

PROG = "grader"
DEFAULT_MAX_OFFENDERS = 10
LINES_SHOWN = 10  # line numbers listed per offender; the rest are counted
TEXTS_SHOWN = 3  # gossip and dead-node texts shown in the text report


@dataclass
class Graded:
    """One submission graded: what was understood, the verdicts, and how to name its lines."""

    given: Given
    understood: Understood
    verdicts: Sequence[Verdict]
    rules: dict[int, tuple[str, str]]
    needs: dict[int, str]
    where: Callable[[Sequence[int]], str]
    locate: Callable[[int], tuple[Path, int]]
    header: str  # the run in one line
    facts: dict[str, object]  # the report's JSON keys from before foreign files were read

    @property
    def counts(self) -> Counter[str]:
        return Counter(verdict.status for verdict in self.verdicts)

    @property
    def exit_status(self) -> int:
        counts = self.counts
        return 0 if counts[PASS] and not counts[FAIL] else 1


def grade(given: Given, args: argparse.Namespace) -> Graded:
    """Grade one submission as the flags say.  Raises UsageError."""
    kind, parsed, sampled = gradeinput.detect(given.paths)
    if args.foreign:
        kind = FOREIGN
    detection = (f"{parsed} of {sampled} lines sampled are this project's log"
                 + ("; read as foreign (--foreign)" if args.foreign and parsed * 2 > sampled > 0 else ""))
    if kind == PROJECT:
        return _grade_project(given, args, detection)
    settings = foreigngrading.Settings(
        gossip_count=args.gossip_count or foreigngrading.DEFAULT_GOSSIP_COUNT,
        gossip_interval=args.gossip_interval or foreigngrading.DEFAULT_GOSSIP_INTERVAL, tolerance=args.tolerance)
    submission, verdicts = foreigngrading.grade(given.paths, settings)
    understood = gradeinput.of_foreign(submission, detection)
    roles = Counter(role for _, role, _ in understood.nodes)
    dead = {seen.report.dead for seen in submission.reports if seen.report.dead}
    header = (f"{PROG}: {len(given.paths)} file(s), {submission.lines} lines: {roles['seed']} seeds, "
              f"{roles['peer']} peers, {roles[None]} nodes of unknown role; gossip-count {settings.gossip_count}, "
              f"gossip-interval {settings.gossip_interval:g} s")
    facts = {"files": [str(path) for path in given.paths], "lines": submission.lines, "seeds": roles["seed"],
             "peers": roles["peer"], "live": max(0, roles["peer"] - len(dead)), "dead": len(dead),
             "settings": {"gossip_count": settings.gossip_count, "gossip_interval": settings.gossip_interval}}
    return Graded(given, understood, verdicts, foreigngrading.RULES, foreigngrading.NEEDS, submission.where,
                  submission.files.locate, header, facts)


def _grade_project(given: Given, args: argparse.Namespace, detection: str) -> Graded:
    overrides = {name: getattr(args, name) for name in SETTINGS}
    g, verdicts = grading.grade([str(path) for path in given.paths], overrides, args.tolerance)
    settings = g.describe_settings()
    header = (f"{PROG}: {len(g.files.paths)} file(s), {g.files.ends[-1]} lines: {len(g.run.seeds)} seeds, "
              f"{len(g.run.peers)} peers ({len(g.live)} live, {len(g.dead)} dead); n={settings['seeds']}, "
              f"gossip {settings['gossip_count']} x {settings['gossip_interval']} s, ping every "
              f"{settings['ping_interval']} s, dead after {settings['ping_misses']} misses")
    facts = {"files": [str(path) for path in g.files.paths], "lines": g.files.ends[-1], "seeds": len(g.run.seeds),
             "peers": len(g.run.peers), "live": len(g.live), "dead": len(g.dead), "settings": settings}
    return Graded(given, gradeinput.of_project(g, detection), verdicts, grading.RULES, grading.NEEDS, g.where,
                  g.files.locate, header, facts)


# --- The report ------------------------------------------------------------------------------------

_STATES = {PASS: "PASS", FAIL: "FAIL", NOT_CHECKED: "NOT CHECKED"}


def report_text(graded: Graded, limit: int, explain: bool) -> str:
    understood = graded.understood
    out = [f"format: {understood.format} ({understood.detection})"]
    for file in understood.files:
        notes = "".join(f", {note}" for note in file.notes)
        out.append(f"  {file.path}: {file.lines} lines, {file.understood} understood{notes}; node {file.node}, "
                   f"role {file.role}")
    roles = Counter(role or "unknown" for _, role, _ in understood.nodes)
    out.append(f"nodes: {len(understood.nodes)} ({', '.join(f'{n} {role}' for role, n in sorted(roles.items()))})"
               if understood.nodes else "nodes: none known")
    for what, texts in (("gossip texts", understood.messages), ("dead-node texts", understood.dead_node_texts)):
        shown = ", ".join(texts[:TEXTS_SHOWN]) + (", ..." if len(texts) > TEXTS_SHOWN else "")
        out.append(f"{what}: {len(texts)} distinct" + (f", e.g. {shown}" if texts else ""))
    if explain and understood.format == FOREIGN:
        out.append("shapes read:")
        out += [f"    {what}: {'; '.join(shapes)}" for what, shapes in SHAPES.items()]
    out.append(graded.header)
    for verdict in graded.verdicts:
        count = len(verdict.offences)
        detail = verdict.detail
        if verdict.status == FAIL:
            detail = f"{count} offence{'' if count == 1 else 's'}; {detail}"
        elif verdict.status == NOT_CHECKED:
            detail += f" (needs {graded.needs[verdict.number]})"
        out.append(f"{_STATES[verdict.status]} {verdict.number} {verdict.name}: {detail}")
        if explain:
            out.append(f"    rule: {graded.rules[verdict.number][1]}")
            out.append(f"    needs: {graded.needs[verdict.number]}; with none of it the rule is NOT CHECKED")
        offences = sorted(verdict.offences, key=_order)
        for offence in offences[:limit or None]:
            shown = offence.lines[:LINES_SHOWN]
            where = graded.where(shown) + (f" (+{len(offence.lines) - len(shown)} more)"
                                           if len(offence.lines) > len(shown) else "")
            out.append(f"    {offence.node or '?'} [{where or 'no line'}]: {offence.reason}")
        if limit and len(offences) > limit:
            out.append(f"    ... and {len(offences) - limit} more")
    out.append(f"{PROG}: {_tally(graded)}: {_word(graded)}")
    return "\n".join(out)


def _tally(graded: Graded) -> str:
    counts = graded.counts
    return (f"{counts[PASS]} pass, {counts[FAIL]} fail, {counts[NOT_CHECKED]} not checked "
            f"(of {len(graded.verdicts)} rules)")


def _word(graded: Graded) -> str:
    if graded.counts[FAIL]:
        return "FAIL"
    return "PASS" if graded.counts[PASS] else "NOTHING CHECKED"


def report_json(graded: Graded, limit: int) -> dict[str, object]:
    def place(line: int) -> dict[str, object]:
        path, number = graded.locate(line)
        return {"file": str(path), "line": number}

    rules = []
    for verdict in graded.verdicts:
        offences = sorted(verdict.offences, key=_order)
        rules.append({
            "rule": verdict.number, "name": verdict.name, "meaning": graded.rules[verdict.number][1],
            "passed": verdict.passed, "status": verdict.status, "checked": verdict.checked,
            "needs": graded.needs[verdict.number], "detail": verdict.detail, "offences_total": len(offences),
            "offences": [{"node": str(offence.node) if offence.node else None, "reason": offence.reason,
                          "lines": [place(line) for line in offence.lines[:LINES_SHOWN]],
                          "lines_total": len(offence.lines)}
                         for offence in offences[:limit or None]],
        })
    understood = graded.understood
    return {
        **graded.facts, "passed": graded.exit_status == 0, "rules": rules,
        "format": understood.format, "detection": understood.detection, "lines_understood": understood.lines_understood,
        "per_file": [vars(file) for file in understood.files],
        "nodes": [{"node": node, "role": role, "lines": lines} for node, role, lines in understood.nodes],
        "messages": understood.messages, "dead_node_texts": understood.dead_node_texts,
        "verdict": {"status": _word(graded).lower(), **{status: graded.counts[status]
                                                        for status in (PASS, FAIL, NOT_CHECKED)}},
    }


def _order(offence: Offence) -> tuple[int, str]:
    return (min(offence.lines, default=0), str(offence.node))


# --- The command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grader.py", description="Grade output files: one line per rule, PASS, FAIL or NOT CHECKED, and the "
        "nodes and lines that break it. Reads this project's log, or any student's output files. Exit status 0 if "
        "at least one rule was checked and none failed.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="output files of one run (several: merged), or "
                        "folders, each one submission")
    parser.add_argument("--foreign", action="store_true", help="read the files as a student's own output even when "
                        "they look like this project's log")
    parser.add_argument("--json", action="store_true", help="print the same as JSON")
    parser.add_argument("--explain", action="store_true", help="print what each rule checks and needs")
    parser.add_argument("--seeds", type=_positive(int), metavar="N", help="seeds in the config (default: the "
                        "peers' STARTED seeds=, else the seeds in the log)")
    for name, what, default in (("gossip_count", "messages each peer creates", "10"),
                                ("gossip_interval", "seconds between a peer's messages", "5"),
                                ("ping_interval", "seconds between liveness requests", None),
                                ("ping_misses", "unanswered requests that make a neighbour dead", None)):
        kind = SETTINGS[name][1]
        otherwise = f", else {default} for a student's files" if default else ""
        parser.add_argument(SETTINGS[name][2], type=_positive(kind), metavar="N" if kind is int else "S",
                            help=f"{what} (default: each peer's STARTED line{otherwise})")
    parser.add_argument("--tolerance", type=_positive(float), default=DEFAULT_TOLERANCE, metavar="S",
                        help="seconds a loaded machine may delay a timer: a message may come this much (+10%% of "
                        "the interval) late, a dead-node report this much early (default: %(default)s)")
    parser.add_argument("--max-offenders", type=_count, default=DEFAULT_MAX_OFFENDERS, metavar="N",
                        help="offenders listed per rule, 0 for all (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        given = gradeinput.submissions(args.paths)
    except OSError as exc:
        print(f"{PROG}: error: cannot read {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    statuses: list[int] = []
    reports: list[dict[str, object]] = []
    for submission in given:
        if len(given) > 1 and not args.json:
            print(f"== {submission.label}")
        try:
            with collector_paused():  # returning frees the run before the collector runs again
                graded = grade(submission, args)
                statuses.append(graded.exit_status)
                if args.json:
                    reports.append({"label": submission.label, **report_json(graded, args.max_offenders)})
                else:
                    print(report_text(graded, args.max_offenders, args.explain))
        except (UsageError, OSError) as exc:
            message = f"cannot read {exc.filename}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
            print(f"{PROG}: error: {submission.label + ': ' if len(given) > 1 else ''}{message}", file=sys.stderr)
            statuses.append(2)
            reports.append({"label": submission.label, "files": [str(path) for path in submission.paths],
                            "error": message})
    if args.json and len(given) == 1 and statuses[0] != 2:
        reports[0].pop("label")
        print(json.dumps(reports[0], indent=2))
    elif args.json and len(given) > 1:
        print(json.dumps({"submissions": reports, "exit_status": max(statuses)}, indent=2))
    elif len(given) > 1:
        tally = Counter(statuses)
        print(f"{PROG}: {len(given)} submissions: {tally[0]} PASS, {tally[1]} FAIL or NOTHING CHECKED, "
              f"{tally[2]} error(s)")
    return max(statuses, default=2)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _positive(kind: type) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be positive")
        return value
    return parse


if __name__ == "__main__":
    sys.exit(main())
