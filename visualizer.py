"""See a run of the gossip network: figures and the same facts as text, from its log.

    python visualizer.py [outputfile.txt] [--out DIR]      # PNGs, and the facts on stdout
    python visualizer.py [outputfile.txt] --live           # a window that follows the log
    python visualizer.py [outputfile.txt] --live --out DIR # the PNGs, rewritten as the log grows

The report's §4.4 "Network Orchestration and Visualization".  The text
report, the figures and the live loop are gossipnet.viz.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gossipnet import console
from gossipnet.config import bounded_float
from gossipnet.viz.visualize import DEFAULT_INTERVAL, DEFAULT_LOG, DEFAULT_OUT, PROG, VisualizerError, live, once


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        if args.live:
            return live(args)
        return once(args)
    except VisualizerError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="visualizer.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Draw a run of the gossip network from its log, and print the same facts as text:
  topology.png     the overlay: node size by degree, hubs and dead peers marked
  degrees.png      degree histogram; CCDF with the power-law fit and the report's law
  propagation.png  share of live peers holding each message over time; hop counts
  timeline.png     joins and links, gossip per second, dead-node reports and removals""",
        epilog="""\
examples:
  python visualizer.py                       # outputfile.txt -> figures/*.png
  python visualizer.py run.txt --out report  # another log, another directory
  python visualizer.py --live                # a window following outputfile.txt
  python visualizer.py --live --out figures  # no display: PNGs rewritten as the log grows

Malformed log lines are listed on stderr with their line numbers and skipped.
Exit status: 0 done (also after Ctrl-C in --live); 1 the log is missing, empty or
has no peers, or no window can be opened; 2 bad arguments.""",
    )
    parser.add_argument("log", nargs="?", default=DEFAULT_LOG, metavar="LOG",
                        help=f"the log the nodes wrote (default: {DEFAULT_LOG})")
    parser.add_argument("--out", metavar="DIR", type=Path,
                        help=f"directory for the PNGs, created if needed (default: {DEFAULT_OUT}; with --live, "
                             "none: a window instead)")
    parser.add_argument("--live", action="store_true",
                        help="follow the log while the network runs: redraw a window, or rewrite the PNGs in "
                             "--out DIR, every --interval seconds; Ctrl-C ends it")
    parser.add_argument("--interval", type=_positive, default=DEFAULT_INTERVAL, metavar="S",
                        help=f"seconds between redraws in --live (default: {DEFAULT_INTERVAL:g})")
    parser.add_argument("--text-only", action="store_true", help="print the facts, draw nothing")
    args = parser.parse_args(argv)
    if args.live and args.text_only:
        parser.error("--live draws; it cannot be combined with --text-only")
    return args


_positive = bounded_float(lambda value: 0 < value < 3600, "must be above 0 and below 3600")


if __name__ == "__main__":
    sys.exit(console.run(main))
