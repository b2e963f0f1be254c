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

from gossipnet import console
from gossipnet.config import PEER_FLAGS, add_peer_arguments, non_negative_int, positive_float, positive_int
from gossipnet.grading import gradeinput
from gossipnet.grading.foreigngrading import FOREIGN_DEFAULTS
from gossipnet.grading.report import DEFAULT_MAX_OFFENDERS, PROG, grade, report_json, report_text
from gossipnet.grading.rules import DEFAULT_TOLERANCE, SETTINGS, UsageError
from gossipnet.logs.runlog import collector_paused


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
    parser.add_argument("--seeds", type=positive_int, metavar="N", help="seeds in the config (default: the "
                        "peers' STARTED seeds=, else the seeds in the log)")
    graded = [name for name in SETTINGS if name in PEER_FLAGS]  # the peer's own flags, as peer.py spells them
    add_peer_arguments(parser, graded, scripted={
        name: "default: each peer's STARTED line" + (f", else {FOREIGN_DEFAULTS[name]:g} for a student's files"
                                                     if name in FOREIGN_DEFAULTS else "")
        for name in graded})
    parser.add_argument("--tolerance", type=positive_float, default=DEFAULT_TOLERANCE, metavar="S",
                        help="seconds a loaded machine may delay a timer: a message may come this much (+10%% of "
                        "the interval) late, a dead-node report this much early (default: %(default)s)")
    parser.add_argument("--max-offenders", type=non_negative_int, default=DEFAULT_MAX_OFFENDERS, metavar="N",
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
        except BrokenPipeError:
            raise  # the reader went away (console.run)
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


if __name__ == "__main__":
    sys.exit(console.run(main))
