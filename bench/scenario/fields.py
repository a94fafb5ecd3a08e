"""Field types shared by every part of a scenario file: durations, ids, the strict base."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``1.5``, ``"1.5s"``, ``"500ms"`` or ``"2m"``; negative values refused."""
    if isinstance(value, bool):
        raise ValueError(  # noqa: TRY004 - pydantic reports only ValueError as a field error
            "a duration is a number of seconds or a string like '500ms', '2s'"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration; write e.g. 2, '2s', '500ms' or '1m'")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        raise ValueError(  # noqa: TRY004 - pydantic reports only ValueError as a field error
            "a duration is a number of seconds or a string like '500ms', '2s'"
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


#: Seconds; YAML may say ``2``, ``"2s"``, ``"500ms"`` or ``"1m"``.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m)?\s*$"},
            ],
            "description": "seconds, or a string like '500ms', '2s', '1m'",
        }
    ),
]
DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
SiteId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
BadgeUid = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{8,20}$")]


class Strict(BaseModel):
    """Base of every part of a scenario file: unknown keys are refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
