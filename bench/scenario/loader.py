"""Read scenario files; every problem is reported as ``file:line: what is wrong``.

PyYAML's composer keeps the position of every node, so a pydantic error location
(``("steps", 2, "swipe", "uid")``) is mapped back to the line that holds the bad value (or
the bad key, for an unknown key). Nothing here raises anything but
:class:`ScenarioLoadError`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from bench.errors import ScenarioError
from bench.scenario.actions import GrantAction
from bench.scenario.schema import NodeSpec, Scenario
from bench.scenario.token_steps import token_references
from bench.scenario.yaml_limits import MAX_DEPTH, structure_problem
from simulators.board_names import BoardKind

#: The file suffixes read as scenarios.
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file."""

    line: int | None
    message: str


class ScenarioLoadError(ScenarioError):
    """A scenario file is broken; ``problems`` lists every ``line: message`` found."""

    def __init__(self, path: str, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(path, first.line, first.message)

    def lines(self) -> list[str]:
        """Every problem as ``file:line: message``."""
        return [
            f"{self.path}:{p.line}: {p.message}" if p.line else f"{self.path}: {p.message}"
            for p in self.problems
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario and where it came from."""

    path: Path
    scenario: Scenario

    @property
    def name(self) -> str:
        """The scenario's readable name."""
        return self.scenario.name


def load_scenario(path: Path | str) -> LoadedScenario:
    """Read and validate one scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioLoadError(str(path), [Problem(None, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioLoadError(str(path), [Problem(None, f"cannot read: {error}")]) from None
    return LoadedScenario(path, parse_scenario(text, str(path)))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario YAML ``text``; ``source`` names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        # PyYAML's composer recurses once per nesting level; no scenario nests like this.
        raise ScenarioLoadError(
            source, [Problem(None, f"nested more than {MAX_DEPTH} levels deep")]
        ) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or str(error)
        raise ScenarioLoadError(source, [Problem(line, f"not valid YAML: {problem}")]) from None
    except yaml.YAMLError as error:
        raise ScenarioLoadError(source, [Problem(None, f"not valid YAML: {error}")]) from None
    if node is None:
        raise ScenarioLoadError(
            source, [Problem(None, "the file is empty; a scenario needs `name` and `steps`")]
        )
    if not isinstance(node, yaml.MappingNode):
        raise ScenarioLoadError(
            source,
            [Problem(_line(node), "a scenario is a mapping with `name`, `sites`, `steps`, ...")],
        )
    shape = structure_problem(node)
    if shape is not None:
        raise ScenarioLoadError(source, [Problem(_line(shape[0]), shape[1])])
    duplicates = list(_duplicate_keys(node))
    if duplicates:
        raise ScenarioLoadError(source, duplicates)
    try:
        data = yaml.SafeLoader(text).get_single_data()
    except yaml.YAMLError as error:  # composed fine, constructing failed (e.g. bad tag)
        raise ScenarioLoadError(source, [Problem(None, f"not valid YAML: {error}")]) from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioLoadError(source, _problems(node, error)) from None
    problems = [
        Problem(_line(locate(node, loc)), message) for loc, message in cross_check(scenario)
    ]
    if problems:
        raise ScenarioLoadError(source, problems)
    return scenario


_STEPS_KEY = re.compile(r"^steps\s*:", re.MULTILINE)


def looks_like_scenario(path: Path) -> bool:
    """A YAML file with a top-level ``steps:`` key (fleet specs and other YAML have none).

    A file that cannot be read counts, so that reading it reports the problem.
    """
    if path.suffix not in SUFFIXES or path.name.startswith("."):
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True
    return _STEPS_KEY.search(text) is not None


def iter_scenario_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Scenario files named by ``paths``: files as given, folders searched recursively.

    In a folder, whatever it is called, a scenario is a ``.yaml``/``.yml`` file with a
    top-level ``steps:`` key (:func:`looks_like_scenario`); hidden files and folders are
    skipped.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if not hidden and child.is_file() and looks_like_scenario(child):
                    yield child
        else:
            yield path


# ---------------------------------------------------------------- locating errors


def _line(node: yaml.Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1


def locate(root: yaml.Node, loc: Sequence[int | str], *, key: bool = False) -> yaml.Node:
    """The deepest node along ``loc``; ``key`` returns the last key node instead."""
    node = root
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            if part == "[key]":
                continue
            found = None
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    found = key_node if (last and key) else value_node
                    break
            if found is None:
                return node
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _problems(root: yaml.Node, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = [part for part in item["loc"] if not _is_branch_label(part)]
        kind = item["type"]
        where = ".".join(str(p) for p in loc)
        if kind == "extra_forbidden":
            node = locate(root, loc, key=True)
            parent = ".".join(str(p) for p in loc[:-1]) or "the top level"
            message = f"unknown key {loc[-1]!r} in {parent}" + _renamed(loc)
        elif kind == "missing":
            node = locate(root, loc[:-1])
            message = f"missing key {loc[-1]!r}" + (
                f" in {'.'.join(map(str, loc[:-1]))}" if loc[:-1] else ""
            )
        else:
            node = locate(root, loc, key="[key]" in item["loc"])
            msg = item["msg"].removeprefix("Value error, ")
            message = f"{where}: {msg}" if where else msg
        problems.append(Problem(_line(node), message))
    # A renamed key (`id:` for `device:`) also makes the new key "missing": say it once.
    renamed = {
        (tuple(item["loc"][:-1]), _RENAMED_KEYS[str(item["loc"][-1])])
        for item in error.errors(include_url=False)
        if item["type"] == "extra_forbidden" and _renamed(item["loc"])
    }
    problems = [
        problem
        for problem, item in zip(problems, error.errors(include_url=False), strict=True)
        if not (
            item["type"] == "missing" and (tuple(item["loc"][:-1]), str(item["loc"][-1])) in renamed
        )
    ]
    problems.sort(key=lambda p: p.line or 0)
    return problems


def _is_branch_label(part: int | str) -> bool:
    # Union branches show up in locations as type names ("float", "function-before[...]");
    # they are not keys of the file.
    # Step and expectation models are tagged "<swipe>", "<lock>" by the schema.
    return isinstance(part, str) and (
        ("[" in part and part != "[key]")
        or (part.startswith("<") and part.endswith(">"))
        or part in {"float", "int", "str", "none"}
    )


#: Keys of earlier versions of the format, and what to write instead.
_RENAMED_KEYS = {
    "id": "device",
    "as_device": "device",
}


def _renamed(loc: Sequence[int | str]) -> str:
    # `fleet` entries define a device with `id:`; everywhere else a device is `device:`.
    new = _RENAMED_KEYS.get(str(loc[-1]))
    if new is None or (loc and loc[0] == "fleet"):
        return ""
    return f"; write `{new}:` (one key names a device in every action and expectation)"


def _duplicate_keys(node: yaml.Node) -> Iterator[Problem]:
    # PyYAML keeps the last of two equal keys silently; a scenario author never means that.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    yield Problem(_line(key_node), f"duplicate key {key_node.value!r}")
                seen.add(key_node.value)
            yield from _duplicate_keys(value_node)
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            yield from _duplicate_keys(child)


# ---------------------------------------------------------------- cross references


#: Actions/expectations that need a simulated node to act on.
_NEEDS_NODE = {"swipe", "drift", "fault"}
_DOOR_BOARDS = frozenset({BoardKind.STM32F401_DOOR, BoardKind.STM32F401_ACCESS})


def cross_check(scenario: Scenario) -> list[tuple[tuple[int | str, ...], str]]:
    """References between parts of a valid scenario: (location, message) per problem."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    nodes = {node.id: node for node in scenario.fleet}
    sites = set(scenario.sites)

    def site_ok(loc: tuple[int | str, ...], site: str | None) -> None:
        if site is not None and site not in sites:
            problems.append((loc, f"unknown site {site!r}; this scenario has {_names(sites)}"))

    def node_ok(loc: tuple[int | str, ...], device: str, what: str) -> None:
        if device not in nodes:
            problems.append(
                (
                    loc,
                    f"{what} needs a device of the fleet; {device!r} is not one "
                    f"(fleet: {_names(nodes) or 'empty'})",
                )
            )

    for site, spec in scenario.sites.items():
        for key, message in spec.problems().items():
            problems.append((("sites", site, "settings", key), message))
    for index, node in enumerate(scenario.fleet):
        problem = node_options_problem(node)
        if problem is not None:
            problems.append((("fleet", index, "options"), f"{node.id}: {problem}"))

    def doors_ok(loc: tuple[int | str, ...], grant: GrantAction) -> None:
        # A grant for a door that is not in the fleet is a typo the backend would accept
        # silently: the badge then "fails" at the right door for the wrong reason.
        for d_index, door in enumerate(grant.doors):
            if door == "*":
                continue
            node = nodes.get(door)
            if node is None:
                problems.append(
                    (
                        (*loc, "doors", d_index),
                        f"grant for {door!r}, which is not a device of the fleet "
                        f"(fleet: {_names(nodes) or 'empty'}; `*` grants every door)",
                    )
                )
            elif node.emulated is None and node.board not in _DOOR_BOARDS:
                problems.append(
                    (
                        (*loc, "doors", d_index),
                        f"grant for {door!r}, a {node.board}: only "
                        f"{' and '.join(sorted(_DOOR_BOARDS))} nodes read badges",
                    )
                )

    for index, grant in enumerate(scenario.grants):
        site_ok(("grants", index, "site"), grant.site)
        doors_ok(("grants", index), grant)
    last_at = -1.0
    for index, step in enumerate(scenario.steps):
        base: tuple[int | str, ...] = ("steps", index)
        if step.at is not None:
            if step.at < last_at:
                problems.append(
                    (
                        (*base, "at"),
                        f"`at: {step.at:g}` is earlier than a previous step's "
                        f"`at: {last_at:g}`; steps run in file order",
                    )
                )
            last_at = step.at
        akey = step.action_key
        action: Any = step.action
        if akey in _NEEDS_NODE:
            node_ok((*base, akey, "device"), action.device, f"`{akey}`")
            board = nodes.get(action.device)
            if board is not None and board.port is not None:
                problems.append(
                    (
                        (*base, akey, "device"),
                        f"`{akey}` needs a simulated node; {action.device} is a real board "
                        f"on {board.port} (do it by hand, and expect what follows)",
                    )
                )
            elif board is not None and board.emulated is not None and akey != "swipe":
                problems.append(
                    (
                        (*base, akey, "device"),
                        f"`{akey}` needs a simulated node; {action.device} runs real firmware "
                        "under QEMU (a swipe goes through its PN532; build another image for "
                        "drift)",
                    )
                )
        if akey == "attest" and action.respond != "honest":
            node_ok((*base, akey, "device"), action.device, "`attest` with `respond`")
            board = nodes.get(action.device)
            if board is not None and (board.port is not None or board.emulated is not None):
                problems.append(
                    ((*base, akey, "respond"), "`respond` needs a simulated node, not a real board")
                )
        if akey is not None:
            site_ok((*base, akey, "site"), getattr(action, "site", None))
            site_ok((*base, akey, "from_site"), getattr(action, "from_site", None))
        if isinstance(action, GrantAction):
            doors_ok((*base, "grant"), action)
        if akey in {"partition", "heal"} and len(sites) < 2:
            problems.append(((*base, akey), f"`{akey}` needs two sites"))
        for e_index, expectation in enumerate(step.expect):
            eloc = (*base, "expect", e_index, expectation.key)
            body = expectation.body
            site_ok((*eloc, "site"), getattr(body, "site", None))
            device: str | None = getattr(body, "device", None)
            if expectation.key in {"command", "no_command", "lock"} and device is not None:
                node_ok((*eloc, "device"), device, f"`{expectation.key}`")
                door = nodes.get(device)
                if (
                    expectation.key == "lock"
                    and door
                    and door.emulated is None
                    and door.board is not BoardKind.STM32F401_DOOR
                ):
                    problems.append(
                        (
                            (*eloc, "device"),
                            "`lock` needs a stm32f401-door node or an emulated door",
                        )
                    )
                if expectation.key == "lock" and door and door.port is not None:
                    problems.append(
                        (
                            (*eloc, "device"),
                            f"`lock` needs a simulated door; the lock of the real board "
                            f"{device} cannot be observed (expect its `command` instead)",
                        )
                    )
            for ref in ("peer", "origin"):
                site_ok((*eloc, ref), getattr(body, ref, None))
    problems.extend(token_references(scenario.steps))
    return problems


@functools.cache
def _group_adapter() -> TypeAdapter[Any]:
    from simulators.fleetspec import Group  # only when a scenario has a fleet

    return TypeAdapter(Group)


def node_group(node: NodeSpec) -> Any:
    """The fleet spec's group for ``node`` (its board's config model checks ``options``).

    Raises pydantic's ``ValidationError`` when the options do not fit the board.
    """
    if node.board is None:
        raise ValueError(f"{node.id} is emulated: it has no simulator model")
    raw: dict[str, Any] = {"board": node.board.value, "id_pattern": "scenario-{n}", **node.options}
    if node.firmware_version is not None:
        raw["firmware_version"] = node.firmware_version
    return _group_adapter().validate_python(raw)


def node_options_problem(node: NodeSpec) -> str | None:
    """Why ``node.options`` do not fit its board's model (the fleet spec's), or None."""
    if node.emulated is not None:
        return None  # no model: the schema already refuses options on an emulated node
    try:
        node_group(node)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        return f"options.{where}: {first['msg']}" if where else str(first["msg"])
    return None


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))


def scenario_data_error(path: str, message: str) -> ScenarioLoadError:
    """A load error without a line (e.g. a file the runner cannot use)."""
    return ScenarioLoadError(path, [Problem(None, message)])


__all__ = [
    "SUFFIXES",
    "LoadedScenario",
    "Problem",
    "ScenarioLoadError",
    "iter_scenario_files",
    "load_scenario",
    "parse_scenario",
]
