"""The door's solenoid lock as a pure state machine (no simpy, no I/O).

Rules (seed 001 and DESIGN.md): the door opens only on the backend's ``unlock``; it relocks
``duration_s`` after the unlock (a later unlock restarts the timer); ``lock`` closes it at
once; ``lockdown`` closes it and holds it shut — ``unlock`` and ``lock`` are ignored until
``lockdown_clear``; ``keepalive`` never changes the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from backend.contract import CommandVerb

#: Relock delay when an unlock command carries no ``duration_s`` (DESIGN.md example).
DEFAULT_UNLOCK_S = 5


class LockState(StrEnum):
    """What the solenoid is doing."""

    LOCKED = "locked"
    UNLOCKED = "unlocked"
    LOCKDOWN = "lockdown"


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one verb: whether it was obeyed, the new state, when to relock."""

    applied: bool
    state: LockState
    relock_at_s: float | None
    generation: int


@dataclass(slots=True)
class DoorLock:
    """State plus the relock deadline; ``generation`` tags the current unlock's timer."""

    state: LockState = LockState.LOCKED
    relock_at_s: float | None = None
    generation: int = 0

    def apply(self, verb: CommandVerb, now_s: float, duration_s: float | None = None) -> Transition:
        """Apply ``verb`` at ``now_s``; returns what happened (ignored verbs: applied False)."""
        applied = True
        if verb is CommandVerb.UNLOCK:
            if self.state is LockState.LOCKDOWN:
                applied = False
            else:
                self.state = LockState.UNLOCKED
                self.generation += 1
                self.relock_at_s = now_s + (duration_s or DEFAULT_UNLOCK_S)
        elif verb is CommandVerb.LOCK:
            if self.state is LockState.LOCKDOWN:
                applied = False
            else:
                self._close(LockState.LOCKED)
        elif verb is CommandVerb.LOCKDOWN:
            self._close(LockState.LOCKDOWN)
        elif verb is CommandVerb.LOCKDOWN_CLEAR:
            if self.state is LockState.LOCKDOWN:
                self._close(LockState.LOCKED)
            else:
                applied = False
        # KEEPALIVE: answered by the node, the lock does not move.
        return Transition(applied, self.state, self.relock_at_s, self.generation)

    def relock_due(self, generation: int, now_s: float) -> bool:
        """Relock if the timer of unlock ``generation`` is still the live one; True if it did."""
        if (
            self.state is LockState.UNLOCKED
            and generation == self.generation
            and self.relock_at_s is not None
            and now_s >= self.relock_at_s
        ):
            self._close(LockState.LOCKED)
            return True
        return False

    def _close(self, state: LockState) -> None:
        self.state = state
        self.relock_at_s = None
        self.generation += 1
