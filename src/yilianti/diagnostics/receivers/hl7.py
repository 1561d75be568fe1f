"""HL7 v2 MLLP receiver (the shared MLLP connection loop, mllp.serve) in a thread of its own.

Each frame is decoded in its own character set (MSH-18, or the sender's configured default),
stored in its own DB transaction (in a worker thread, so several connections are served
concurrently) and acknowledged AA / AE / AR (ingest.process_hl7, hl7_rules) in that character set.
This is the reference receiver and the one used on SQLite; on PostgreSQL `start.start_all`
starts the lean one (hl7_fast.py: one statement per message, batched commits, same ACKs and rows)
unless YILIANTI_HL7_FAST_PATH=0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from yilianti.diagnostics.receivers import ingest, mllp
from yilianti.kit.loopthread import LoopThread

log = logging.getLogger(__name__)


class Hl7Receiver(LoopThread):
    thread_name = "hl7-mllp"

    def __init__(self, factory: Callable[[], Session], host: str, port: int,
                 options: mllp.MllpOptions | None = None) -> None:
        super().__init__()
        self.factory = factory
        self.host, self.port = host, port
        self.options = options or mllp.MllpOptions()
        self._server: Any = None

    async def _submit(self, frame: mllp.Frame, sender: str | None) -> str:
        return await asyncio.to_thread(ingest.process_hl7, self.factory, frame, sender)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await mllp.serve(reader, writer, self._submit, self.options)

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._handle, host=self.host, port=self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def start(self) -> Hl7Receiver:
        self.start_thread()
        return self

    def stop(self) -> None:
        self.stop_thread()
