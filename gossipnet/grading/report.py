"""What grader.py prints: a submission graded (this project's log by rules.py, any other files by
foreigngrading.py) and its report, as text or JSON."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gossipnet.grading import foreigngrading, gradeinput
from gossipnet.grading import rules as grading
from gossipnet.grading.foreignline import SHAPES
from gossipnet.grading.gradeinput import FOREIGN, PROJECT, Given, Understood
from gossipnet.grading.rules import FAIL, NOT_CHECKED, PASS, SETTINGS, Offence, Verdict

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
