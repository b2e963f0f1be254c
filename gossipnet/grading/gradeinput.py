"""What the grader was given: which files make a submission, their format, and what was understood of them.

- :func:`submissions`: each folder named is one submission, made of its
  output files (:func:`output_files` says which); the files named directly
  are one more submission, all together;
- :func:`detect`: a submission is in this project's own log format when more
  than half of the non-blank lines at the start of its files (the first
  :data:`SAMPLE_BYTES` of each, at most :data:`SAMPLE_LINES` lines) parse as
  log lines (logformat.parse_line); otherwise it is foreign, read by
  foreignlog.py.  An empty submission is foreign;
- :class:`Understood`: what was read, the same for both formats (files,
  lines, nodes and roles, gossip and dead-node texts), which the report
  shows before the verdicts.

It reads only the start of each file (to detect) and the folders; the
readers read the files.
"""

from __future__ import annotations

import bisect
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gossipnet.grading.foreignlog import Submission
from gossipnet.grading.rules import Grading
from gossipnet.logs import logformat, textlines

PROJECT, FOREIGN = "project", "foreign"
SAMPLE_BYTES = 1 << 20  # of each file, to detect its format: enough for 1,000 lines of either kind
SAMPLE_LINES = 1000
# A folder is walked this deep and this wide, at most: a class's submission is a few files.
MAX_DEPTH = 4
MAX_FILES = 500
_SKIPPED_FOLDERS = {"__pycache__", "venv", "env", "node_modules", "site-packages"}
_OUTPUT_SUFFIXES = {".txt", ".log", ".out", ""}
_OUTPUT_NAME = re.compile(r"output|log", re.I)
_NOT_OUTPUT = re.compile(r"config|requirement|readme|licen[cs]e|changelog|notes?\b", re.I)


@dataclass(frozen=True)
class Given:
    """One submission to grade: its files, and how it was named (a folder, or the files themselves)."""

    label: str
    paths: tuple[Path, ...]


def submissions(arguments: Iterable[str]) -> list[Given]:
    """Each folder is a submission; the files named are one more (together).  Raises OSError for a
    path that does not exist."""
    folders, files = [], []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            folders.append(Given(argument, tuple(output_files(path))))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(2, "No such file or directory", argument)
    return ([Given(", ".join(map(str, files)), tuple(files))] if files else []) + folders


def output_files(folder: Path) -> list[Path]:
    """A submission folder's output files: text files (.txt, .log, .out or no suffix) whose name or folder
    says output or log; if none does, every such text file but a config, requirements, readme or licence.
    Hidden folders and virtual environments are skipped."""
    found: list[Path] = []
    for root, folders, names in os.walk(folder):
        depth = len(Path(root).relative_to(folder).parts)
        folders[:] = sorted(name for name in folders if not name.startswith(".") and name not in _SKIPPED_FOLDERS
                            and depth < MAX_DEPTH)
        for name in sorted(names):
            path = Path(root, name)
            if not name.startswith(".") and path.suffix.lower() in _OUTPUT_SUFFIXES and path.is_file():
                found.append(path)
        if len(found) >= MAX_FILES:
            break
    found = found[:MAX_FILES]
    named = [path for path in found if _OUTPUT_NAME.search(str(path.relative_to(folder)))
             and not _NOT_OUTPUT.search(path.name)]
    return named or [path for path in found if not _NOT_OUTPUT.search(path.name) and path.suffix]


def detect(paths: Iterable[Path]) -> tuple[str, int, int]:
    """(PROJECT or FOREIGN, lines sampled that parse as the project's log, lines sampled)."""
    parsed = sampled = 0
    for path in paths:
        lines = [line for line in textlines.first_lines(path, SAMPLE_BYTES) if line.strip()][:SAMPLE_LINES]
        sampled += len(lines)
        for line in lines:
            try:
                logformat.parse_line(line)
            except logformat.LogFormatError:
                continue
            parsed += 1
    return (PROJECT if sampled and parsed * 2 > sampled else FOREIGN), parsed, sampled


@dataclass
class FileUnderstood:
    path: str
    lines: int
    understood: int
    node: str  # its one node, "N nodes", or "unknown"
    role: str  # its nodes' role(s), or "unknown"
    notes: list[str] = field(default_factory=list)  # echoes, cut lines, binary


@dataclass
class Understood:
    format: str
    detection: str
    files: list[FileUnderstood]
    nodes: list[tuple[str, str | None, int]]  # (node, role, lines)
    messages: list[str]  # distinct gossip texts
    dead_node_texts: list[str]

    @property
    def lines(self) -> int:
        return sum(file.lines for file in self.files)

    @property
    def lines_understood(self) -> int:
        return sum(file.understood for file in self.files)


def _one(counts: Counter[str], what: str) -> str:
    if not counts:
        return "unknown"
    if len(counts) == 1:
        return next(iter(counts))
    return f"{len(counts)} {what}" if what else ", ".join(sorted(counts))


def of_project(g: Grading, detection: str) -> Understood:
    ends = g.files.ends
    per_file: list[Counter[str]] = [Counter() for _ in ends]
    roles: list[Counter[str]] = [Counter() for _ in ends]
    understood = [0] * len(ends)
    lines_of: Counter[str] = Counter()
    single = len(ends) == 1
    for event in g.run.events:
        index = 0 if single else bisect.bisect_left(ends, event.line)
        node = str(event.node)
        per_file[index][node] += 1
        roles[index][event.role] += 1
        understood[index] += 1
        lines_of[node] += 1
    errors = Counter(0 if single else bisect.bisect_left(ends, line) for line, _, _ in g.run.errors)
    files = []
    for index, path in enumerate(g.files.paths):
        total = ends[index] - (ends[index - 1] if index else 0)
        notes = [f"{errors[index]} malformed"] if errors[index] else []
        files.append(FileUnderstood(str(path), total, understood[index], _one(per_file[index], "nodes"),
                                    _one(roles[index], ""), notes))
    nodes = [(str(address), "seed", lines_of[str(address)]) for address in sorted(g.run.seeds)]
    nodes += [(str(address), "peer", lines_of[str(address)]) for address in sorted(g.run.peers)]
    messages = sorted({text for _, text in g.run.messages} | {text for _, text in g.run.receipts})
    dead = sorted({event.fields["msg"] for event in g.run.reports if "msg" in event.fields})
    return Understood(PROJECT, detection, files, nodes, messages, dead)


def of_foreign(s: Submission, detection: str) -> Understood:
    files = []
    for summary in s.summaries:
        notes = []
        if summary.binary:
            notes.append("binary (NUL bytes)")
        if summary.echoes:
            notes.append(f"{summary.echoes} echo line(s)")
        if summary.cut:
            notes.append(f"{len(summary.cut)} line(s) over {textlines.MAX_LINE_BYTES:,} bytes, cut")
        node = _one(summary.nodes, "nodes")
        if summary.nodes and not summary.tagged:
            node += " (from the file's name)"
        role = _one(summary.roles, "") if summary.roles else "unknown"
        files.append(FileUnderstood(str(summary.path), summary.lines, summary.understood, node, role, notes))
    nodes = [(label, node.role, node.lines) for label, node in sorted(s.nodes.items())]
    messages = sorted({sighting.gossip.text for sighting in s.gossip})
    dead = sorted({seen.report.text for seen in s.reports})
    return Understood(FOREIGN, detection, files, nodes, messages, dead)
