"""Bounds on a scenario file's YAML before it is constructed: how deep it nests and how
far its aliases expand (the fuzz tier found a RecursionError and a "billion laughs" file).
Pure; the loader reports a returned ``(node, message)`` as ``file:line: message``."""

from __future__ import annotations

import yaml

#: Deepest nesting a scenario may have (the shipped ones stay under 10).
MAX_DEPTH = 64
#: Most values a scenario may expand to once aliases are followed (the shipped ones stay
#: under 2,000): aliases are welcome for shared settings, a "billion laughs" file is not.
MAX_EXPANDED_NODES = 100_000


def structure_problem(root: yaml.Node) -> tuple[yaml.Node, str] | None:
    """Refuse what would cost more to read than a scenario can mean: nesting deeper than
    MAX_DEPTH, or aliases that expand to more than MAX_EXPANDED_NODES values (a few lines
    that would become billions of items). Iterative, and it stops at the budget."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    expanded = 0
    while stack:
        node, depth = stack.pop()
        expanded += 1
        if expanded > MAX_EXPANDED_NODES:
            return (
                node,
                f"expands to more than {MAX_EXPANDED_NODES:,} values once its aliases "
                "(*name) are followed; write a smaller file",
            )
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            continue
        if depth > MAX_DEPTH:
            return node, f"nested more than {MAX_DEPTH} levels deep"
        children = (
            [v for pair in node.value for v in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        stack.extend((child, depth + 1) for child in children)
    return None
