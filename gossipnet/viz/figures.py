"""The visualizer's figures: what a run looks like, drawn from a :class:`View` of its log.

:class:`View` gathers, once per drawing, the facts every figure and the text
report need (the overlay as a graph, the power-law fit, delivery delays, hop
counts, the diameter); the counting itself is :mod:`runlog`'s.  Each ``draw_*``
function fills a matplotlib ``Figure`` or ``SubFigure``, so the same code
writes the PNGs and fills the panels of the live window.  One palette,
:data:`PALETTE`, gives each kind of thing (live peer, dead peer, hub, fit, the
report's law) the same colour in every figure.

This module draws; it does not read files or choose a backend.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

import matplotlib.ticker
import networkx as nx
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from scipy.sparse.csgraph import shortest_path

from gossipnet.logs import logformat, runlog
from gossipnet.protocol import topology
from gossipnet.protocol.wire import Address

PALETTE = {
    "live": "#1f77b4",  # live peers, and what they do
    "hub": "#ff7f0e",  # the highest-degree peers
    "dead": "#d62728",  # dead peers, their links, the reports about them
    "removed": "#7f0000",  # a seed removing a dead peer
    "missed": "#ff9896",  # a missed ping
    "link": "#8c9aa8",  # links
    "generated": "#a6a600",  # gossip messages created
    "fit": "#2ca02c",  # the fitted power law
    "report": "#9467bd",  # the report's formula 40 * 1.5^(-k/10)
    "median": "#08306b",
    "p99": "#000000",
    "text": "#333333",
}

LABEL_LIMIT = 60  # peers; above this the overlay is drawn without labels, with translucent links
EXACT_LAYOUT_LIMIT = 100  # peers; Kamada-Kawai (O(N^2) per step, tidy) up to here, spring layout above
EXACT_DIAMETER_LIMIT = 3000  # live peers; all-pairs BFS above this is too slow, a 2-sweep bound is used
REPORT_LAW = r"$40 \cdot 1.5^{-k/10}$"
HUBS = 5  # peers marked as hubs: the top degrees, when above the median
CURVES_DRAWN = 400  # message curves drawn at most (a random sample); percentiles use every message


@dataclass
class View:
    """What the figures and the text report show, computed once from a :class:`runlog.Run`."""

    run: runlog.Run
    graph: nx.Graph  # every peer; every link ever opened
    dead: set[Address]
    degrees: dict[Address, int]
    hubs: list[Address]
    fit: topology.PowerLawFit | None
    fit_problem: str  # why there is no fit, when there is none
    delays: dict[tuple[Address, str], list[float]]  # runlog.Run.receipt_delays
    expected: dict[tuple[Address, str], int]  # live receivers each message should reach
    hops: list[int]  # hop count of every first receipt at a live peer
    farthest: list[int]  # per message, the largest hop count of its receipts
    diameter: int | None
    diameter_exact: bool
    component: int  # peers in the largest connected component of live peers
    summary: runlog.Summary
    complete: int  # messages that reached every live peer
    deaths: list[runlog.Death]
    start: float  # time of the first log line

    @classmethod
    def of(cls, run: runlog.Run) -> View:
        graph = nx.Graph()
        graph.add_nodes_from(sorted(run.peers))
        graph.add_edges_from(tuple(link) for link in run.links)
        degrees = dict(graph.degree())
        dead = run.dead
        live = set(run.live)
        median = float(np.median(list(degrees.values()))) if degrees else 0.0
        ranked = sorted(degrees, key=lambda peer: (-degrees[peer], peer))
        hubs = [peer for peer in ranked[:HUBS] if degrees[peer] > median]
        fit, problem = None, ""
        try:
            fit = topology.fit_power_law(degrees.values())
        except (ValueError, ZeroDivisionError, IndexError) as exc:  # too few distinct degrees to fit
            problem = str(exc)
        delays = run.receipt_delays()
        expected = {key: len(live - {message.origin}) for key, message in run.messages.items()}
        # as run.dissemination_times() counts them, without a second pass over every receipt
        complete = sum(1 for key, count in expected.items() if len(delays[key]) == count)
        hops: list[int] = []
        farthest: list[int] = []
        for key, counts in run.hop_counts().items():
            if key not in run.messages:
                continue
            at_live = [count for peer, count in counts.items() if peer in live and peer != key[0]]
            hops.extend(at_live)
            if at_live:
                farthest.append(max(at_live))
        diameter, exact, component = _diameter(graph.subgraph(live))
        start = min((event.timestamp for event in run.events), default=0.0)
        return cls(run, graph, dead, degrees, hubs, fit, problem, delays, expected, hops, farthest,
                   diameter, exact, component, run.summary(), complete, run.deaths(), start)


def _diameter(live: nx.Graph) -> tuple[int | None, bool, int]:
    """(diameter, exact?, size) of the largest connected component."""
    if live.number_of_nodes() == 0:
        return None, True, 0
    component = live.subgraph(max(nx.connected_components(live), key=len))
    size = component.number_of_nodes()
    if size > EXACT_DIAMETER_LIMIT:
        return int(nx.approximation.diameter(component, seed=1)), False, size
    distances = shortest_path(nx.to_scipy_sparse_array(component), unweighted=True, directed=False)
    return int(distances.max()), True, size


# --- Topology ----------------------------------------------------------------------------


def layout(graph: nx.Graph, previous: dict | None = None) -> dict:
    """Node positions; ``previous`` positions (the live view) seed the layout so it moves little."""
    n = graph.number_of_nodes()
    if n == 0:
        return {}
    start = {node: previous[node] for node in graph if previous and node in previous} or None
    if n <= EXACT_LAYOUT_LIMIT and nx.is_connected(graph):
        return nx.kamada_kawai_layout(graph, pos=start if start and len(start) == n else None)
    # spring_layout's cost grows with N: fewer steps for big overlays (about 1 s at 500 peers).
    steps = 50 if n <= 500 else max(15, 25000 // n)
    if start:
        steps = min(steps, 15)
    return nx.spring_layout(graph, pos=start, iterations=steps, seed=1, k=1.5 / math.sqrt(n))


def draw_topology(fig, view: View, previous: dict | None = None) -> dict:
    """The overlay: node area by degree, hubs and dead peers marked, dead links dashed.

    Returns the positions used, for the next frame of the live view.
    """
    ax = fig.subplots()
    ax.set_axis_off()
    graph = view.graph
    n = graph.number_of_nodes()
    if n == 0:
        _placeholder(ax, "no peers in the log yet")
        fig.suptitle("Overlay", fontweight="bold")
        return {}
    positions = layout(graph, previous)
    small = n <= LABEL_LIMIT
    dead = view.dead
    live_links, dead_links = [], []
    for a, b in graph.edges():
        (dead_links if a in dead or b in dead else live_links).append((positions[a], positions[b]))
    width = 1.4 if small else 0.5
    ax.add_collection(LineCollection(live_links, colors=PALETTE["link"], linewidths=width,
                                     alpha=0.9 if small else 0.35, zorder=1))
    ax.add_collection(LineCollection(dead_links, colors=PALETTE["dead"], linewidths=width, linestyles=(0, (4, 3)),
                                     alpha=0.8 if small else 0.5, zorder=1))
    top = max(view.degrees.values()) or 1
    # Marker areas are in points: scale them with the panel (a PNG, or a quarter of the live window).
    scale = min(fig.bbox.width, fig.bbox.height) / fig.dpi / 9.5
    low, high = (80, 900) if small else (6, 260)
    low, high = low * scale ** 2, high * scale ** 2

    def size(peer: Address) -> float:
        return low + (high - low) * view.degrees[peer] / top

    hubs = set(view.hubs)
    groups = [
        ([p for p in graph if p not in dead and p not in hubs], PALETTE["live"], "o", 2),
        ([p for p in graph if p in hubs and p not in dead], PALETTE["hub"], "o", 3),
        ([p for p in graph if p in dead], PALETTE["dead"], "X", 4),
    ]
    for peers, colour, marker, order in groups:
        if peers:
            xy = np.array([positions[p] for p in peers])
            ax.scatter(xy[:, 0], xy[:, 1], s=[size(p) for p in peers], c=colour, marker=marker, zorder=order,
                       edgecolors="white", linewidths=0.8 if small else 0.3, alpha=1.0 if small else 0.85,
                       clip_on=False)
    if small:
        labelled = [p for p in view.hubs if p not in dead] + sorted(dead)
        for peer in labelled:
            x, y = positions[peer]
            ax.annotate(f"{peer}  k={view.degrees[peer]}", (x, y), xytext=(0, math.sqrt(size(peer)) / 2 + 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize="small", zorder=5,
                        color=PALETTE["dead"] if peer in dead else PALETTE["text"],
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})
    ax.autoscale_view()
    ax.margins(0.12 if small else 0.05)  # room for the markers and labels at the edge
    ax.set_aspect("equal", adjustable="datalim")
    handles = [
        Line2D([], [], ls="", marker="o", ms=8, color=PALETTE["live"], label="live peer"),
        Line2D([], [], ls="", marker="o", ms=8, color=PALETTE["hub"], label="hub (highest degrees)"),
        Line2D([], [], ls="", marker="X", ms=8, color=PALETTE["dead"], label="dead peer (reported or removed)"),
        Line2D([], [], color=PALETTE["link"], lw=1.5, label="link"),
        Line2D([], [], color=PALETTE["dead"], lw=1.5, ls=(0, (4, 3)), label="link to a dead peer"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=3, frameon=False, fontsize="small")
    fig.suptitle(f"Overlay: {n} peers ({len(dead)} dead), {graph.number_of_edges()} links", fontweight="bold")
    biggest = view.hubs[0] if view.hubs else max(view.degrees, key=view.degrees.get)
    if small:
        note = "node area ∝ degree"
    else:
        gone = ", dead" if biggest in dead else ""
        note = f"node area ∝ degree; largest hub {biggest} (k={view.degrees[biggest]}{gone})"
    ax.set_title(note, fontsize="small", color=PALETTE["text"])
    return positions


# --- Degree distribution ------------------------------------------------------------------


def draw_degrees(fig, view: View) -> None:
    """Histogram, and the CCDF on log-log axes against the fitted power law and the report's law."""
    hist, ccdf = fig.subplots(1, 2)
    fig.suptitle("Degree distribution", fontweight="bold")
    if not view.degrees:
        for ax in (hist, ccdf):
            _placeholder(ax, "no peers in the log yet")
        return
    degrees = np.array(list(view.degrees.values()))
    alive = np.array([peer not in view.dead for peer in view.degrees])
    top = int(degrees.max())
    ks = np.arange(0, top + 1)
    live_counts = np.bincount(degrees[alive], minlength=top + 1)
    dead_counts = np.bincount(degrees[~alive], minlength=top + 1)
    hist.bar(ks, live_counts, width=0.85, color=PALETTE["live"], label="live peers")
    if dead_counts.any():
        hist.bar(ks, dead_counts, width=0.85, bottom=live_counts, color=PALETTE["dead"], label="dead peers")
    report_ks = np.arange(1, max(top, 2) + 1)
    report = len(degrees) * np.array([topology.report_degree_probability(int(k)) for k in report_ks])
    hist.plot(report_ks, report, color=PALETTE["report"], lw=2, marker=".",
              label=f"report's law, N·P(k): {REPORT_LAW}\nnormalised over k ≥ 1")
    hist.set_xlabel("degree k (links)")
    hist.set_ylabel("peers")
    hist.set_title(f"{len(degrees)} peers: min {degrees.min()}, median {np.median(degrees):g}, max {top}",
                   fontsize="medium")
    hist.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    hist.set_ylim(0, (live_counts + dead_counts).max() * 1.3)  # headroom: the legend sits above the bars
    hist.legend(fontsize="small", loc="upper right")

    positive = np.sort(degrees[degrees >= 1])
    if len(positive) == 0:
        _placeholder(ccdf, "every peer has degree 0")
        return
    values = np.unique(positive)
    tail = 1.0 - np.searchsorted(positive, values, side="left") / len(positive)  # P(K >= k)
    ccdf.loglog(values, tail, ls="", marker="o", ms=5, color=PALETTE["live"], label="observed P(K ≥ k)")
    line = np.geomspace(values.min(), max(values.max(), values.min() + 1), 200)
    # The report's law normalised over k >= 1 has P(K >= k) = r^(k-1) exactly: no fitting, no scaling.
    ccdf.loglog(line, topology.REPORT_RATIO ** (line - 1), color=PALETTE["report"], lw=2,
                label=f"report's law {REPORT_LAW}\nnormalised over k ≥ 1")
    if view.fit is not None:
        fit = view.fit
        anchor = tail[np.searchsorted(values, fit.k_min)] if fit.k_min <= values.max() else 1.0
        fitted = line[line >= fit.k_min]
        ccdf.loglog(fitted, anchor * (fitted / fit.k_min) ** (1 - fit.alpha), color=PALETTE["fit"], lw=2,
                    label=f"power law, ML fit: α = {fit.alpha:.2f}\nfor k ≥ k_min = {fit.k_min} ({fit.tail} peers)")
        ccdf.axvline(fit.k_min, color=PALETTE["fit"], lw=0.8, ls=":")
        verdict = f"likelihood ratio, power law vs exponential:\n{fit.verdict}"
    else:
        verdict = f"no power-law fit: {view.fit_problem}"
    ccdf.set_ylim(min(tail.min() / 3, 0.08), 1.5)  # at least one decade: 1 and 0.1 are always marked
    ccdf.set_xlabel("degree k (links, log scale)")
    ccdf.set_ylabel("fraction of peers with degree ≥ k")
    ccdf.set_title(f"Complementary CDF\n{verdict}", fontsize="small")
    ccdf.legend(fontsize="small", loc="lower left")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    ccdf.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(_degree_ticks(values.min(), line.max())))
    ccdf.xaxis.set_major_formatter(plain)
    ccdf.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ccdf.yaxis.set_major_formatter(plain)
    ccdf.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _degree_ticks(low: float, high: float) -> list[int]:
    """Round degrees to mark on a log axis: dense when the range is narrow, 1-2-5 when wide."""
    for steps in ((1, 2, 3, 4, 5, 6, 8), (1, 2, 5)):
        ticks = [step * 10 ** power for power in range(5) for step in steps if low <= step * 10 ** power <= high]
        if len(ticks) <= 9:
            return ticks
    return ticks


