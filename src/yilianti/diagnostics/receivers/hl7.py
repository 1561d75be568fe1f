"""HL7 v2 MLLP receiver (python-hl7's asyncio MLLP server, UTF-8) in a thread of its own.

Each framed block is decoded as UTF-8, stored in its own DB transaction (in a worker thread, so
several connections are served concurrently) and acknowledged AA / AE / AR (ingest.process_hl7).
This is the reference receiver and the one used on SQLite; on PostgreSQL `start.start_all`
starts the lean one (hl7_fast.py: one statement per message, batched commits, same ACKs and rows)
unless YILIANTI_HL7_FAST_PATH=0.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from hl7.mllp import start_hl7_server
from hl7.mllp.streams import InvalidBlockError
from sqlalchemy.orm import Session

from yilianti.diagnostics.receivers import ingest

log = logging.getLogger(__name__)


class Hl7Receiver:
    def __init__(self, factory: Callable[[], Session], host: str, port: int) -> None:
        self.factory = factory
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def _handle(self, reader: Any, writer: Any) -> None:
        peer = writer.get_extra_info("peername")
        sender = f"{peer[0]}:{peer[1]}" if peer else None
        try:
            while not reader.at_eof():
                try:
                    block = await reader.readblock()
                except InvalidBlockError as exc:
                    log.warning("HL7 invalid MLLP block from %s: %s", sender, exc)
                    ack = await asyncio.to_thread(ingest.process_hl7, self.factory, repr(exc), sender)
                    writer.writeblock(ack.encode("utf-8"))
                    await writer.drain()
                    continue
                except asyncio.IncompleteReadError:
                    break
                text = block.decode("utf-8", errors="replace")
                ack = await asyncio.to_thread(ingest.process_hl7, self.factory, text, sender)
                writer.writeblock(ack.encode("utf-8"))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(start_hl7_server(
                self._handle, host=self.host, port=self.port, encoding="utf-8", encoding_errors="replace",
                limit=8 * 1024 * 1024))
            sock = self._server.sockets[0]
            self.port = sock.getsockname()[1]
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    def start(self) -> Hl7Receiver:
        self._thread = threading.Thread(target=self._run, name="hl7-mllp", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
