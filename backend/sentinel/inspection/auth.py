"""Stage 3, auth verification: the addressee is a real, enabled client; the auth-callout
audit is watched for credential stuffing and for one client in two regions at once.

The Auth DB is not read here: the worker hands this stage a snapshot
(:meth:`AuthStage.set_clients`, refreshed from the ``sentinel_clients`` table) and feeds it
the callout's audited decisions (:meth:`AuthStage.observe`). Both are plain data, so the
rules are tested without a database.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

from backend.sentinel.inspection.model import Action, AlertMessage, AuthEvent, Finding, Stage
from backend.sentinel.inspection.rules import AuthRules

#: Distinct clients / sources whose recent failures are remembered, at most.
MAX_WATCHED = 100_000


class AuthStage:
    """Auth checks on messages and on the callout's decisions."""

    def __init__(self, rules: AuthRules) -> None:
        self._rules = rules
        self._enabled: dict[str, bool] = {}
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._regions: OrderedDict[str, dict[str, float]] = OrderedDict()

    def set_clients(self, clients: Iterable[tuple[str, bool]]) -> None:
        """Replace the snapshot of the Auth DB: ``(client_id, enabled)`` pairs."""
        self._enabled = dict(clients)

    def update_client(self, client_id: str, *, enabled: bool) -> None:
        """One client added or changed since the last snapshot."""
        self._enabled[client_id] = enabled

    def inspect(self, message: AlertMessage) -> list[Finding]:
        """Is the addressee a client that exists and is enabled?"""
        enabled = self._enabled.get(message.client_id)
        if enabled is None:
            rule = self._rules.unknown_client
            return [
                Finding(
                    Stage.AUTH,
                    "unknown-client",
                    rule.severity,
                    rule.action,
                    f"no client {message.client_id!r} in the Auth DB",
                    message.client_id,
                )
            ]
        if not enabled:
            rule = self._rules.disabled_client
            return [
                Finding(
                    Stage.AUTH,
                    "disabled-client",
                    rule.severity,
                    rule.action,
                    f"client {message.client_id!r} is disabled",
                    message.client_id,
                )
            ]
        return []

    def observe(self, event: AuthEvent) -> list[Finding]:
        """Findings raised by one audited auth decision."""
        if event.allowed:
            return self._two_regions(event)
        return self._stuffing(event)

    def _stuffing(self, event: AuthEvent) -> list[Finding]:
        rule = self._rules.credential_stuffing
        if not rule.enabled:
            return []
        findings = []
        for kind, key in (("client", event.client_id), ("source", event.source)):
            window = self._failures.get((kind, key))
            if window is None:
                window = self._failures[(kind, key)] = deque()
                while len(self._failures) > MAX_WATCHED:
                    self._failures.popitem(last=False)
            else:
                self._failures.move_to_end((kind, key))
            window.append(event.at_s)
            while window and window[0] <= event.at_s - rule.window_s:
                window.popleft()
            if len(window) >= rule.failures:
                findings.append(
                    Finding(
                        Stage.AUTH,
                        f"credential-stuffing-{kind}",
                        rule.severity,
                        Action.FLAG,
                        f"{len(window)} failed logins in {rule.window_s:g} s for {kind} {key!r} "
                        f"(last: {event.reason})",
                        event.client_id,
                    )
                )
        return findings

    def _two_regions(self, event: AuthEvent) -> list[Finding]:
        rule = self._rules.concurrent_regions
        if not rule.enabled:
            return []
        seen = self._regions.get(event.client_id)
        if seen is None:
            seen = self._regions[event.client_id] = {}
            while len(self._regions) > MAX_WATCHED:
                self._regions.popitem(last=False)
        seen[event.region] = event.at_s
        others = sorted(
            r for r, at in seen.items() if r != event.region and event.at_s - at < rule.window_s
        )
        if not others:
            return []
        return [
            Finding(
                Stage.AUTH,
                "concurrent-regions",
                rule.severity,
                Action.FLAG,
                f"client {event.client_id!r} logged in at {event.region} while "
                f"connected at {', '.join(others)}",
                event.client_id,
            )
        ]
