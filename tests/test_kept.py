"""fastdb/kept.py, the hot paths' one cache (the subject lookup, the cockpit figures): requests arriving together
share one computation, an answer is refreshed in the background after half its time, and a computation that
answers None or raises leaves nothing kept."""

from __future__ import annotations

import asyncio
import time

import pytest

from yilianti.exceptions import Forbidden
from yilianti.fastdb import kept
from yilianti.fastdb.kept import Kept


def test_requests_arriving_together_share_one_computation() -> None:
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return "answer"

    async def run() -> list[str | None]:
        cache: Kept[str] = Kept(lambda: 60)
        first = await asyncio.gather(*(cache.get("k", compute) for _ in range(20)))
        return [*first, await cache.get("k", compute)]

    assert asyncio.run(run()) == ["answer"] * 21
    assert calls == 1


def test_an_answer_past_half_its_time_is_served_and_refreshed_in_the_background() -> None:
    answers = iter(["old", "new"])

    async def compute() -> str:
        return next(answers)

    async def run() -> list[str | None]:
        cache: Kept[str] = Kept(lambda: 60)
        seen = [await cache.get("k", compute)]
        refresh_after, expires, answer = cache.answers["k"]
        cache.answers["k"] = (time.monotonic() - 1, expires, answer)  # half its time gone
        seen.append(await cache.get("k", compute))  # still the kept one, while the refresh runs
        await asyncio.gather(*kept._background)
        seen.append(await cache.get("k", compute))
        return seen

    assert asyncio.run(run()) == ["old", "old", "new"]


def test_none_and_a_failure_are_not_kept_and_the_failure_reaches_every_waiter() -> None:
    async def refused() -> str:
        await asyncio.sleep(0.01)
        raise Forbidden()

    async def nobody() -> str | None:
        return None

    async def run() -> Kept[str]:
        cache: Kept[str] = Kept(lambda: 60)
        cache.keep("k", "revoked token's subject")
        cache.answers["k"] = (0, 0, "revoked token's subject")  # expired
        results = await asyncio.gather(*(cache.get("k", refused) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, Forbidden) for r in results)
        assert "k" not in cache.answers and not cache.pending
        assert await cache.get("n", nobody) is None and "n" not in cache.answers
        return cache

    asyncio.run(run())


def test_a_full_cache_starts_again() -> None:
    cache: Kept[int] = Kept(lambda: 60, most=3)
    for i in range(3):
        cache.keep(i, i)
    cache.keep(3, 3)
    assert list(cache.answers) == [3] and cache.fresh(3) == 3 and cache.fresh(0) is None


@pytest.mark.parametrize("ttl", [0.0])
def test_fresh_is_none_once_expired(ttl: float) -> None:
    cache: Kept[str] = Kept(lambda: ttl)
    cache.keep("k", "v")
    assert cache.fresh("k") is None
