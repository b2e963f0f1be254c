"""What a simulation run found: its numbers (``summarise``), their text, and its figures.

Numbers come from a sim.engine.Outcome and the network it ran on:

- reach: of the peers that were there when a message was made and are alive
  at the end (less its origin), the share that got it; a message whose
  origin left before its time is never made and not counted (peers that join
  later get messages too, by catch-up, but are not counted);
- dissemination time: creation to the last of those receipts, for messages
  that reached them all; receipt delay: creation to each receipt;
- hops, and transmissions per message (copies the forwarding rule sent;
  catch-up copies on new links apart);
- detection: for each peer that crashed or left, the first dead-node report
  about it and its removal by every seed that listed it; false reports are
  reports about a peer alive at the time.

The figures draw on matplotlib's Agg backend; this module picks no GUI.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from gossipnet.logs.runlog import spread
from gossipnet.sim.engine import Outcome
from gossipnet.sim.network import Network


def summarise(outcome: Outcome, network: Network, settings: dict | None = None) -> dict:
    """The run's numbers, as plain JSON-ready values."""
    peers = network.peers
    alive = np.frombuffer(bytes(network.alive[:peers]), dtype=np.uint8).astype(bool)
    degrees = np.array([len(network.neighbours[peer]) for peer in range(peers)], dtype=np.int64)
    links = int(degrees.sum()) // 2
    reach, dissemination, delays_all = [], [], []
    hop_counts = np.zeros(1, dtype=np.int64)
    transmissions, catch_up, per_message = [], 0, []
    joined = np.frombuffer(outcome.joined, dtype=np.float64)[:peers]
    made = [record for record in outcome.messages if record.made]
    expected_total = 0
    for record in made:
        received = np.frombuffer(record.received, dtype=np.float64)[:peers]
        expected = alive & (joined <= record.created)
        expected[record.origin] = False
        got = expected & ~np.isnan(received)
        want = int(expected.sum())
        expected_total += want
        share = float(got.sum() / want) if want else 1.0
        delays = received[got] - record.created
        counts = np.bincount(np.frombuffer(record.hops, dtype=np.uint16)[:peers][got])
        if len(counts) > len(hop_counts):
            hop_counts = np.pad(hop_counts, (0, len(counts) - len(hop_counts)))
        hop_counts[:len(counts)] += counts
        reach.append(share)
        complete = float(delays.max()) if share == 1.0 and want else None
        if complete is not None:
            dissemination.append(complete)
        delays_all.append(delays)
        transmissions.append(record.transmissions)
        catch_up += record.catch_up
        per_message.append({"origin": record.origin, "created": record.created, "reach": share,
                            "dissemination": complete, "transmissions": record.transmissions})
    delays_flat = np.concatenate(delays_all) if delays_all else np.array([])
    receipts = int(hop_counts.sum())
    result = {
        "settings": settings or {},
        "peers": peers,
        "live_at_end": int(alive.sum()),
        "links": links,
        "degree": {"min": int(degrees[alive].min()) if alive.any() else 0,
                   "median": float(np.median(degrees[alive])) if alive.any() else 0.0,
                   "max": int(degrees.max()) if peers else 0},
        "degrees": degrees[alive].tolist(),
        "messages": len(made),
        "messages_not_made": len(outcome.messages) - len(made),
        "reach": {"mean": float(np.mean(reach)) if reach else None, "min": float(min(reach)) if reach else None,
                  "complete": sum(1 for share in reach if share == 1.0)},
        "dissemination_s": spread(np.array(dissemination)),
        "receipt_delay_s": spread(delays_flat),
        "hops": {"mean": float(np.arange(len(hop_counts)) @ hop_counts) / receipts if receipts else 0.0,
                 "max": int(np.flatnonzero(hop_counts).max()) if receipts else 0,
                 "counts": {str(hops): int(count) for hops, count in enumerate(hop_counts) if count}},
        "transmissions_per_message": float(np.mean(transmissions)) if transmissions else None,
        "transmissions_per_link": float(np.mean(transmissions)) / links if transmissions and links else None,
        "catch_up_copies": catch_up,
        "reach_curve": _reach_curve(delays_flat, expected_total),
        "detection": _detection(outcome, network, settings or {}),
        "events": outcome.events,
        "simulated_s": outcome.end,
        "per_message": per_message,
    }
    return result


def _reach_curve(delays: np.ndarray, expected: int, points: int = 200) -> dict[str, list[float]]:
    """Share of all expected receipts made by each time since creation (a CDF)."""
    if not len(delays) or not expected:
        return {"time_s": [], "reach": []}
    pooled = np.sort(delays)
    ranks = np.unique(np.linspace(0, len(pooled) - 1, points).astype(np.int64))
    return {"time_s": pooled[ranks].tolist(), "reach": ((ranks + 1) / expected).tolist()}


