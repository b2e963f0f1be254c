"""Fault scenarios on the lab's two backends: crash, hang, cable cut, seed loss, seeds that restart,
churn; and the lab's teardown.

Each scenario runs once per backend (:func:`outcome` keeps its result for
the module), through labrun.Lab, with fast timings; the tests then assert the
checks of lab/verdict.py their scenario is about.  A run waits on the log with
deadlines and always tears down (every process it started, every namespace
and link it made); every test asserts that nothing was left.  The namespace
backend needs root and ``ip netns``: without them its tests are skipped,
saying why.  Checks marked ``needs_repair`` (the overlay connected again,
every message everywhere, a revived peer linked again) hold only once peers
repair the overlay and rejoin after faults: the tests that assert them are
test_after_a_crash_the_overlay_is_repaired_..., test_a_peer_continued_after_a_hang_rejoins_...,
and test_after_a_cut_the_sides_reconnect_...
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gossipnet.lab import cli as lab
from gossipnet.lab import net as labnet
from gossipnet.lab.faults import Fault, Scenario, parse_fault
from gossipnet.lab.run import Lab, Result
from gossipnet.lab.verdict import held_by
from gossipnet.logs import logformat
from gossipnet.run import launch

# Timings that make a scenario take seconds: a death is reported 2.1-2.8 s after it happens.
TIMINGS = {"gossip_interval": 0.3, "ping_interval": 0.7, "ping_misses": 3, "probe_timeout": 0.7}
# Seconds a whole scenario may take, start-up and teardown included, before the lab gives up.
RUN_TIMEOUT = 75.0
# Seconds a lab.py process gets to start its nodes, and then to stop after a signal.
CLI_TIMEOUT = 45.0


def scenario(seeds: int, peers: int, *faults: str, gossip_count: int | None = None) -> Scenario:
    plan = Scenario(seeds, peers, tuple(parse_fault(text) for text in faults), rng_seed=7, **TIMINGS)
    return replace(plan, gossip_count=gossip_count) if gossip_count else plan.lasting()


SCENARIOS = {
    # 30% of the peers (the best linked whose deaths stay detectable) SIGKILLed at once, mid-gossip.
    "crash": scenario(3, 10, "crash:2:30%"),
    # One peer SIGSTOPped for 5 s (it is reported after ~3 s), then SIGCONTed.
    "hang": scenario(3, 8, "hang:2:5"),
    # Three peers' cables cut for 6 s, each alone; then plugged back in.
    "cut": scenario(3, 9, "cut:2:6:3"),
    # One seed of three killed for good; then two peers join.
    "seeds-minority": scenario(3, 4, "seeds-down:1:1", "join:2:2", gossip_count=20),
    # Two seeds of three killed; a peer joins and must fail (after ~4 s of tries); the seeds come
    # back; the peer starts again.
    "seeds-majority": scenario(3, 2, "seeds-down:1:2:7", "join:2", "restart:10", gossip_count=20),
    # Two seeds of three (those every seed of the most peers is among) SIGKILLed and started again
    # at once, empty; then three newcomers join.
    "seeds-restart": scenario(3, 8, "seeds-restart:2", "join:4:3"),
    # For 16 s, every 2 s, a peer (a neighbour of the last one when it can be) SIGKILLed and a new
    # one started: neighbours die together.
    "churn": scenario(3, 10, "churn:2:16"),
}
# Seconds a scenario may take, when it needs longer than RUN_TIMEOUT on a loaded machine.
TIMEOUTS = {"churn": 150.0}


@functools.cache
def namespaces_unavailable() -> str | None:
    return labnet.namespaces_unavailable()


@pytest.fixture(params=labnet.BACKENDS)
def backend(request) -> str:
    if request.param == labnet.Namespaces.name and (why := namespaces_unavailable()):
        pytest.skip(f"namespace backend: {why}")
    return request.param


_outcomes: dict[tuple[str, str], Result | BaseException] = {}


def outcome(name: str, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Result:
    """The result of a scenario on a backend, run the first time it is asked for."""
    key = (name, backend)
    if key not in _outcomes:
        directory = tmp_path_factory.mktemp(f"{name}-{backend}")
        lab = Lab(SCENARIOS[name], labnet.make_backend(backend), directory / "outputfile.txt", directory,
                  timeout=TIMEOUTS.get(name, RUN_TIMEOUT))
        try:
            _outcomes[key] = lab.run()
        except Exception as exc:  # kept, so every test of the scenario reports it
            _outcomes[key] = exc
    result = _outcomes[key]
    if isinstance(result, BaseException):
        raise result
    assert not result.leftovers, f"left behind: {result.leftovers}"
    assert result.outcome in ("complete", "settled"), (result.outcome, result.problem)
    return result


def assert_checks(result: Result, *names: str) -> None:
    failed = [str(result.check(name)) for name in names if not result.check(name).ok]
    assert not failed, "\n".join(failed)


# --- Crash --------------------------------------------------------------------------------------


def test_crashed_peers_are_reported_and_removed_and_no_live_peer_is(backend, tmp_path_factory):
    result = outcome("crash", backend, tmp_path_factory)
    crashed = [incident for incident in result.facts.incidents if incident.kind == "crash"]
    assert len(crashed) == 3
    assert not {incident.node for incident in crashed} & result.facts.live
    # Reported within (misses + 1) ping intervals plus slack, removed by each seed that held
    # them within two probes more; nobody else reported or removed; nothing lost, nothing twice.
    assert_checks(result, "detected", "no false reports", "joins", "exactly once", "nothing lost")


def test_after_a_crash_the_overlay_is_repaired_and_new_messages_reach_every_live_peer(backend, tmp_path_factory):
    result = outcome("crash", backend, tmp_path_factory)
    crash = min(incident.start for incident in result.facts.incidents)
    after = [message for message in result.run.messages.values()
             if message.origin in result.facts.live and message.created > crash]
    assert after, "no live peer made a message after the crash"
    assert_checks(result, "connected", "delivered", "exactly once")


# --- Hang ---------------------------------------------------------------------------------------


def test_a_hung_peer_is_detected_like_a_crashed_one(backend, tmp_path_factory):
    result = outcome("hang", backend, tmp_path_factory)
    [hang] = [incident for incident in result.facts.incidents if incident.kind == "hang"]
    assert hang.end is not None and hang.end - hang.start >= 5  # SIGCONT comes no earlier than asked
    assert_checks(result, "detected", "no false reports", "joins", "exactly once", "nothing lost")


def test_a_peer_continued_after_a_hang_rejoins_and_receives_new_messages(backend, tmp_path_factory):
    result = outcome("hang", backend, tmp_path_factory)
    [hang] = [incident for incident in result.facts.incidents if incident.kind == "hang"]
    assert hang.node in result.facts.live
    assert_checks(result, "rejoined", "connected", "delivered")


# --- Cable cut (namespaces only) ----------------------------------------------------------------


@pytest.fixture
def namespaces() -> str:
    if why := namespaces_unavailable():
        pytest.skip(f"namespace backend: {why}")
    return labnet.Namespaces.name


def test_each_side_of_a_cut_detects_the_other(namespaces, tmp_path_factory):
    result = outcome("cut", namespaces, tmp_path_factory)
    cut = {incident.node for incident in result.facts.incidents if incident.kind == "cut"}
    assert len(cut) == 3 and cut <= result.facts.live  # plugged back in: live again at the end
    assert_checks(result, "cut detected", "no false reports", "joins", "exactly once", "nothing lost")


def test_after_a_cut_the_sides_reconnect_through_the_seeds(namespaces, tmp_path_factory):
    result = outcome("cut", namespaces, tmp_path_factory)
    assert_checks(result, "rejoined", "connected", "delivered")


def test_a_cut_needs_the_namespace_backend():
    with pytest.raises(ValueError, match="namespace backend"):
        SCENARIOS["cut"].check(can_cut=labnet.Loopback.can_cut)


# --- Seed loss ----------------------------------------------------------------------------------


def test_with_a_minority_of_seeds_down_peers_still_join(backend, tmp_path_factory):
    result = outcome("seeds-minority", backend, tmp_path_factory)
    assert [join.majority_up for join in result.facts.joins] == [True, True]
    assert len(result.facts.live) == 6
    assert_checks(result, "joins", "no false reports", "exactly once", "nothing lost", "connected", "delivered")


def test_with_a_majority_of_seeds_down_a_joining_peer_fails_clearly_and_succeeds_once_they_return(
        backend, tmp_path_factory):
    result = outcome("seeds-majority", backend, tmp_path_factory)
    first, second = result.facts.joins
    assert (first.majority_up, second.majority_up) == (False, True)
    assert first.node == second.node  # started again on its own address
    assert first.returncode == 1
    assert "majority" in first.error and "\n" not in first.error
    failed = [event for event in result.run.events
              if event.event == logformat.START_FAILED and event.node == first.node]
    assert len(failed) == 1
    assert second.node in result.facts.live
    assert_checks(result, "joins", "no false reports", "exactly once", "nothing lost")


def test_a_peer_that_joins_once_the_seeds_return_is_linked_to_the_rest(backend, tmp_path_factory):
    # The seeds come back empty.  With these rng seeds the newcomer registers with the one seed
    # that kept its Peer List, and links at once.  (One that registers only with seeds that came
    # back empty learns of no peer and stays alone unless it asks the seeds again.)
    result = outcome("seeds-majority", backend, tmp_path_factory)
    assert_checks(result, "connected", "delivered")


# --- Seeds that restart (without --state) and churn -----------------------------------------------


def test_after_a_majority_of_seeds_restarts_every_peer_is_listed_again_and_nothing_is_lost(backend,
                                                                                          tmp_path_factory):
    result = outcome("seeds-restart", backend, tmp_path_factory)
    restarted = [incident for incident in result.facts.incidents if incident.kind == "seeds-down"]
    assert len(restarted) == 2 and all(incident.end is not None for incident in restarted)
    # The hard case is there: peers whose every seed restarted (one pair of the three holds
    # at least a third of them), so that only their seed connections bring them back.
    seeds = {incident.node for incident in restarted}
    stranded = [peer for peer in result.facts.live
                if (held := held_by(result.run, peer, restarted[0].start)) and held <= seeds]
    assert stranded
    assert len(result.facts.joins) == 3 and all(join.node in result.facts.live for join in result.facts.joins)
    # Every live peer is listed again where it was; every message of a live peer (those made
    # after the restart, the stranded peers' included) reaches every live peer, the newcomers too.
    assert_checks(result, "relisted", "no false reports", "joins", "exactly once", "nothing lost", "connected",
                  "delivered")
    assert not [event for event in result.run.events if event.event == logformat.GOSSIP_REJECTED]


def test_under_churn_every_dead_peer_is_removed_everywhere_and_no_live_one_is(backend, tmp_path_factory):
    result = outcome("churn", backend, tmp_path_factory)
    killed = [incident for incident in result.facts.incidents if incident.kind == "crash"]
    assert len(killed) == 8 and len(result.facts.joins) == 8
    # Neighbours died together: some victim was a neighbour of the one before it.
    assert any(later.node in earlier.neighbours for earlier, later in zip(killed, killed[1:], strict=False))
    assert_checks(result, "detected", "no false reports", "joins", "exactly once", "nothing lost", "connected",
                  "delivered")
    for seed in result.facts.seeds:  # what the seeds hold at the end: no dead peer
        dead = {incident.node for incident in killed}
        assert not dead & held_at_end(result.run, seed)


def held_at_end(run, seed) -> set:
    """The peers ``seed`` lists at the end of the log (its PL_ADDED less its PL_REMOVED since it started)."""
    held: set = set()
    for event in run.events:
        if event.node != seed or event.role != "seed":
            continue
        if event.event == logformat.STARTED:
            held.clear()
        elif event.event == logformat.PL_ADDED:
            held.add(event.address("peer"))
        elif event.event == logformat.PL_REMOVED:
            held.discard(event.address("peer"))
    return held


# --- The lab itself: teardown and errors --------------------------------------------------------


class Boom(Exception):
    pass


def test_a_failing_run_still_tears_everything_down(backend, tmp_path):
    class FailingLab(Lab):
        def _follow(self) -> None:
            self._apply(self.scenario.timeline()[0])  # a SIGSTOPped node: the hardest to stop
            raise Boom("a bug in the middle of the run")

    net = labnet.make_backend(backend)
    lab = FailingLab(scenario(2, 2, "hang:0:30"), net, tmp_path / "outputfile.txt", tmp_path)
    with pytest.raises(Boom):
        lab.run()
    processes = [process for node in lab.nodes.values() for process in node.lives]
    assert [node.hung for node in lab.nodes.values()].count(True) == 1
    assert len(processes) == 4 and not [process for process in processes if process.running]
    assert net.leftovers() == [] and lab.leftovers == []
    lab.teardown()  # a second time changes nothing
    assert net.leftovers() == []
    if backend == labnet.Namespaces.name:
        assert net.prefix not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def lab_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*launch.module_command("gossipnet.lab"), *args], capture_output=True, text=True,
                          env=launch.module_env(),
                          cwd=cwd, timeout=CLI_TIMEOUT)


def test_lab_help_and_bad_command_lines(tmp_path):
    done = lab_cli("--help", cwd=tmp_path)
    assert done.returncode == 0 and "--fault" in done.stdout and "hang:AT:DURATION" in done.stdout
    for args, words in ((["--fault", "crash:x:1"], "AT 'x' is not a number"),
                        (["--fault", "melt:1"], "unknown kind 'melt'"),
                        (["--fault", "hang:1"], "expected hang:AT:DURATION[:COUNT]"),
                        (["--loopback", "--fault", "cut:1:2"], "needs the namespace backend"),
                        (["--peers", "3", "--loopback", "--fault", "crash:1:3"], "must leave at least one")):
        done = lab_cli(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr and done.stderr.strip().splitlines()[-1].startswith(f"{lab.PROG}: error:")
        assert not (tmp_path / "outputfile.txt").exists()


def test_without_root_the_namespace_lab_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert labnet.namespaces_unavailable() == "network namespaces need root: run lab.py as root, or use --loopback"
    assert lab.main(["--fast", "--log", str(tmp_path / "outputfile.txt")]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"{lab.PROG}: error: network namespaces need root: run lab.py as root, "
                              "or use --loopback\n")
    assert not (tmp_path / "outputfile.txt").exists()


@pytest.mark.parametrize(("backend", "signum"), [("loopback", signal.SIGINT), ("namespaces", signal.SIGINT),
                                                 ("namespaces", signal.SIGTERM)],
                         ids=["loopback-SIGINT", "namespaces-SIGINT", "namespaces-SIGTERM"])
def test_a_signal_stops_the_lab_and_leaves_nothing_behind(backend, signum, tmp_path):
    if backend == labnet.Namespaces.name and (why := namespaces_unavailable()):
        pytest.skip(f"namespace backend: {why}")
    log, out = tmp_path / "outputfile.txt", tmp_path / "lab.out"
    flags = ["--loopback"] * (backend == labnet.Loopback.name)
    with open(out, "w") as stdout:
        process = subprocess.Popen([*launch.module_command("gossipnet.lab"), "--seeds", "2", "--peers", "3", "--fast",
                                    "--fault", "hang:0:60", "--log", str(log), *flags], env=launch.module_env(),
                                   stdout=stdout, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + CLI_TIMEOUT
        while "stop (hang" not in out.read_text():  # a node is SIGSTOPped: the hardest to stop
            assert process.poll() is None, out.read_text()
            assert time.monotonic() < deadline, f"the lab did not reach its fault: {out.read_text()}"
            time.sleep(0.1)  # polling interval, not synchronisation
        process.send_signal(signum)
        assert process.wait(timeout=CLI_TIMEOUT) == 130
    finally:
        if process.poll() is None:  # the lab did not stop: clean up after it, then fail
            process.kill()
            process.wait()
            clean_up_after(process.pid, log)
    assert "interrupted" in out.read_text()
    pids = [int(event.fields["pid"]) for event in logformat.parse_log(log).events
            if event.event == logformat.STARTED]
    assert len(pids) == 5 and not [pid for pid in pids if alive(pid)]
    if backend == labnet.Namespaces.name:
        assert not namespaces_of(process.pid)


def namespaces_of(lab_pid: int) -> list[str]:
    """The namespaces a lab.py process with this pid made (its prefix: gl + the pid in base 36)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    prefix = re.compile(rf"^gl{labnet._base36(lab_pid)}[0-9a-z]{{2}}-")  # then the run's counter
    return [name for name in listed if prefix.match(name)]


