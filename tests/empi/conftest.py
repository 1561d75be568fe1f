"""Fixtures of the EMPI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from yilianti.empi import online
from yilianti.empi.matching import RULES_V4


@pytest.fixture
def rules_v4(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Online matching by rules v4 (hand-set weights): the tests whose registrations were built on v4's
    weights and thresholds (a homophone + birth date + address with another phone is v4's review band;
    v5, estimated from the data, links it). Records and candidates then record v4."""
    monkeypatch.setattr(online, "RULES", RULES_V4)
    yield
