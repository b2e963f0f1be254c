"""The seed's dead-node rule (deadnode.py), row by row of docs/PROTOCOL.md §6, with no network.

Each decision table row of §6.1, §6.2 and §6.3 has a row here, and so has
each rule of §6.1's *Counting* and §6.3's looking again.  A probe's outcome
is handed in (``alive``), as a seed hands in what its liveness check found;
test_seed.py runs the same rows that need a probe through a real seed over
sockets.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gossipnet.config import CONFIRMATIONS, MAX_SILENT_PROBES
from gossipnet.protocol import deadnode
from gossipnet.protocol.deadnode import Ignore, Neighbours, Probe, ProbeSilent, Reject, Remove, Removed, Wait

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "docs" / "PROTOCOL.md"

# The accused X, its neighbours A-D, an outsider that is no neighbour of X, and a seed S.
X, A, B, C, D, OUTSIDER, S = "X", "A", "B", "C", "D", "O", "S"


def neighbours(eligible=(A, B), reported=(), accused=(), lost=(), disconnected=False) -> Neighbours:
    return Neighbours(frozenset(eligible), frozenset(reported), frozenset(accused), frozenset(lost), disconnected)


def settle(check: deadnode.Check, alive=frozenset(), removable: bool = True, now=None) -> tuple[object, list]:
    """Drive ``check`` as a seed does: a probe finds the peers in ``alive``; a removal
    succeeds if ``removable``; after silent probes the table reads ``now`` (handed in even
    when one answered, which the rule must then disregard).  Returns the decision and the
    steps taken on the way."""
    steps = []
    while True:
        step = check.step
        if isinstance(step, Probe):
            check.probed(step.peer in alive)
        elif isinstance(step, ProbeSilent):
            answered = any(peer in alive for peer in step.neighbours)
            check.silent_probed(answered, now)
        elif isinstance(step, Remove):
            check.removed(removable)
        else:
            return step, steps
        steps.append(step)


def report(reporter=A, accused=X, *, listed=True, reporter_listed=True, key_bound=False, signed=False,
           verified=False, current=True, still_listed=True, before=None, alive=frozenset(), removable=True):
    """One DEAD_NODE, as seed.Seed.decide takes it: rows 1-2, 3-5, 6-8, then 9-12.

    ``listed``: the accused is in the PL; ``reporter_listed``, ``key_bound``,
    ``signed``, ``verified``: the reporter's vetting; ``current``: the table
    still holds the accused's incarnation looked at first, and
    ``still_listed``: the reporter is still registered, when the report is
    counted; ``before``: the accused's neighbours before this report counts.
    """
    refusal = (deadnode.screen(reporter, accused, listed)
               or deadnode.vet(reporter_listed, key_bound, signed, verified))
    if refusal is not None:
        return refusal, []
    counted = deadnode.count(reporter, (neighbours() if before is None else before) if current else None,
                             reporter_listed=still_listed)
    if isinstance(counted, Reject):
        return counted, []
    return settle(deadnode.on_report(accused, counted), alive, removable)


WAITING = "waiting for confirmation: 1 of 2 neighbours reported"
DEAD_2 = Remove("dead: 2 neighbours reported, seed's liveness check failed", announce=True)
DEAD_1 = Remove("dead: 1 neighbours reported, seed's liveness check failed", announce=True)
GONE_1 = Remove("dead: 1 neighbours reported, its connection to the seed ended, seed's liveness check failed",
                announce=True)
LEFT = neighbours(eligible=(B,), lost=(A,))  # A reported, then left the PL; B is silent
LEFT_1 = Remove("dead: 0 neighbours reported, 1 more reported and then left, seed's liveness check failed",
                announce=True)

# §6.1, one row per line of its table: (row, what happens, decision, reason, steps on the way).
REPORT_ROWS = [
    (1, lambda: report(listed=False), "ignored", "not in the peer list", []),
    (2, lambda: report(reporter=X), "rejected", "a peer cannot report itself", []),
    (3, lambda: report(reporter=OUTSIDER, reporter_listed=False), "rejected",
     "reporter is not a registered live peer here", []),
    (4, lambda: report(key_bound=True, signed=False), "rejected", "unsigned, but the reporter has a key", []),
    (5, lambda: report(key_bound=True, signed=True, verified=False), "rejected", "bad signature", []),
    (6, lambda: report(current=False), "rejected", "already removed or re-registered", []),
    (7, lambda: report(still_listed=False), "rejected", "reporter is not a registered live peer here", []),
    (8, lambda: report(reporter=OUTSIDER), "rejected",
     "not a neighbour of the accused (by the accused's own link reports)", []),
    (9, lambda: report(), "accepted", WAITING, []),
    (10, lambda: report(reporter=B, before=neighbours(reported=(A,)), alive={X}), "rejected",
     "accused answered the seed's liveness check", [Probe(X)]),
    (11, lambda: report(reporter=B, before=neighbours(reported=(A,)), removable=False), "ignored",
     "already removed or re-registered", [Probe(X), DEAD_2]),
    (12, lambda: report(reporter=B, before=neighbours(reported=(A,))), "removed",
     "2 of 2 neighbours reported and the seed's liveness check failed", [Probe(X), DEAD_2]),
    (13, lambda: report(before=neighbours(disconnected=True)), "removed",
     "1 of 2 neighbours reported, its connection to the seed ended, and the seed's liveness check failed",
     [Probe(X), GONE_1]),
]


@pytest.mark.parametrize(("row", "case", "decision", "reason", "steps"), REPORT_ROWS, ids=[
    f"6.1-row{row}" for row, *_ in REPORT_ROWS])
def test_a_dead_node_report(row, case, decision, reason, steps):
    got, taken = case()
    assert (got.decision, got.reason) == (decision, reason)
    assert taken == steps
    # Only a probe that the accused answered voids the reports counted against it.
    assert getattr(got, "void_reports", False) == (row == 10)


# §6.2, one row per line of its table.
NOTICE_ROWS = [
    (1, {"from_seed": False}, "rejected", "sender is not a seed in the config", []),
    (2, {"listed": False}, "ignored", "not in the peer list", []),
    (3, {"alive": {X}}, "rejected", "accused answered the seed's liveness check", [Probe(X)]),
    (4, {"removable": False}, "ignored", "already removed or re-registered",
     [Probe(X), Remove("dead: removed by seed S, seed's liveness check failed", announce=False)]),
    (5, {}, "removed", "the seed's own liveness check failed too",
     [Probe(X), Remove("dead: removed by seed S, seed's liveness check failed", announce=False)]),
]


@pytest.mark.parametrize(("row", "facts", "decision", "reason", "steps"), NOTICE_ROWS, ids=[
    f"6.2-row{row}" for row, *_ in NOTICE_ROWS])
def test_a_removal_notice(row, facts, decision, reason, steps):
    check = deadnode.on_notice(S, X, from_seed=facts.get("from_seed", True), listed=facts.get("listed", True))
    got, taken = settle(check, facts.get("alive", frozenset()), facts.get("removable", True))
    assert (got.decision, got.reason) == (decision, reason)
    assert taken == steps
    assert not getattr(got, "void_reports", False)  # a notice leaves the reports counted here as they are


# §6.3, one row per line of its table: (row, the accused's neighbours, outcomes, decision (None:
# nothing is logged), reason, steps on the way).  See RECONSIDER_ROWS below for more cases.
RECHECK_ROWS = [
    (1, neighbours(disconnected=True), {}, None, None, []),  # a connection's end alone removes nobody
    (2, LEFT, {"alive": {X}}, "rejected", "accused answered the seed's liveness check", [Probe(X)]),
    (3, LEFT, {}, "removed",
     "0 of 1 neighbours reported, 1 more reported and then left, and the seed's liveness check failed",
     [Probe(X), LEFT_1]),
    (4, neighbours(eligible=(A, B), reported=(A,), disconnected=True), {}, "removed",
     "1 of 2 neighbours reported, its connection to the seed ended, and the seed's liveness check failed",
     [Probe(X), GONE_1]),
    (5, neighbours(eligible=(A, B), reported=(A,), accused=(B,)), {"alive": {B}}, None, None,
     [ProbeSilent((B,))]),
    (6, neighbours(eligible=(A, B), reported=(A,), accused=(B,)),
     {"now": neighbours(eligible=(A, B), reported=(A,), accused=(B,))}, "removed",
     "1 of 1 neighbours reported (1 more failed the seed's liveness check themselves) "
     "and the seed's liveness check failed",
     [ProbeSilent((B,)), Probe(X), DEAD_1]),
    (7, neighbours(eligible=(A, B, C), reported=(A,), accused=(B,)), {}, None, None, []),
]


@pytest.mark.parametrize(("row", "now", "outcomes", "decision", "reason", "steps"), RECHECK_ROWS,
                         ids=[f"6.3-row{row}" for row, *_ in RECHECK_ROWS])
def test_looking_again_without_a_new_report(row, now, outcomes, decision, reason, steps):
    got, taken = settle(deadnode.reconsider(X, now), **outcomes)
    assert (getattr(got, "decision", None), getattr(got, "reason", None)) == (decision, reason)
    assert taken == steps


def documented_rows(section: str) -> list[tuple[int, str | None, str | None]]:
    """(row, decision, reason) of each line of the decision table of ``section`` in PROTOCOL.md;
    None where the table says no decision is logged (—)."""
    text = PROTOCOL.read_text(encoding="utf-8")
    part = re.split(r"\n##+ ", text.split(f"### {section} ", 1)[1], maxsplit=1)[0]
    rows = []
    for row, decision, reason in re.findall(r"^\| (\d+) \| .* \| (`\w+`|—) \| (`[^`]+`|—) \|$", part, re.MULTILINE):
        rows.append((int(row), decision.strip("`") if decision != "—" else None,
                     reason.strip("`") if reason != "—" else None))
    return rows


def test_the_decision_tables_of_the_protocol_each_have_their_rows_here():
    """Every line of the tables in §6.1, §6.2 and §6.3 has a row above with its decision and reason."""
    for section, rows in {"6.1": REPORT_ROWS, "6.2": NOTICE_ROWS, "6.3": RECHECK_ROWS}.items():
        documented = documented_rows(section)
        tested = [(row, decision, reason) for row, *_, decision, reason, _ in rows] if section == "6.3" else [
            (row, decision, reason) for row, _, decision, reason, _ in rows]
        assert [(row, decision) for row, decision, _ in documented] == [
            (row, decision) for row, decision, _ in tested], section
        for (row, _, reason), (_, _, actual) in zip(documented, tested, strict=True):
            if reason is None:
                assert actual is None, (section, row)
                continue
            pattern = re.sub(r"<\w+>", r"\\d+", re.escape(reason))
            assert re.fullmatch(pattern, actual), (section, row, reason, actual)


# --- Counting (§6.1) ---------------------------------------------------------------------


def test_a_reporter_counts_once_however_often_it_reports():
    once = deadnode.count(A, neighbours(), reporter_listed=True)
    again = deadnode.count(A, once, reporter_listed=True)
    assert once == again == neighbours(reported=(A,))
    assert deadnode.on_report(X, again).step == Wait(WAITING)


@pytest.mark.parametrize(("eligible", "needed"), [((A,), 1), ((A, B), 2), ((A, B, C, D), CONFIRMATIONS)])
def test_the_count_needed_is_the_confirmations_or_every_eligible_neighbour_if_fewer(eligible, needed):
    assert deadnode.tally(neighbours(eligible=eligible)).needed == needed
    # A peer with a single neighbour: that neighbour's report is all there can be.
    counted = deadnode.count(A, neighbours(eligible=eligible), reporter_listed=True)
    step = deadnode.on_report(X, counted).step
    assert step == (Probe(X) if needed == 1 else Wait(f"waiting for confirmation: 1 of {needed} neighbours reported"))


def test_one_report_is_enough_once_the_seed_saw_the_accused_s_connection_end():
    # Still a report from an eligible neighbour, and still the seed's own check: never the end alone.
    counted = deadnode.count(A, neighbours(eligible=(A, B, C), disconnected=True), reporter_listed=True)
    assert counted.disconnected and deadnode.on_report(X, counted).step == Probe(X)
    assert not deadnode.tally(neighbours(disconnected=True)).enough
    assert deadnode.count(OUTSIDER, neighbours(disconnected=True), reporter_listed=True) == Reject(
        "not a neighbour of the accused (by the accused's own link reports)")


def test_a_report_keeps_what_the_table_says_of_lost_reporters_and_the_connection():
    counted = deadnode.count(B, neighbours(eligible=(B, C), lost=(A,), disconnected=True), reporter_listed=True)
    assert counted == neighbours(eligible=(B, C), reported=(B,), lost=(A,), disconnected=True)


@pytest.mark.parametrize(("accused", "reconsider"), [((B,), True), ((), False)])
def test_a_report_that_leaves_the_count_short_asks_to_reconsider_only_if_every_silent_neighbour_is_accused(
        accused, reconsider):
    counted = deadnode.count(A, neighbours(eligible=(A, B), accused=accused), reporter_listed=True)
    assert deadnode.on_report(X, counted).step == Wait(WAITING, reconsider=reconsider)
    counted = deadnode.count(A, neighbours(eligible=(A, B, C), accused=accused), reporter_listed=True)
    assert deadnode.on_report(X, counted).step.reconsider is False  # C is silent and not accused


# --- Neighbours that die together (§6.1): reconsidering, without a new report -----------

SHORT = neighbours(eligible=(A, B), reported=(A,), accused=(B,))  # B silent, and accused itself
MANY_SILENT = tuple("PQRSTUVW"[:MAX_SILENT_PROBES + 1])

# (what happens, the neighbours read, outcomes, decision (None: nothing to log), steps on the way)
RECONSIDER_ROWS = [
    ("no report counts any more", neighbours(reported=()), {}, None, []),
    ("a removal left only neighbours that reported", neighbours(eligible=(A,), reported=(A,)), {},
     Removed("1 of 1 neighbours reported and the seed's liveness check failed"),
     [Probe(X), Remove("dead: 1 neighbours reported, seed's liveness check failed", announce=True)]),
    ("the silent neighbours are accused and fail the seed's check too", SHORT, {"now": SHORT},
     Removed("1 of 1 neighbours reported (1 more failed the seed's liveness check themselves) "
             "and the seed's liveness check failed"),
     [ProbeSilent((B,)), Probe(X), Remove("dead: 1 neighbours reported, seed's liveness check failed", announce=True)]),
    ("a silent neighbour answers: it may still report", SHORT, {"alive": {B}, "now": SHORT}, None,
     [ProbeSilent((B,))]),
    ("probing stops at the first silent neighbour that answers",
     neighbours(eligible=(A, B, C, D), reported=(A,), accused=(B, C, D)), {"alive": {C}}, None,
     [ProbeSilent((B, C, D))]),
    (f"up to {MAX_SILENT_PROBES} silent neighbours are probed",
     neighbours(eligible=(A, *MANY_SILENT[1:]), reported=(A,), accused=MANY_SILENT),
     {"now": neighbours(eligible=(A, *MANY_SILENT[1:]), reported=(A,), accused=MANY_SILENT)},
     Removed(f"1 of 1 neighbours reported ({MAX_SILENT_PROBES} more failed the seed's liveness check themselves) "
             "and the seed's liveness check failed"),
     [ProbeSilent(MANY_SILENT[1:]), Probe(X),
      Remove("dead: 1 neighbours reported, seed's liveness check failed", announce=True)]),
    ("a silent neighbour that is not accused is waited for", neighbours(eligible=(A, B, C), reported=(A,),
                                                                       accused=(B,)), {}, None, []),
    (f"more than {MAX_SILENT_PROBES} silent neighbours are waited for",
     neighbours(eligible=(A, *MANY_SILENT), reported=(A,), accused=MANY_SILENT), {}, None, []),
    ("the accused left the PL during the silent probes", SHORT, {"now": None}, None, [ProbeSilent((B,))]),
    ("the count is taken again after the silent probes: a new neighbour is waited for", SHORT,
     {"now": neighbours(eligible=(A, B, C), reported=(A,), accused=(B,))}, None, [ProbeSilent((B,))]),
    ("the accused answers its own check: the reports are void", neighbours(eligible=(A,), reported=(A,)),
     {"alive": {X}}, Reject("accused answered the seed's liveness check", void_reports=True), [Probe(X)]),
    ("the accused re-registered or was removed meanwhile: nothing to log", neighbours(eligible=(A,), reported=(A,)),
     {"removable": False}, None,
     [Probe(X), Remove("dead: 1 neighbours reported, seed's liveness check failed", announce=True)]),
    ("a reporter left, and the accused left the PL during the seed's check: nothing to log", LEFT,
     {"removable": False}, None, [Probe(X), LEFT_1]),
    ("a reporter left, but the reports still counted are enough: they decide", neighbours(
        eligible=(B, C), reported=(B, C), lost=(A,)), {},
     Removed("2 of 2 neighbours reported and the seed's liveness check failed"), [Probe(X), DEAD_2]),
    ("a reporter left while silent neighbours are accused: the seed checks the accused, not them",
     neighbours(eligible=(B, C), reported=(B,), accused=(C,), lost=(A,)), {"alive": {X}},
     Reject("accused answered the seed's liveness check", void_reports=True), [Probe(X)]),
    ("the accused's connection ended, and one report counts: the seed checks it",
     neighbours(eligible=(A, B, C), reported=(A,), disconnected=True), {"alive": {X}},
     Reject("accused answered the seed's liveness check", void_reports=True), [Probe(X)]),
]


@pytest.mark.parametrize(("what", "now", "outcomes", "decision", "steps"), RECONSIDER_ROWS,
                         ids=[what for what, *_ in RECONSIDER_ROWS])
def test_reconsidering_an_accusation(what, now, outcomes, decision, steps):
    got, taken = settle(deadnode.reconsider(X, now), **outcomes)
    assert (got, taken) == (decision, steps)


# --- The rule's own bookkeeping ------------------------------------------------------------


def test_a_check_takes_only_the_outcome_of_the_step_it_is_at():
    check = deadnode.on_notice(S, X, from_seed=True, listed=True)
    assert check.step == Probe(X)
    with pytest.raises(TypeError):
        check.removed(True)
    check.probed(False)
    with pytest.raises(TypeError):
        check.probed(False)
    check.removed(True)
    assert check.step == Removed("the seed's own liveness check failed too")


def test_decisions_and_steps_are_values():
    assert Ignore("x") == Ignore("x") and hash(Wait("x")) == hash(Wait("x"))
    assert [kind.decision for kind in (Wait, Reject, Ignore, Removed)] == ["accepted", "rejected", "ignored", "removed"]
    with pytest.raises(AttributeError):
        Probe(X).peer = A
