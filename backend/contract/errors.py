"""Errors of the contract package: a violation says which rule, which field and why."""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    """Why a message was refused; the label of the ``rejected_messages_total`` metric."""

    OVERSIZE = "oversize"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    BAD_DEVICE_ID = "bad_device_id"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    BAD_VALUE = "bad_value"
    DEVICE_ID_MISMATCH = "device_id_mismatch"
    TOO_DEEP = "too_deep"
    DUPLICATE_KEY = "duplicate_key"


class ContractError(Exception):
    """Root of everything the contract package raises."""


class ContractViolation(ContractError):
    """A message breaks the wire contract.

    ``field`` is the dotted path of the offending field ("" for the whole message) and
    ``detail`` a sentence a firmware engineer can act on.
    """

    def __init__(self, reason: RejectReason, detail: str, field: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.field = field
        where = f" (field {field!r})" if field else ""
        super().__init__(f"{reason.value}{where}: {detail}")

    def one_line(self) -> str:
        """The violation as one line, for logs and the bridge's console."""
        return str(self)
