"""How the peer consumer takes messages: one as soon as it lands, a backlog in one go."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.aio.msg import Msg

from backend.federation.consumer import (
    BACKLOG_TIMEOUT_S,
    FETCH_BATCH,
    FETCH_TIMEOUT_S,
    backlog_size,
    next_batch,
)


def _msg(pending: int, seq: int = 1) -> Msg:
    # The reply subject JetStream delivers with: $JS.ACK.<stream>.<consumer>.<delivered>.
    # <stream seq>.<consumer seq>.<timestamp ns>.<pending>
    reply = f"$JS.ACK.AURORA_FROM_b.federation-a.1.{seq}.{seq}.1764622800000000000.{pending}"
    return Msg(_client=None, subject="aurora.alerts.federation.critical", reply=reply)  # type: ignore[arg-type]


class FakeSub:
    """Answers fetch() from a script; records what it was asked."""

    def __init__(self, *answers: list[Msg] | BaseException) -> None:
        self._answers = list(answers)
        self.calls: list[tuple[int, float | None]] = []

    async def fetch(self, batch: int = 1, timeout: float | None = 5) -> list[Msg]:
        self.calls.append((batch, timeout))
        answer = self._answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.mark.parametrize(
    ("pending", "expected"), [(0, 0), (1, 1), (5, 5), (FETCH_BATCH, FETCH_BATCH - 1), (10**6, 63)]
)
def test_the_backlog_is_what_the_server_says_is_waiting_capped(pending: int, expected: int) -> None:
    assert backlog_size(_msg(pending)) == expected


def test_a_message_without_jetstream_metadata_has_no_backlog() -> None:
    assert backlog_size(Msg(_client=None, reply="")) == 0  # type: ignore[arg-type]
    assert backlog_size(Msg(_client=None, reply="_INBOX.x")) == 0  # type: ignore[arg-type]


def test_a_lone_message_is_returned_without_a_second_request() -> None:
    first = _msg(pending=0)
    sub = FakeSub([first])
    assert asyncio.run(next_batch(sub)) == [first]
    assert sub.calls == [(1, FETCH_TIMEOUT_S)]


def test_a_backlog_behind_the_first_message_is_fetched_in_one_request() -> None:
    first, rest = _msg(pending=3, seq=1), [_msg(2 - i, seq=2 + i) for i in range(3)]
    sub = FakeSub([first], rest)
    assert asyncio.run(next_batch(sub)) == [first, *rest]
    assert sub.calls == [(1, FETCH_TIMEOUT_S), (3, BACKLOG_TIMEOUT_S)]


def test_a_backlog_fetch_that_times_out_still_hands_over_the_first_message() -> None:
    first = _msg(pending=2)
    sub = FakeSub([first], TimeoutError())
    assert asyncio.run(next_batch(sub)) == [first]


def test_nothing_arriving_is_a_timeout_for_the_caller() -> None:
    sub: Any = FakeSub(TimeoutError())
    with pytest.raises(TimeoutError):
        asyncio.run(next_batch(sub))


class NakRecorder(Msg):
    """A message that records its nak instead of sending it."""

    naks = 0

    async def nak(self, delay: float | None = None) -> None:
        self.naks += 1


def test_a_shutdown_during_the_backlog_fetch_gives_the_first_message_back() -> None:
    first = NakRecorder(
        _client=None,  # type: ignore[arg-type]
        reply="$JS.ACK.AURORA_FROM_b.federation-a.1.1.1.1764622800000000000.2",
    )
    sub = FakeSub([first], asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(next_batch(sub))
    assert first.naks == 1
