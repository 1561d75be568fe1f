"""The HTTP answer of a database that is not available now: 503 with Retry-After, never 500.

Which failures those are is kit/dbfaults.py's to say (the data layers use it too); this module maps them
to the answer: `busy` when only the pool had no free connection, `unavailable` otherwise.
"""

from __future__ import annotations

from yilianti.exceptions import AppError
from yilianti.kit.dbfaults import database_unavailable, pool_exhausted

RETRY_AFTER_SECONDS = 2


class Unavailable(AppError):
    status, code, default_message = 503, "unavailable", "系统暂时不可用，请稍后重试"


class BodyTooLarge(AppError):
    status, code, default_message = 413, "too_large", "请求内容过大"


def fault_of(exc: BaseException) -> AppError | None:
    """The 503 answer of an unavailable database (`busy` when only the pool had no free connection), or None."""
    if pool_exhausted(exc):
        return AppError("系统繁忙，请稍后重试", code="busy", status=503)
    return Unavailable() if database_unavailable(exc) else None
