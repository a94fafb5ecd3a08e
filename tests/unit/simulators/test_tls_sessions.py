"""TlsSessions bookkeeping and the storm's message keys (pure; the real resumption is in
tests/integration/test_device_tls_resumption.py)."""

from __future__ import annotations

import ssl
from types import SimpleNamespace
from typing import Any, cast

import pytest

from backend.mqtt import resumable_session, session_alive
from bench.reconnect_storm import BEFORE, storm_key, storm_payload
from simulators.tls_sessions import TlsSessions


def _session(time: float, timeout: float, *, ticket: bool = True) -> Any:
    return SimpleNamespace(time=time, timeout=timeout, has_ticket=ticket)


def test_a_context_is_kept_once_built() -> None:
    sessions = TlsSessions()
    with pytest.raises(KeyError):
        sessions.context("dev-1")
    built = ssl.create_default_context()
    assert sessions.context("dev-1", built) is built
    assert sessions.context("dev-1", ssl.create_default_context()) is built


def test_a_connect_without_tls_counts_as_full_and_keeps_nothing() -> None:
    sessions = TlsSessions()
    context = sessions.context("dev-1", ssl.create_default_context())
    assert not sessions.connected("dev-1", context, None, offered=True)
    assert (sessions.counts.resumed, sessions.counts.full) == (0, 1)
    assert sessions.counts.offered_not_resumed == 1
    assert sessions.session("dev-1", context) is None
    assert len(sessions) == 0


def test_a_session_is_worth_offering_only_with_a_live_ticket() -> None:
    tls = cast(ssl.SSLObject, SimpleNamespace(session=_session(1000.0, 7200.0)))
    assert resumable_session(tls, now=1000.0 + 7199) is not None
    assert resumable_session(tls, now=1000.0 + 7200) is None
    no_ticket = cast(ssl.SSLObject, SimpleNamespace(session=_session(0, 7200, ticket=False)))
    assert resumable_session(no_ticket, now=1.0) is None
    assert resumable_session(None) is None
    assert session_alive(_session(0, 100), now=49.0, lifetime_share=0.5)
    assert not session_alive(_session(0, 100), now=50.0, lifetime_share=0.5)


def test_storm_messages_name_their_device_and_phase() -> None:
    assert storm_key(storm_payload("storm-dev-00001", BEFORE)) == ("storm-dev-00001", BEFORE)
    for hostile in (b"", b"{", b"[]", b'{"device_id":"x"}', b"\xff"):
        assert storm_key(hostile) is None
