"""One clock for the whole platform: store UTC, show Asia/Shanghai; freezable in tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
_frozen: datetime | None = None


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def today_local() -> date:
    return to_local(now()).date()


def to_local(value: datetime) -> datetime:
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they are UTC by convention
        value = value.replace(tzinfo=UTC)
    return value.astimezone(SHANGHAI)


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def fmt_local(value: datetime | None, with_seconds: bool = False) -> str:
    if value is None:
        return ""
    return to_local(value).strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    global _frozen
    previous = _frozen
    _frozen = as_utc(at)
    try:
        yield
    finally:
        _frozen = previous


def advance(delta: timedelta) -> None:
    global _frozen
    if _frozen is None:
        raise RuntimeError("advance() only works on a frozen clock")
    _frozen = _frozen + delta