# --- Propagation --------------------------------------------------------------------------


def draw_propagation(fig, view: View) -> None:
    """Per message, the fraction of live peers holding it against time; hop counts of receipts."""
    spread, hops_ax = fig.subplots(1, 2, width_ratios=(1.6, 1))
    fig.suptitle("Gossip propagation", fontweight="bold")
    keys = [key for key, count in view.expected.items() if count > 0]
    if not keys:
        _placeholder(spread, "no gossip messages with live receivers yet")
        _placeholder(hops_ax, "no receipts yet")
        return
    rng = random.Random(1)
    drawn = keys if len(keys) <= CURVES_DRAWN else rng.sample(keys, CURVES_DRAWN)
    curves = []
    for key in drawn:
        delays, total = view.delays[key], view.expected[key]
        xs = np.repeat(np.concatenate(([0.0], delays)), 2)[1:]
        ys = np.repeat(np.arange(len(delays) + 1) / total, 2)[:-1]
        curves.append(np.column_stack((xs, ys)))
    spread.add_collection(LineCollection(curves, colors=PALETTE["live"], linewidths=0.8,
                                         alpha=max(0.08, min(0.5, 20 / len(drawn)))))
    fractions, median, p99 = _quantile_curves(view, keys)
    spread.plot(median, fractions, color=PALETTE["median"], lw=3, label="median message")
    spread.plot(p99, fractions, color=PALETTE["p99"], lw=3, ls="--", label="99th percentile message")
    finite = [d for key in keys for d in view.delays[key][-1:]]
    right = max(finite, default=1.0) or 1.0
    spread.set_xlim(-0.02 * right, right * 1.05)
    spread.set_ylim(-0.02, 1.05)
    spread.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    spread.set_xlabel("time since the message was created (s)")
    spread.set_ylabel("live peers holding it (origin excluded)")
    summary = view.summary
    sample = f"{len(drawn)} of {len(keys)}" if len(drawn) < len(keys) else f"all {len(keys)}"
    spread.set_title(f"{sample} messages drawn; delivery {summary.delivery:.1%}", fontsize="medium")
    spread.legend(handles=[Line2D([], [], color=PALETTE["live"], lw=1, label="one message"),
                           *spread.get_legend_handles_labels()[0]], loc="lower right", fontsize="small")

    if view.hops:
        counts = Counter(view.hops)
        farthest = Counter(view.farthest)
        top = max(counts)
        ks = np.arange(1, top + 1)
        hops_ax.bar(ks - 0.2, [counts[k] / len(view.hops) for k in ks], width=0.4, color=PALETTE["live"],
                    label=f"receipts at h hops ({len(view.hops)})")
        hops_ax.bar(ks + 0.2, [farthest[k] / len(view.farthest) for k in ks], width=0.4, color=PALETTE["median"],
                    label=f"messages whose farthest\nreceipt is h hops ({len(view.farthest)})")
        if view.diameter:
            hops_ax.axvline(view.diameter, color=PALETTE["text"], ls=":", lw=1.5,
                            label=f"overlay diameter ({'' if view.diameter_exact else '≥ '}{view.diameter})")
        hops_ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        hops_ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        hops_ax.set_xlabel("hops from the origin (chain of first receipts)")
        hops_ax.set_ylabel("share")
        hops_ax.set_title(f"Hop counts: median {np.median(view.hops):g}, max {top}", fontsize="medium")
        hops_ax.set_ylim(0, hops_ax.get_ylim()[1] * 1.45)  # headroom for the legend
        hops_ax.legend(fontsize="small", loc="upper right")
    else:
        _placeholder(hops_ax, "no hop counts: no receipt chain\nleads back to an origin")


