"""Errors of the simulators package.

Exception tree::

    SimulatorError
    ├── FleetSpecError    a fleet spec file is broken (``file: field: what is wrong``)
    ├── FaultError        a fault was asked for with bad parameters or at the wrong time
    └── LinkError         a device link could not connect or lost its connection
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of everything the simulators raise on purpose."""


class FleetSpecError(SimulatorError):
    """A fleet spec is invalid; the message names the file and the field."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class FaultError(SimulatorError):
    """A fault cannot be injected as asked (unknown parameter, wrong board, nothing to replay)."""


class LinkError(SimulatorError):
    """A device link failed; ``device_id`` says which node, the message says why."""

    def __init__(self, device_id: str, message: str) -> None:
        self.device_id = device_id
        super().__init__(f"{device_id}: {message}")
