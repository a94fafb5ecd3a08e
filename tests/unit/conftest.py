"""Fixtures the unit tests of more than one folder share."""

from __future__ import annotations

import pytest

from bench.issuer import IssuerKey


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> IssuerKey:
    """A token issuer's signing key (the bench's kind), fresh for each test module."""
    return IssuerKey.ensure(tmp_path_factory.mktemp("issuer"))