def _quantile_curves(view: View, keys) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For fractions f of live peers: the time by which the median message, and the 99th
    percentile message (nearest rank), reached f.  Infinite if not reached."""
    fractions = np.linspace(0.0, 1.0, 201)
    times = np.empty((len(keys), len(fractions)))
    for row, key in enumerate(keys):
        total = view.expected[key]
        padded = np.full(total + 1, np.inf)
        padded[0] = 0.0
        padded[1:len(view.delays[key]) + 1] = view.delays[key]
        times[row] = padded[np.ceil(fractions * total - 1e-9).astype(int)]
    times.sort(axis=0)
    return fractions, np.median(times, axis=0), times[runlog.nearest_rank(len(keys), 0.99) - 1]


# --- Timeline -----------------------------------------------------------------------------


def draw_timeline(fig, view: View) -> None:
    """Joins and links, gossip volume per second, and the liveness events, on one time axis."""
    members, volume, liveness = fig.subplots(3, 1, sharex=True, height_ratios=(1, 1, 0.8))
    start = datetime.fromtimestamp(view.start, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    fig.suptitle(f"Timeline (0 = first log line, {start})", fontweight="bold")
    times: dict[str, list[float]] = {name: [] for name in (
        logformat.STARTED, logformat.LINK_OPENED, logformat.GOSSIP_GENERATED, logformat.GOSSIP_RECEIVED,
        logformat.PING_MISSED, logformat.DEAD_NODE_REPORTED, logformat.PL_REMOVED)}
    seen_links: set[frozenset] = set()
    for event in view.run.events:
        if event.event not in times or (event.event == logformat.STARTED and event.role != "peer"):
            continue
        if event.event == logformat.LINK_OPENED:
            link = frozenset((str(event.node), event.fields.get("neighbour", "")))  # compared as text
            if link in seen_links:
                continue  # both ends log a link; count it once
            seen_links.add(link)
        times[event.event].append(event.timestamp - view.start)
    end = max((event.timestamp for event in view.run.events), default=view.start) - view.start
    end = end or 1.0

    for name, colour, label in ((logformat.STARTED, PALETTE["live"], "peers started"),
                                (logformat.LINK_OPENED, PALETTE["link"], "links opened")):
        xs = np.sort(times[name])
        members.step(np.concatenate(([0.0], xs, [end])), np.concatenate(([0], np.arange(1, len(xs) + 1),
                                                                          [len(xs)])),
                     where="post", color=colour, lw=2, label=f"{label} ({len(xs)})")
    members.set_ylabel("count")
    members.legend(fontsize="small", loc="upper left")

    width = _bin_width(end)
    bins = np.arange(0.0, end + width, width)
    axis_side = {volume: "left"}
    # First receipts outnumber messages created about N to 1: each gets its own scale.
    created = volume.twinx()
    axis_side[created] = "right"
    handles = []
    for axis, name, colour, label, kind in (
            (volume, logformat.GOSSIP_RECEIVED, PALETTE["live"], "first receipts", "stepfilled"),
            (created, logformat.GOSSIP_GENERATED, PALETTE["generated"], "messages created", "step")):
        if times[name]:
            *_, patches = axis.hist(times[name], bins=bins, weights=np.full(len(times[name]), 1 / width),
                                    histtype=kind, color=colour, alpha=0.55 if kind == "stepfilled" else 1.0,
                                    lw=1.8, label=f"{label} ({len(times[name])}), per s: {axis_side[axis]} axis")
            handles.extend(patches[:1])
        axis.yaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
        axis.set_ylim(0, max(axis.get_ylim()[1], 1) * 1.35)  # headroom for the legend
    volume.set_ylabel("receipts / s", color=PALETTE["live"])
    created.set_ylabel("created / s", color=PALETTE["generated"])
    volume.set_title(f"bins of {width:g} s", fontsize="small", loc="right")
    if handles:  # on the twin: it is drawn last, so nothing crosses the legend
        created.legend(handles=handles, fontsize="small", loc="upper right")

    rows = ((logformat.PING_MISSED, PALETTE["missed"], "|", "ping missed"),
            (logformat.DEAD_NODE_REPORTED, PALETTE["dead"], "v", "dead node reported"),
            (logformat.PL_REMOVED, PALETTE["removed"], "s", "removed from a Peer List"))
    for row, (name, colour, marker, _) in enumerate(rows):
        xs = times[name]
        liveness.scatter(xs, np.full(len(xs), row), color=colour, marker=marker, s=40, zorder=3)
    for number, death in enumerate(view.deaths):
        liveness.axvline(death.last_seen - view.start, color=PALETTE["dead"], lw=1, ls=":",
                         label="a dead peer's last log line" if number == 0 else None)
    liveness.set_yticks(range(len(rows)), [f"{label} ({len(times[name])})" for name, *_, label in rows],
                        fontsize="small")
    liveness.set_ylim(-0.7, len(rows) - 0.3)
    liveness.set_xlabel("time since the first log line (s)")
    liveness.set_xlim(-0.01 * end, end * 1.01)
    if view.deaths:
        liveness.legend(fontsize="x-small", loc="best")
    elif not any(times[name] for name, *_ in rows):
        liveness.text(0.5, 0.5, "no deaths detected", transform=liveness.transAxes, ha="center", va="center",
                      color=PALETTE["text"], fontsize="small")


def _bin_width(span: float) -> float:
    """A round bin width (1, 2 or 5 times a power of ten) giving about 60 bins, at least 1 ms."""
    raw = max(span / 60, 0.001)
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


def _placeholder(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=PALETTE["text"], fontsize="large")
    ax.set_xticks([])
    ax.set_yticks([])


FIGURES = {
    "topology": draw_topology,
    "degrees": draw_degrees,
    "propagation": draw_propagation,
    "timeline": draw_timeline,
}
SIZES = {"topology": (10, 9.5), "degrees": (12, 5.5), "propagation": (12, 5.5), "timeline": (12, 8)}
