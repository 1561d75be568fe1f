"""Group commit: hot-path writes that arrive together go to PostgreSQL as one statement and one commit."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from yilianti.config import get_settings
from yilianti.fastdb.pool import Busy, connection
from yilianti.kit.dbfaults import database_unavailable

T = TypeVar("T")
G = TypeVar("G", bound="GroupCommit[Any]")


@dataclass(eq=False)
class _Entry(Generic[T]):
    item: T
    done: asyncio.Future[Any]
    since: float


class GroupCommit(Generic[T]):
    """Group commit for one kind of hot-path write in one process: an item that arrives while `lanes`
    statements are at PostgreSQL waits for the next, which takes every waiting item (up to `most`,
    one per `key`) into one statement and one commit. With nothing in flight an item goes at once, alone.

    `execute` answers each item of a batch on its own (one answer per item, in order). A statement
    that fails as a whole writes nothing; its items are run again one by one, so each gets its own
    answer (`failed_alone` turns an item's own failure into its answer, or raises it to that item
    alone). An item that waited db_pool_timeout is answered Busy (503) unrun, as a request waiting
    that long for a pooled connection is. A failure of the database itself (kit/dbfaults.py) is every unanswered
    item's answer at once: retrying the items one by one would only meet it again, on a connection that may
    be gone."""

    most = 32

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        self.running = 0
        self.waiting: collections.deque[_Entry[T]] = collections.deque()
        self.tasks: set[asyncio.Task[None]] = set()

    def key(self, item: T) -> Any:
        raise NotImplementedError

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Called with the connection before each batch runs on it."""

    async def execute(self, conn: asyncpg.Connection, items: list[T]) -> list[Any]:
        raise NotImplementedError

    def failed_alone(self, item: T, exc: asyncpg.PostgresError) -> Any:
        raise exc

    async def submit(self, item: T, since: float | None = None) -> Any:
        entry = _Entry(item, asyncio.get_running_loop().create_future(),
                       time.monotonic() if since is None else since)
        self.waiting.append(entry)
        if self.running < self.lanes:
            self.running += 1
            task = asyncio.ensure_future(self._lane())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await entry.done

    def _next(self) -> list[_Entry[T]]:
        batch: list[_Entry[T]] = []
        keys: set[Any] = set()
        later: collections.deque[_Entry[T]] = collections.deque()
        too_old = time.monotonic() - get_settings().db_pool_timeout
        while self.waiting and len(batch) < self.most:
            entry = self.waiting.popleft()
            if entry.done.done():  # its request went away: nothing to do
                continue
            if entry.since < too_old:  # waited as long as for a pooled connection: 503, nothing written
                entry.done.set_exception(Busy())
                continue
            key = self.key(entry.item)
            if key in keys:
                later.append(entry)
            else:
                keys.add(key)
                batch.append(entry)
        later.extend(self.waiting)
        self.waiting = later
        return batch

    async def _lane(self) -> None:
        try:
            # `_next` right before the loop ends: no await between an empty queue and `running -= 1`, so an
            # item that arrives meanwhile either finds a lane still running or starts one
            while batch := self._next():
                try:
                    async with connection() as conn:  # Busy when every connection stays busy: nothing written, 503
                        await self.prepare(conn)
                        await self._run(conn, batch)
                except Exception as exc:  # Busy, a lost connection: the answer of the batch's items
                    for entry in batch:
                        if not entry.done.done():
                            entry.done.set_exception(exc)
                except BaseException:
                    for entry in batch:
                        entry.done.cancel()
                    raise
        finally:
            self.running -= 1

    async def _run(self, conn: asyncpg.Connection, batch: list[_Entry[T]]) -> None:
        pending = [batch]
        while pending:
            entries = pending.pop()
            try:
                answers = await self.execute(conn, [e.item for e in entries])
            except asyncpg.PostgresError as exc:
                if database_unavailable(exc):
                    # the database's failure, not an item's (its connection cut, no connection allowed, a lock or
                    # statement timeout): every item still unanswered gets it, and the connection is not used again
                    # — one cut by the server may still look open for a moment, and a statement sent on it then
                    # fails inside asyncpg ("another operation is in progress"), which is no database answer
                    raise
                if len(entries) > 1:  # which item failed (or met a concurrent one) is for each alone to say
                    pending.extend([e] for e in entries)
                    continue
                entry = entries[0]
                if not entry.done.done():
                    try:
                        entry.done.set_result(self.failed_alone(entry.item, exc))
                    except asyncpg.PostgresError as own:  # this item's own failure; the others still run
                        entry.done.set_exception(own)
                continue
            for entry, answer in zip(entries, answers, strict=True):
                if not entry.done.done():
                    entry.done.set_result(answer)


_groups: dict[type, tuple[asyncio.AbstractEventLoop, Any]] = {}


def group(kind: type[G]) -> G:
    """This process's (and event loop's) GroupCommit of that kind; each kind keeps at most half the hot-path
    pool (booking_pool_size) at PostgreSQL at once, so the other hot paths still find a connection."""
    loop = asyncio.get_running_loop()
    held = _groups.get(kind)
    if held is None or held[0] is not loop:
        held = _groups[kind] = (loop, kind(lanes=max(1, get_settings().booking_pool_size // 2)))
    instance: G = held[1]
    return instance
