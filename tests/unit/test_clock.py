"""The clock tests, ``--now`` and the 2023 replay use (DESIGN §3: the clock is
injected): aware instants only, stored as UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from peakpilot.clock import FrozenClock
from peakpilot.errors import InvalidInput

BEIJING = timezone(timedelta(hours=8))
START = datetime(2023, 10, 20, 9, tzinfo=BEIJING)


def test_it_stands_still_until_moved() -> None:
    clock = FrozenClock(START)
    assert clock.now() == START and clock.now().tzinfo is UTC
    assert clock.now() == clock.now()


def test_it_moves_to_an_instant_and_by_a_delta() -> None:
    clock = FrozenClock(START)
    clock.set(datetime(2023, 11, 15, tzinfo=BEIJING))
    assert clock.now() == datetime(2023, 11, 14, 16, tzinfo=UTC)
    clock.advance(timedelta(hours=10))
    assert clock.now() == datetime(2023, 11, 15, 2, tzinfo=UTC)
    clock.advance(timedelta(0))
    clock.set(clock.now())
    assert clock.now() == datetime(2023, 11, 15, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(lambda c: FrozenClock(datetime(2023, 10, 20, 9)), id="naive start"),
        pytest.param(lambda c: c.set(datetime(2023, 10, 21, 9)), id="naive set"),
    ],
)
def test_a_naive_datetime_is_refused(move: Callable[[FrozenClock], object]) -> None:
    clock = FrozenClock(START)
    with pytest.raises(InvalidInput, match="has no UTC offset"):
        move(clock)
    assert clock.now() == START