def clean_up_after(lab_pid: int, log: Path) -> None:
    """What a killed lab.py left: its nodes (by the pids of their STARTED lines) and its namespaces."""
    if log.exists():
        for event in logformat.parse_log(log).events:
            if event.event == logformat.STARTED and alive(pid := int(event.fields["pid"])):
                os.kill(pid, signal.SIGKILL)
    if os.geteuid() == 0:
        for name in namespaces_of(lab_pid):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def alive(pid: int) -> bool:
    """A process with this pid runs (a zombie does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_fault_specs_read_back_as_written():
    for text in ("crash:2:30%", "crash:0:3", "hang:2:5:1", "cut:1.5:6:3", "seeds-down:1:2:5", "seeds-down:1:1",
                 "join:2:1", "restart:8", "seeds-restart:2", "seeds-restart:2:1", "churn:2:20", "churn:2:20:1.5"):
        assert str(parse_fault(text)) == text
    assert parse_fault("hang:2:5") == Fault("hang", 2, count=1, duration=5)
    assert SCENARIOS["crash"].count(SCENARIOS["crash"].faults[0]) == 3
    assert SCENARIOS["seeds-restart"].count(SCENARIOS["seeds-restart"].faults[0]) == 2  # a majority of 3
    churn = Scenario(3, 10, (parse_fault("churn:2:7"),))
    assert [(action.at, action.verb) for action in churn.timeline()] == [(2, "churn"), (4, "churn"), (6, "churn")]
    with pytest.raises(ValueError, match="restarts 4 seeds"):
        Scenario(3, 10, (parse_fault("seeds-restart:1:4"),)).check(can_cut=False)
