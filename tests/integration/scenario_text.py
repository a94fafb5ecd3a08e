"""Scenario files as the runner and plugin tests write them: site ``a`` with 1 s unlocks and
one simulated door, so each test spells out only its steps."""

SITE = "sites:\n  a:\n    settings: {unlock_duration_s: 1}\n"


def door_scenario(name: str, door: str, steps: str, *, grant: str = "", head: str = "") -> str:
    """The YAML of scenario ``name`` on site ``a`` with door ``door`` (a simulated
    stm32f401-door); ``grant`` is a badge uid allowed on that door, ``head`` more top-level
    keys, ``steps`` the YAML list under ``steps:``."""
    grants = f"grants:\n  - {{uid: {grant}, doors: [{door}]}}\n" if grant else ""
    fleet = f"fleet:\n  - {{id: {door}, board: stm32f401-door}}\n"
    return f"name: {name}\n{head}{SITE}{fleet}{grants}steps:{steps}"


def operator_unlock(name: str, door: str, *, head: str = "") -> str:
    """A scenario that passes on a healthy bench: an operator unlocks ``door``, and it is
    unlocked within 2 s (step "an operator unlock")."""
    steps = f"""
  - name: an operator unlock
    command: {{device: {door}, verb: unlock}}
    expect:
      - lock: {{device: {door}, state: unlocked, within: 2s}}
"""
    return door_scenario(name, door, steps, head=head)


def ungranted_swipe(name: str, door: str, uid: str, expect: str) -> str:
    """A scenario that fails on a healthy bench: badge ``uid``, which nobody granted, is
    swiped at ``door``, and ``expect`` (one YAML expectation of what a grant would do) waits."""
    steps = f"""
  - name: a badge nobody granted
    swipe: {{device: {door}, uid: {uid}}}
    expect:
      - {expect}
"""
    return door_scenario(name, door, steps)
