"""The door: pure lock state machine and the simulated door against every verb order."""

import uuid

import simpy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backend.contract import CommandMessage, CommandVerb, MessageKind, encode
from backend.contract.messages import now_rfc3339
from simulators.boards import DoorNode
from simulators.lock import DEFAULT_UNLOCK_S, DoorLock, LockState
from simulators.outbox import RecordingOutbox

VERBS = list(CommandVerb)


def reference(state: LockState, verb: CommandVerb) -> LockState:
    """The rules of DESIGN.md written as a table (timers aside)."""
    if verb is CommandVerb.LOCKDOWN:
        return LockState.LOCKDOWN
    if state is LockState.LOCKDOWN:
        return LockState.LOCKED if verb is CommandVerb.LOCKDOWN_CLEAR else state
    if verb is CommandVerb.UNLOCK:
        return LockState.UNLOCKED
    if verb is CommandVerb.LOCK:
        return LockState.LOCKED
    return state


@given(st.lists(st.sampled_from(VERBS), max_size=30))
def test_pure_lock_follows_the_rules_in_any_order(verbs: list[CommandVerb]) -> None:
    lock = DoorLock()
    state = LockState.LOCKED
    for verb in verbs:
        before = lock.state
        transition = lock.apply(verb, 0.0, 5)
        state = reference(state, verb)
        assert lock.state is state
        if before is LockState.LOCKDOWN and verb is CommandVerb.UNLOCK:
            assert not transition.applied


def command(verb: CommandVerb, duration_s: int | None = None) -> bytes:
    return encode(
        CommandMessage(
            verb=verb, request_id=str(uuid.uuid4()), issued_at=now_rfc3339(), duration_s=duration_s
        )
    )


def started_door(
    device_id: str, seed: int = 0
) -> tuple[simpy.Environment, RecordingOutbox, DoorNode]:
    """A door started in a fresh virtual-time environment, recording all it sends."""
    env = simpy.Environment()
    out = RecordingOutbox()
    door = DoorNode(env, device_id, out, seed=seed)
    door.start()
    return env, out, door


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(VERBS),
            st.integers(min_value=1, max_value=10),
            st.floats(min_value=0.1, max_value=15),
        ),
        max_size=12,
    )
)
def test_simulated_door_in_virtual_time(steps: list[tuple[CommandVerb, int, float]]) -> None:
    env, _, door = started_door("stm32f401-door-01", seed=3)
    env.run(until=2)
    state = LockState.LOCKED
    relock_at: float | None = None
    for verb, duration_s, gap_s in steps:
        sent_at = float(env.now)
        door.deliver(MessageKind.COMMAND, command(verb, duration_s))
        env.run(until=env.now + 1e-6)
        new = reference(state, verb)
        if verb is CommandVerb.UNLOCK and new is LockState.UNLOCKED:
            relock_at = sent_at + duration_s  # the timer restarts with every obeyed unlock
        elif new is not LockState.UNLOCKED:
            relock_at = None
        state = new
        assert door.lock_state is state
        env.run(until=env.now + gap_s)
        if relock_at is not None:
            # run(until=t) leaves events at exactly t unprocessed; stay clear of that edge.
            assume(abs(env.now - relock_at) > 1e-9)
            if env.now > relock_at:
                state, relock_at = LockState.LOCKED, None
        assert door.lock_state is state, (verb, env.now, relock_at)
    # The door never opened without an unlock it obeyed.
    opened = [t for t, s in door.lock_history if s is LockState.UNLOCKED]
    obeyed = [c.at_s for c in door.commands_received if c.verb is CommandVerb.UNLOCK and c.applied]
    assert len(opened) <= len(obeyed)
    assert all(any(abs(t - a) < 1e-5 for a in obeyed) for t in opened)


def test_door_never_opens_on_a_swipe_and_relocks_after_default() -> None:
    env, out, door = started_door("stm32f401-door-02", seed=1)
    env.run(until=5)
    door.swipe("0455AF21")
    env.run(until=60)
    assert door.lock_state is LockState.LOCKED
    assert len(out.of_kind(MessageKind.BADGE_EVENT)) == 1
    door.deliver(MessageKind.COMMAND, command(CommandVerb.UNLOCK))
    env.run(until=61)
    assert door.lock_state is LockState.UNLOCKED
    env.run(until=60 + DEFAULT_UNLOCK_S + 0.5)
    assert door.lock_state is LockState.LOCKED


def test_lockdown_ignores_unlock_until_clear_and_keepalive_answers() -> None:
    env, out, door = started_door("stm32f401-door-03", seed=1)
    env.run(until=2)
    statuses = len(out.of_kind(MessageKind.STATUS))
    for verb in (CommandVerb.LOCKDOWN, CommandVerb.UNLOCK, CommandVerb.KEEPALIVE):
        door.deliver(MessageKind.COMMAND, command(verb))
    env.run(until=3)
    assert door.lock_state is LockState.LOCKDOWN
    assert [c.applied for c in door.commands_received] == [True, False, True]
    assert len(out.of_kind(MessageKind.STATUS)) == statuses + 1
    door.deliver(MessageKind.COMMAND, command(CommandVerb.LOCKDOWN_CLEAR))
    door.deliver(MessageKind.COMMAND, command(CommandVerb.UNLOCK))
    env.run(until=4)
    assert door.lock_state is LockState.UNLOCKED


def test_malformed_command_is_ignored_and_logged() -> None:
    env, _, door = started_door("stm32f401-door-04")
    env.run(until=2)
    door.deliver(MessageKind.COMMAND, b'{"verb":"open_sesame","request_id":"x","issued_at":"x"}')
    env.run(until=3)
    assert door.lock_state is LockState.LOCKED
    assert door.commands_received == []
    assert "command" in door.rejected_downlinks[0]
