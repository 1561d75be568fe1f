"""A server that runs in an event loop of its own thread (the HL7 MLLP receivers): `start_thread` returns once
it listens, or raises why it could not; `stop_thread` ends the loop and joins the thread."""

from __future__ import annotations

import asyncio
import threading


class LoopThread:
    thread_name = "loop"
    ready_timeout = 10.0

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def new_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()

    async def open(self) -> None:
        """Bind and start serving (in the thread's loop)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop serving and release what `open` took (in the thread's loop)."""

    def _run(self) -> None:
        loop = self.new_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.open())
        except BaseException as exc:  # noqa: BLE001 - reported to start_thread()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.close())
            loop.close()

    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        self._ready.wait(self.ready_timeout)
        if self._error is not None:
            raise self._error

    def stop_thread(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
