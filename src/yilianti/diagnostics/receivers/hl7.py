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
from collections.abc import Callable
from typing import Any

from hl7.mllp import start_hl7_server
from hl7.mllp.streams import InvalidBlockError
from sqlalchemy.orm import Session

from yilianti.diagnostics.receivers import ingest
from yilianti.kit.loopthread import LoopThread

log = logging.getLogger(__name__)


class Hl7Receiver(LoopThread):
    thread_name = "hl7-mllp"

    def __init__(self, factory: Callable[[], Session], host: str, port: int) -> None:
        super().__init__()
        self.factory = factory
        self.host, self.port = host, port
        self._server: Any = None

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

    async def open(self) -> None:
        self._server = await start_hl7_server(
            self._handle, host=self.host, port=self.port, encoding="utf-8", encoding_errors="replace",
            limit=8 * 1024 * 1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def start(self) -> Hl7Receiver:
        self.start_thread()
        return self

    def stop(self) -> None:
        self.stop_thread()
