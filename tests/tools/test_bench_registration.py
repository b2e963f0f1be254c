"""bench.py's registration section: a seed with a state file timed beside one keeping its state in memory.

No timing thresholds: what is checked is that both seeds answered every
registration, that the one with --state wrote each to its file, and that the
table row carries the figures.
"""

from __future__ import annotations

import json
import re
import subprocess

from gossipnet.node.seedstate import SeedState
from gossipnet.run import launch


def test_the_registration_section_times_both_seeds_and_the_state_seed_wrote_every_registration(tmp_path):
    out, kept = tmp_path / "bench.json", tmp_path / "kept"
    for _ in range(2):  # a kept directory's earlier state file belongs to another seed: the bench starts afresh
        done = subprocess.run([*launch.module_command("gossipnet.bench"), "--only", "registration", "--quick",
                               "--json", str(out), "--keep", str(kept)], env=launch.module_env(), cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        report = json.loads(out.read_text())
        result = report["sections"]["registration"]
        assert "error" not in result, result
    count, warmup = result["registrations"], result["warmup"]
    assert count == report["plan"]["registrations"]
    for name in ("memory", "state", "added"):
        assert {"median_s", "p99_s", "mean_s"} <= result[name].keys()
    assert result["memory"]["median_s"] > 0 and result["state"]["median_s"] > 0
    assert result["journal"]["registered_s"] > 0 and result["journal"]["linked_s"] > 0
    state = SeedState.open(kept / "registration-state" / "seed.sqlite")
    assert len(state.load().peers) == warmup + count
    state.close()
    [row] = [line for line in done.stdout.splitlines() if line.startswith("| 8 |")]
    cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]
    assert cells[1] == "Registration with a state file" and "--state: median" in cells[3]
    assert "in memory: median" in cells[4] and "added per registration" in cells[5]
