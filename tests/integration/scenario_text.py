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
