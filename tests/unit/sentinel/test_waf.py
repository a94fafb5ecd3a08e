"""The WebSocket bridge's WAF limits (pure, time passed in)."""

from __future__ import annotations

from backend.sentinel.wsbridge import Refusal, Waf


def test_size_cap_and_topic_shape() -> None:
    waf = Waf(max_message_bytes=10)
    assert waf.admit("clients/c1/alerts", b"x" * 10, 0.0) == ("c1", None)
    assert waf.admit("clients/c1/alerts", b"x" * 11, 0.0) == ("c1", Refusal.OVERSIZE)
    assert waf.admit("clients/c.1/alerts", b"x", 0.0)[1] is Refusal.BAD_TOPIC
    assert waf.admit("clients/c1/other", b"x", 0.0)[1] is Refusal.BAD_TOPIC
    assert waf.admit("clients/+/alerts", b"x", 0.0)[1] is Refusal.BAD_TOPIC


def test_the_rate_is_limited_per_client_and_refills() -> None:
    waf = Waf(rate_per_s=2.0, burst=3.0)
    results = [waf.admit("clients/c1/alerts", b"x", 0.0)[1] for _ in range(5)]
    assert results == [None, None, None, Refusal.RATE, Refusal.RATE]
    # Another client has its own bucket.
    assert waf.admit("clients/c2/alerts", b"x", 0.0)[1] is None
    # Half a second refills one token at 2/s.
    assert waf.admit("clients/c1/alerts", b"x", 0.5)[1] is None
    assert waf.admit("clients/c1/alerts", b"x", 0.5)[1] is Refusal.RATE
