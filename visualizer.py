"""See a run of the gossip network: figures and the same facts as text, from its log.

    python visualizer.py [outputfile.txt] [--out DIR]      # PNGs, and the facts on stdout
    python visualizer.py [outputfile.txt] --live           # a window that follows the log
    python visualizer.py [outputfile.txt] --live --out DIR # the PNGs, rewritten as the log grows
    python visualizer.py --serve [[HOST:]PORT] [LOG]       # a web page that follows or replays the log

The report's §4.4 "Network Orchestration and Visualization".  The text
report, the figures and the live loop are gossipnet.viz; the web dashboard
is gossipnet/viz/dashboard.py (docs/DASHBOARD.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gossipnet import console
from gossipnet.config import bounded_float
from gossipnet.viz import dashboard
from gossipnet.viz.visualize import (
    DEFAULT_INTERVAL,
    DEFAULT_LOG,
    DEFAULT_OUT,
    PROG,
    VisualizerError,
    live,
    once,
    stop_request,
)

DEFAULT_LISTEN = f"{dashboard.DEFAULT_HOST}:{dashboard.DEFAULT_PORT}"


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        if args.serve:
            host, port = args.serve
            return dashboard.serve(args.log, host, port, stop_request())
        if args.live:
            return live(args)
        return once(args)
    except (VisualizerError, dashboard.DashboardError) as exc:
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
  python visualizer.py --serve               # http://127.0.0.1:8000/ follows or replays outputfile.txt
  python visualizer.py --serve 8080 run.txt  # another port, another log

Malformed log lines are listed on stderr with their line numbers and skipped.
Exit status: 0 done (also after Ctrl-C in --live and --serve); 1 the log is missing,
empty or has no peers, no window can be opened, or --serve cannot listen; 2 bad arguments.""",
    )
    parser.add_argument("log", nargs="?", metavar="LOG",
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
    parser.add_argument("--serve", nargs="?", const=DEFAULT_LISTEN, metavar="[HOST:]PORT",
                        help=f"serve a web page that follows the log as it grows and replays it with a timeline "
                             f"(default: {DEFAULT_LISTEN}; PORT 0 picks a free port; a HOST other than loopback "
                             "lets other machines look); Ctrl-C ends it")
    args = parser.parse_args(argv)
    if args.serve is not None:
        if not dashboard.looks_like_listen(args.serve):
            if args.log is not None:
                parser.error(f"--serve {args.serve}: expected [HOST:]PORT, e.g. 8000 or 127.0.0.1:8000")
            args.log, args.serve = args.serve, DEFAULT_LISTEN  # --serve LOG: the default address
        try:
            args.serve = dashboard.parse_listen(args.serve)
        except dashboard.DashboardError as exc:
            parser.error(f"--serve {exc}")
        given = [flag for flag, on in (("--live", args.live), ("--text-only", args.text_only),
                                       ("--out", args.out is not None)) if on]
        if given:
            parser.error(f"--serve draws in a browser; it cannot be combined with {', '.join(given)}")
    if args.live and args.text_only:
        parser.error("--live draws; it cannot be combined with --text-only")
    if args.log is None:
        args.log = DEFAULT_LOG
    return args


_positive = bounded_float(lambda value: 0 < value < 3600, "must be above 0 and below 3600")


if __name__ == "__main__":
    sys.exit(console.run(main))
