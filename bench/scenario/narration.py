"""The demo's voice: each step's cause as it starts, what the sites did, what was proven.

Order matters to a viewer: a step's action is announced before it is performed (its
effects can arrive before the HTTP call that caused them returns), so every effect prints
after its cause. Each check is printed in words with its outcome, so the viewer reads what
was proven rather than "2 checks as expected".
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from bench.scenario.actions import (
    AttestAction,
    DriftAction,
    FaultAction,
    OperatorCommandAction,
    RaiseAlertAction,
    Respond,
    SwipeAction,
)
from bench.scenario.console import MARK, ConsoleProgress
from bench.scenario.results import StepResult
from bench.scenario.schema import Step
from bench.scenario.timeline import Event, EventKind

_NARRATED = {
    EventKind.ALERT,
    EventKind.COMMAND,
    EventKind.LOCK,
    EventKind.LINK,
    EventKind.NOTE,
    EventKind.ACTION,
}
_COLOURS = {
    EventKind.ALERT: "yellow",
    EventKind.COMMAND: "blue",
    EventKind.LOCK: "blue",
    EventKind.LINK: "magenta",
    EventKind.ACTION: "dim",
}


def cause_text(action: Any, key: str) -> str:
    """What a step's action does, in a viewer's words (pure)."""
    match action:
        case SwipeAction():
            return f"badge {action.uid} is presented at {action.device}'s reader"
        case DriftAction():
            return f"{action.device}'s firmware is changed (its hash no longer matches)"
        case AttestAction() if action.respond is Respond.HONEST:
            return f"the site challenges {action.device}; it answers with what its flash holds"
        case AttestAction():
            return f"the site challenges {action.device}; it answers {action.respond.value}"
        case RaiseAlertAction():
            where = f" at site {action.site}" if action.site else ""
            return (
                f"an analyst raises a {action.severity.value} {action.type} alert{where} "
                f"through the API: {action.title!r}"
            )
        case OperatorCommandAction():
            where = f" site {action.site}'s" if action.site else " the"
            return f"an operator sends {action.verb.value} to {action.device} through{where} API"
        case FaultAction():
            params = " ".join(f"{k}={v}" for k, v in action.params.items())
            return f"{action.device} is given the fault {action.kind.value} {params}".rstrip()
    return key


class Narrator(ConsoleProgress):
    """The demo's voice: see the module doc."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console)
        self._trust: dict[tuple[str | None, str | None], object] = {}
        self._lock: dict[tuple[str | None, str | None], str] = {}
        #: The last verb a door received since its lock state last changed.
        self._verb: dict[tuple[str | None, str | None], str] = {}
        self._in_step = False

    def step_started(self, step: Step, index: int, t: float) -> None:
        """Announce the step, then its cause (before any of its effects can print)."""
        self._in_step = True
        self.console.print(f"\n[bold cyan]{t:7.2f}s  {escape(step.name)}[/bold cyan]")
        action = step.action
        if action is not None and step.action_key is not None:
            self.console.print(f"  [bold]→ {escape(cause_text(action, step.action_key))}[/bold]")

    def step_finished(self, result: StepResult) -> None:
        """Each check in words, with how long its effect took."""
        self._in_step = False
        if result.error:
            self.console.print(f"  {MARK[False]} [red]{escape(result.error)}[/red]")
        for check in result.expectations:
            took = f" [dim]({check.latency_s * 1000:.0f}ms)[/dim]" if check.latency_s else ""
            self.console.print(f"  {MARK[check.passed]} {escape(check.description)}{took}")
            if not check.passed:
                self.console.print(f"      [red]observed[/red] {escape(check.observed)}")

    def event(self, event: Event) -> None:
        """Alerts, commands, door states, link states and notes as they happen."""
        if event.kind is EventKind.DEVICE:
            self._device(event)
            return
        if event.kind not in _NARRATED:
            return
        if event.kind is EventKind.ACTION and self._in_step:
            return  # announced as the step's cause when it started
        if event.kind is EventKind.COMMAND and event.source != "node":
            return  # the node's receipt is the interesting half
        text = event.summary()
        if event.site:
            text = text.replace(f"[{event.site}]", f"[{event.site}] ", 1)
        if event.kind is EventKind.ACTION:
            text = "setup: " + text
        elif event.kind is EventKind.LOCK:
            text = self._lock_text(event, text)
        elif event.kind is EventKind.COMMAND:
            self._verb[(event.site, event.device)] = str(event.get("verb"))
        self._say(event, _COLOURS.get(event.kind, "white"), text)

    def _lock_text(self, event: Event, text: str) -> str:
        key = (event.site, event.device)
        before = self._lock.get(key)
        verb = self._verb.pop(key, None)
        state = str(event.get("state"))
        self._lock[key] = state
        if before is None:
            return f"{text} (as the door starts)"
        if before == "unlocked" and state == "locked" and verb in (None, "unlock", "keepalive"):
            # No lock verb reached it since it opened: its own unlock period ran out.
            return f"{text} again (its unlock period ran out)"
        return text

    def _device(self, event: Event) -> None:
        key = (event.site, event.device)
        trust = event.get("trust_status")
        if self._trust.get(key) not in (None, trust) and trust == "drift_detected":
            where = f"[{event.site}] " if event.site else ""
            self._say(
                event,
                "magenta",
                f"{where}device {event.device} trust drift_detected, "
                f"risk {event.get('risk_score')}",
            )
        self._trust[key] = trust

    def _say(self, event: Event, colour: str, text: str) -> None:
        self.console.print(f"  [{colour}]{event.t:7.2f}s  {escape(text)}[/{colour}]")