def _detection(outcome: Outcome, network: Network, settings: dict) -> dict:
    # A neighbour that outlives a departed peer by this much has had time to report it.
    window = (settings.get("ping_misses", network.ping_misses) + 1) * settings.get("ping_interval", 13.0)
    first_report: dict[int, float] = {}
    false_reports = 0
    for time, _, accused, alive_then in outcome.reports:
        if alive_then:
            false_reports += 1
        elif accused not in first_report:
            first_report[accused] = time
    report_delays, removal_delays, undetected, linked = [], [], 0, 0
    for peer, died in outcome.deaths.items():
        if peer in first_report:
            report_delays.append(first_report[peer] - died)
        else:
            undetected += 1
            # Its links when it departed (a departed peer's own links stay as they were).
            linked += any(outcome.deaths.get(neighbour, math.inf) > died + window
                          for neighbour in network.neighbours[peer])
        removed = outcome.removals.get(peer, {})
        listed = {seed.address for seed in network.registered[peer]}
        if removed and listed <= removed.keys():
            removal_delays.append(max(removed[seed] for seed in listed) - died)
    return {"departed": len(outcome.deaths), "reported": len(report_delays), "unreported": undetected,
            "unreported_with_link": linked,
            "removed_everywhere": len(removal_delays),
            "first_report_s": spread(np.array(report_delays)), "removal_s": spread(np.array(removal_delays)),
            "reports": len(outcome.reports), "false_reports": false_reports,
            "seed_decisions": dict(network.decisions)}


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def text(result: dict) -> str:
    """The summary a person reads."""
    degree, reach = result["degree"], result["reach"]
    dissemination, delay, detection = result["dissemination_s"], result["receipt_delay_s"], result["detection"]
    lines = [
        f"peers          {result['peers']} ({result['live_at_end']} alive at the end), {result['links']} links; "
        f"degree min {degree['min']}, median {degree['median']:g}, max {degree['max']}",
        f"messages       {result['messages']}; reach mean {_pct(reach['mean'])}, min {_pct(reach['min'])}, "
        f"{reach['complete']} reached every live peer",
        f"dissemination  median {seconds(dissemination['median'])}, p99 {seconds(dissemination['p99'])} "
        f"(receipt delay median {seconds(delay['median'])}, p99 {seconds(delay['p99'])})",
        f"hops           mean {result['hops']['mean']:.2f}, max {result['hops']['max']}",
        f"transmissions  {_num(result['transmissions_per_message'])} per message "
        f"({_num(result['transmissions_per_link'], 2)} x links); catch-up copies {result['catch_up_copies']}",
    ]
    if detection["departed"]:
        lines.append(
            f"detection      {detection['departed']} departed: {detection['reported']} reported "
            f"(first report median {seconds(detection['first_report_s']['median'])}, "
            f"max {seconds(detection['first_report_s']['max'])}), {detection['removed_everywhere']} removed by every "
            f"seed listing them (median {seconds(detection['removal_s']['median'])}); "
            f"{detection.get('unreported_with_link', 0)} unreported with a link to a peer that outlived it; "
            f"{detection['false_reports']} false reports")
    if result.get("repair", {}).get("rounds"):
        lines.append(f"repair         {result['repair']['rounds']:,} rounds opened {result['repair']['links']:,} links")
    lines.append(f"events         {result['events']:,} over {result['simulated_s']:.1f} simulated s")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


# --- Figures ----------------------------------------------------------------------


def _figure(width: float = 6.4, height: float = 4.2):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def draw_reach(result: dict, path: str) -> None:
    """Reach vs time: receipts made by each time since creation; each message's reach by when it was made."""
    fig = _figure(10.5, 4.2)
    spread, by_message = fig.subplots(1, 2)
    curve = result["reach_curve"]
    if curve["time_s"]:
        times = np.maximum(np.array(curve["time_s"]) * 1000, 1e-3)
        spread.step(times, 100 * np.array(curve["reach"]), where="post")
        spread.set_xscale("log")
    spread.set_xlabel("time since creation (ms, log)")
    spread.set_ylabel("receipts made (% of all expected)")
    spread.set_ylim(0, 101)
    spread.set_title(f"How fast messages spread, N={result['peers']:,}", fontsize=10)
    spread.grid(alpha=0.3)
    messages = result["per_message"]
    by_message.plot([m["created"] for m in messages], [100 * m["reach"] for m in messages], "o", markersize=3)
    for moment in result["settings"].get("crash_times") or ():
        by_message.axvline(moment, color="#d62728", linestyle="--", linewidth=1)
    by_message.set_xlabel("created at (simulated s; dashed: crashes)")
    by_message.set_ylabel("reach (% of live peers)")
    by_message.set_title("Reach of each message", fontsize=10)
    by_message.grid(alpha=0.3)
    fig.savefig(path, dpi=110)


def draw_degrees(result: dict, path: str) -> None:
    """Degree distribution of the live peers on log-log axes."""
    fig = _figure()
    ax = fig.subplots()
    counts = Counter(result["degrees"])
    degrees = sorted(k for k in counts if k > 0)
    if degrees:
        total = sum(counts.values())
        ax.loglog(degrees, [counts[k] / total for k in degrees], "o", markersize=3)
    ax.set_xlabel("degree k (log)")
    ax.set_ylabel("P(k) (log)")
    ax.set_title(f"Degree distribution, N={result['peers']:,}")
    ax.grid(alpha=0.3, which="both")
    fig.savefig(path, dpi=110)


def draw_scale(rows: list[dict], path: str) -> None:
    """Dissemination time (median and p99) against N on a log axis."""
    fig = _figure()
    ax = fig.subplots()
    rows = [row for row in rows if row["dissemination_s"]["median"] is not None]
    sizes = [row["peers"] for row in rows]
    for key, label in (("median", "median"), ("p99", "p99")):
        ax.plot(sizes, [row["dissemination_s"][key] * 1000 for row in rows], "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("peers N (log)")
    ax.set_ylabel("dissemination time (ms)")
    settings = rows[0].get("settings", {}) if rows else {}
    ax.set_title("Time for a message to reach every live peer\n"
                 f"links {settings.get('latency', '?')} ms, {settings.get('processing_ms', '?')} ms per peer, "
                 f"{settings.get('degree_model', '?')} overlay", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    if sizes:
        ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
        ax.set_ylim(0, math.ceil(max(row["dissemination_s"]["p99"] for row in rows) * 1100))
    fig.savefig(path, dpi=110)
