"""The national order of delivery statuses (pending → 01 → 03 → 04 → 05 → 06, or 01 → 02; forward
jumps from 03 and 04; 04/05 repeated without moving), and the
recall answers (15, 16) kept apart from it."""

from __future__ import annotations

from itertools import pairwise

from services.exchange.delivery.status import RECALL_ANSWERS, REPEATABLE, REPORTABLE, TRANSITIONS, StatusCode

S = StatusCode
MAIN = {S.PENDING, S.ARRIVED, S.REJECTED, S.ACCEPTED, S.ASSIGNED, S.PROCESSING, S.COMPLETED}
RECALL = {S.RECALL_REQUESTED, S.RECALL_AGREED, S.RECALL_REFUSED}
TERMINAL = {S.REJECTED, S.COMPLETED}


def test_codes_are_the_national_ones() -> None:
    assert [code.value for code in StatusCode] == ["pending", "01", "02", "03", "04", "05", "06", "13", "15", "16"]
    assert set(StatusCode) == MAIN | RECALL


def test_every_main_status_has_an_entry_and_recall_codes_none() -> None:
    assert set(TRANSITIONS) == MAIN
    assert all(following in MAIN for steps in TRANSITIONS.values() for following in steps)


def test_main_path_moves_one_step_at_a_time() -> None:
    path = [S.PENDING, S.ARRIVED, S.ACCEPTED, S.ASSIGNED, S.PROCESSING, S.COMPLETED]
    for current, following in pairwise(path):
        assert following in TRANSITIONS[current], f"{current} → {following}"
    assert TRANSITIONS[S.PENDING] == (S.ARRIVED,)


def test_only_an_arrived_delivery_can_be_rejected_or_accepted() -> None:
    assert set(TRANSITIONS[S.ARRIVED]) == {S.REJECTED, S.ACCEPTED}
    assert [code for code, following in TRANSITIONS.items() if S.REJECTED in following] == [S.ARRIVED]
    assert [code for code, following in TRANSITIONS.items() if S.ACCEPTED in following] == [S.ARRIVED]


def test_every_code_is_reachable_from_pending() -> None:
    seen, frontier = {S.PENDING}, [S.PENDING]
    while frontier:
        for following in TRANSITIONS[frontier.pop()]:
            if following not in seen:
                seen.add(following)
                frontier.append(following)
    assert seen == MAIN


def test_terminal_states_have_no_successors() -> None:
    assert {code for code, following in TRANSITIONS.items() if not following} == TERMINAL


def test_no_step_goes_back_or_stays() -> None:
    order = list(StatusCode)
    for current, following in TRANSITIONS.items():
        assert S.PENDING not in following
        assert current not in following
        assert all(order.index(f) > order.index(current) for f in following), current


def test_recipients_report_01_to_06_and_answer_recalls_with_15_or_16() -> None:
    assert RECALL_ANSWERS == (S.RECALL_AGREED, S.RECALL_REFUSED)
    assert set(REPORTABLE) == (MAIN - {S.PENDING}) | {S.RECALL_AGREED, S.RECALL_REFUSED}
    assert S.RECALL_REQUESTED not in REPORTABLE  # 13 is the sender's


def test_repeats_are_04_and_05_only_and_never_move_back() -> None:
    assert set(REPEATABLE) == {S.ASSIGNED, S.PROCESSING}
    for current, repeated in REPEATABLE.items():
        assert set(repeated) <= {S.ASSIGNED, S.PROCESSING}
        assert not set(repeated) & set(TRANSITIONS[current])  # a repeat is never also a move
        assert all(list(StatusCode).index(code) <= list(StatusCode).index(current) for code in repeated)


def test_registered_documents_may_skip_to_in_progress_or_completed() -> None:
    assert set(TRANSITIONS[S.ACCEPTED]) == {S.ASSIGNED, S.PROCESSING, S.COMPLETED}
    assert set(TRANSITIONS[S.ASSIGNED]) == {S.PROCESSING, S.COMPLETED}
