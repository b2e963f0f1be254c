"""What visualizer.py does: the text report of a run, its figures written to files, and the live view.

The log is read through :class:`gossipnet.logs.runlog.Run` (so every number
here is counted as the runners and the grader count it); figures.py draws.
Malformed log lines are reported with their numbers and skipped.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

from gossipnet.logs import runlog
from gossipnet.run import launch

PROG = "visualizer"
DEFAULT_LOG = "outputfile.txt"
DEFAULT_OUT = "figures"
DEFAULT_INTERVAL = 2.0  # s between looks at a growing log in --live
WINDOW_FONT_SIZE = 8  # points; four figures share one screen in the live window
ERRORS_SHOWN = 20  # malformed lines listed one by one; the rest are counted


class VisualizerError(Exception):
    """A problem the user can fix, reported as one line."""


# --- One look at a finished (or running) log ----------------------------------------------


def once(args: argparse.Namespace) -> int:
    with runlog.collector_paused():  # returning frees the run before the collector runs again
        return _once(args)


def _once(args: argparse.Namespace) -> int:
    run = load(args.log)
    report_errors(args.log, run.errors)
    check_has_peers(args.log, run)
    from gossipnet.viz import figures  # matplotlib and networkx load slowly: only once the log is known to be usable

    view = figures.View.of(run)
    written = [] if args.text_only else write_figures(view, args.out or Path(DEFAULT_OUT))
    print(report(args.log, view, written))
    return 0


def load(path: str) -> runlog.Run:
    try:
        if Path(path).is_dir():
            raise VisualizerError(f"{path} is a directory, not a log file")
        return runlog.Run.load(path)
    except OSError as exc:
        raise VisualizerError(f"cannot read {path}: {exc.strerror or exc}") from None


def check_has_peers(path: str, run: runlog.Run) -> None:
    if not run.events:
        if run.errors:
            raise VisualizerError(f"{path} has no valid log lines ({len(run.errors)} malformed)")
        raise VisualizerError(f"{path} is empty")
    if not run.peers:
        raise VisualizerError(f"{path} has no peer lines ({len(run.seeds)} seeds, no peers): nothing to draw")


def report_errors(path: str, errors: list[tuple[int, str, str]], already: int = 0) -> None:
    """List malformed lines (from index ``already`` on) on stderr, with their line numbers."""
    fresh = errors[already:]
    for number, reason, _ in fresh[:max(0, ERRORS_SHOWN - already)]:
        print(f"{PROG}: {path}:{number}: skipped malformed line: {reason}", file=sys.stderr)
    hidden = len(fresh) - max(0, ERRORS_SHOWN - already)
    if hidden > 0:
        print(f"{PROG}: {path}: {hidden} more malformed lines skipped", file=sys.stderr)


def write_figures(view, out: Path, previous: dict | None = None) -> list[Path]:
    """Write the four PNGs into ``out``; each appears whole (written aside, then renamed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from gossipnet.viz import figures
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VisualizerError(f"cannot create {out}: {exc.strerror or exc}") from None
    written = []
    for name, draw in figures.FIGURES.items():
        figure = Figure(figsize=figures.SIZES[name], layout="constrained")
        result = draw(figure, view, previous) if name == "topology" else draw(figure, view)
        if name == "topology" and previous is not None:
            previous.clear()
            previous.update(result)
        path = out / f"{name}.png"
        partial = out / f".{name}.png.partial"
        try:
            figure.savefig(partial, format="png", dpi=110)
            os.replace(partial, path)
        except OSError as exc:
            raise VisualizerError(f"cannot write {path}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        written.append(path)
    return written


# --- The text report ----------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def report(path: str, view, written: list[Path]) -> str:
    run, summary = view.run, view.summary
    lines = [
        f"log: {path}: {len(run.events)} events, {len(run.errors)} malformed lines skipped",
        f"peers: {summary.peers} ({summary.live_peers} live, {summary.peers - summary.live_peers} dead); "
        f"seeds: {summary.seeds}",
        f"links: {summary.links} ({sum(1 for link in run.links if link & view.dead)} to dead peers)",
        f"degree: min {summary.degree_min}, median {summary.degree_median:g}, max {summary.degree_max}",
    ]
    if view.fit is not None:
        fit = view.fit
        lines.append(f"exponent: alpha {fit.alpha:.2f} for k >= {fit.k_min} ({fit.tail} of {summary.peers} peers), "
                     f"maximum likelihood; power law vs exponential: {fit.verdict}")
    else:
        lines.append(f"exponent: n/a ({view.fit_problem})")
    if view.diameter is None:
        lines.append("diameter: n/a (no live peers)")
    else:
        bound = "" if view.diameter_exact else ">= "
        lines.append(f"diameter: {bound}{view.diameter} (largest connected component of live peers: "
                     f"{view.component} of {summary.live_peers})")
    lines.append(f"delivery: {summary.delivery:.1%} ({summary.delivered} of {summary.expected} receipts expected "
                 f"at live peers); duplicates: {summary.duplicates}")
    lines.append(f"dissemination: median {_seconds(summary.dissemination_median)}, "
                 f"p99 {_seconds(summary.dissemination_p99)} ({view.complete} of {len(run.messages)} messages "
                 "reached every live peer)")
    if view.hops:
        lines.append(f"hops: median {statistics.median(view.hops):g}, max {max(view.hops)} "
                     f"(over {len(view.hops)} first receipts at live peers)")
    else:
        lines.append("hops: n/a (no receipt chains)")
    lines.extend(detection_lines(view.deaths))
    if written:
        lines.append("figures: " + " ".join(str(path) for path in written))
    return "\n".join(lines)


def detection_lines(deaths: list[runlog.Death]) -> list[str]:
    if not deaths:
        return ["detection: no dead peers"]
    lines = []
    for death in deaths:
        to_report = None if death.first_report is None else death.first_report - death.last_seen
        to_removal = max(death.removed.values()) - death.last_seen if death.removed else None
        lines.append(f"detection: {death.peer} last seen -> first report {_seconds(to_report)}, "
                     f"-> last removal {_seconds(to_removal)} ({len(death.reporters)} reporters, "
                     f"{len(death.removed)} seeds removed it)")
    return lines


# --- The live view ------------------------------------------------------------------------


def stop_request() -> launch.StopRequest:
    """Set by Ctrl-C or SIGTERM; the live loops finish the frame they are drawing, then end."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # started in the background: stay so
    return launch.StopRequest().install([signal.SIGTERM] + [signal.SIGINT] * (not ignored))


def live(args: argparse.Namespace) -> int:
    if args.out is None:
        return live_window(args)
    return live_files(args)


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _fit_to_screen(window) -> None:
    """Size the window to most of the screen, where the toolkit says how big it is (Tk, Qt)."""
    frame = window.canvas.manager.window
    try:
        if hasattr(frame, "winfo_screenwidth"):  # Tk
            screen = frame.winfo_screenwidth(), frame.winfo_screenheight()
        else:  # Qt
            geometry = frame.screen().availableGeometry()
            screen = geometry.width(), geometry.height()
        width, height = min(int(0.9 * screen[0]), 1800), min(int(0.85 * screen[1]), 1100)
        if hasattr(frame, "geometry"):
            frame.geometry(f"{width}x{height}")
        else:
            frame.resize(width, height)
    except Exception:  # another toolkit, or no answer: keep the default size
        pass


class Follower:
    """The growing log and what has been said about it so far."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tail = runlog.LogTail(path)
        self.errors_shown = 0
        if not Path(path).exists():
            print(f"{PROG}: waiting for {path} to appear (Ctrl-C to stop)", file=sys.stderr)

    def view(self):
        """A fresh View if the log grew and has peers; None otherwise."""
        from gossipnet.viz import figures
        try:
            grew = self.tail.poll()
        except OSError as exc:  # a directory, a file we may not read
            raise VisualizerError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if not grew or not self.tail.run.peers:
            return None
        report_errors(self.path, self.tail.run.errors, self.errors_shown)
        self.errors_shown = len(self.tail.run.errors)
        return figures.View.of(self.tail.run)

    def status(self, view, where: str) -> str:
        s = view.summary
        return (f"{time.strftime('%H:%M:%S')} {self.tail.lines} lines: {s.peers} peers ({len(view.dead)} dead), "
                f"{s.links} links, delivery {s.delivery:.1%} -> {where}")


def live_files(args: argparse.Namespace) -> int:
    """Rewrite the PNGs whenever the log has grown; Ctrl-C prints the final facts and ends."""
    stop = stop_request()
    follower = Follower(args.log)
    positions: dict = {}
    last = None
    while not stop:
        view = follower.view()
        if view is not None:
            write_figures(view, args.out, positions)
            print(follower.status(view, str(args.out)), flush=True)
            last = view
        stop.sleep(args.interval)
    if last is not None:
        print(report(args.log, last, []))
    return 0


def live_window(args: argparse.Namespace) -> int:
    """One window, the four figures as panels, redrawn as the log grows; closing it or Ctrl-C ends it."""
    if not _has_display():
        raise VisualizerError("no display for a live window (DISPLAY is not set); "
                              "use --live --out DIR to rewrite the PNGs instead")
    import matplotlib.pyplot as plt

    from gossipnet.viz import figures
    if plt.get_backend().lower() in ("agg", "pdf", "svg", "ps", "cairo", "template"):
        raise VisualizerError(f"matplotlib has no interactive backend here ({plt.get_backend()}); "
                              "install tkinter or PyQt, or use --live --out DIR")
    stop = stop_request()
    follower = Follower(args.log)
    window = plt.figure(figsize=(15, 9), layout="constrained")
    window.canvas.manager.set_window_title(f"gossip network: {args.log}")
    _fit_to_screen(window)
    panels = window.subfigures(2, 2)
    positions: dict = {}
    last = None
    plt.show(block=False)
    while not stop and plt.fignum_exists(window.number):
        view = follower.view()
        if view is not None:
            with plt.rc_context({"font.size": WINDOW_FONT_SIZE}):
                for panel, (name, draw) in zip(panels.flat, figures.FIGURES.items(), strict=True):
                    panel.clear()
                    if name == "topology":
                        positions = draw(panel, view, positions)
                    else:
                        draw(panel, view)
            window.canvas.draw_idle()
            print(follower.status(view, "window"), flush=True)
            last = view
        plt.pause(args.interval)
    plt.close("all")
    if last is not None:
        print(report(args.log, last, []))
    return 0
