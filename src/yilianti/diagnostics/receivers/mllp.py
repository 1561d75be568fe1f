"""MLLP as both HL7 receivers speak it: frames, timeouts, the message's character set and the ACK's bytes.

`serve` is the connection loop of the reference receiver (hl7.py) and of the lean one (hl7_fast.py);
they differ only in what they do with a decoded `Frame`.

- Frames: `<VT> message <FS><CR>`. A block without the start byte, or longer than `MAX_FRAME`,
  becomes a refused frame (its first `KEEP_BYTES` are kept in the quarantine).
- Timeouts: a connection that sends nothing for `idle_timeout` seconds between messages (an idle
  or half-open connection, a sender that vanished without a FIN), or whose frame has not ended
  `frame_timeout` seconds after its first byte, is closed. TCP keep-alive is switched on as well.
- Character set: MSH-18 (HL7 table 0211) is read from the MSH's bytes before the message is
  decoded (the MSH up to MSH-18 is ASCII in practice); the GB family (GB 18030, GBK, GB 2312 /
  ISO IR58) is read as GB 18030, its superset. A sender that leaves MSH-18 empty gets its
  configured default (`YILIANTI_HL7_CHARSETS`, by MSH-3 sending application and/or MSH-4
  facility), else UTF-8. The ACK is encoded in the same character set.
- Screening: NUL and MLLP framing bytes inside a message, an unknown MSH-18 and bytes not valid in
  the character set make a refused frame (`problem`); hl7_rules.RULES says what is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from yilianti.diagnostics.receivers.hl7_rules import Hl7Problem

log = logging.getLogger(__name__)

START, END = b"\x0b", b"\x1c\x0d"
MAX_FRAME = 8 * 1024 * 1024
KEEP_BYTES = 64 * 1024
_FORBIDDEN = (b"\x00", START, b"\x1c")  # never inside a message: NUL (PostgreSQL text refuses it), MLLP framing

# HL7 table 0211 (MSH-18) and the names Chinese LIS put there → Python codec. Keys compared without case,
# spaces, '-' and '_' (`charset_key`). UTF-16/32 are not listed: they cannot be framed by MLLP's bytes.
_GB = "gb18030"  # Python's gbk is a strict subset of its gb18030 (every GBK byte pair decodes the same)
CHARSETS: dict[str, str] = {
    "ASCII": "ascii", "UNICODE": "utf-8", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8",
    **{f"8859/{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
    "GB 18030-2000": _GB, "GB 18030-2005": _GB, "GB 18030-2022": _GB, "GB 18030": _GB, "GBK": _GB, "CP936": _GB,
    "GB 2312": _GB, "GB 2312-80": _GB, "ISO IR58": _GB, "EUC-CN": _GB, "CHINESE": _GB,
    "BIG-5": "big5", "KS X 1001": "euc_kr", "ISO IR87": "iso2022_jp", "ISO IR159": "iso2022_jp_2",
}


def charset_key(value: str) -> str:
    return re.sub(r"[\s_\-]", "", value).upper()


_CODECS = {charset_key(k): v for k, v in CHARSETS.items()}


@lru_cache(maxsize=256)
def codec_for(charset: str) -> str | None:
    """The Python codec for an MSH-18 value (table 0211 or a common Chinese name); None: not one we read."""
    return _CODECS.get(charset_key(charset))


class SenderCharsets:
    """`YILIANTI_HL7_CHARSETS`: {"LIS@渠口镇卫生院": "GB18030", "ECG": "GBK", "@某医院": "GBK", "*": "GBK"} — the
    character set of senders that leave MSH-18 empty, by MSH-3 (sending application, first component)
    and/or MSH-4 (facility), most specific first. The MSH is read in each candidate character set (a
    Big5 or GBK name may hold a '|' byte)."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.entries: list[tuple[int, str | None, str | None, str]] = []
        for key, charset in (mapping or {}).items():
            codec = codec_for(charset)
            if codec is None:
                raise ValueError(f"hl7_charsets: {charset!r} is not a character set we read "
                                 f"(one of {', '.join(CHARSETS)})")
            app, _, facility = (part.strip() for part in key.partition("@"))
            try:
                key.encode(codec)
            except UnicodeEncodeError:
                raise ValueError(f"hl7_charsets: {key!r} cannot be written in {charset}") from None
            app_s = app if app and app != "*" else None
            self.entries.append(((app_s is not None) + 2 * bool(facility), app_s, facility or None, codec))
        self.entries.sort(key=lambda e: -e[0])

    def codec(self, msh: bytes) -> str | None:
        """The configured character set for the sender of this MSH line (bytes), or None."""
        seen: dict[str, tuple[str, str]] = {}
        for _, app, facility, codec in self.entries:
            if codec not in seen:
                line = msh.decode(codec, errors="replace")
                fields = line.split(line[3:4] or "|")
                comp = fields[1][0:1] or "^" if len(fields) > 1 else "^"
                seen[codec] = tuple(  # type: ignore[assignment]
                    fields[n].split(comp)[0] if len(fields) > n else "" for n in (2, 3))
            got_app, got_facility = seen[codec]
            if (app is None or app == got_app) and (facility is None or facility == got_facility):
                return codec
        return None


@dataclass(frozen=True)
class MllpOptions:
    idle_timeout: float = 600.0
    frame_timeout: float = 30.0
    charsets: SenderCharsets = field(default_factory=SenderCharsets)

    @classmethod
    def from_settings(cls, settings: object) -> MllpOptions:
        return cls(float(getattr(settings, "hl7_idle_timeout")), float(getattr(settings, "hl7_frame_timeout")),  # noqa: B009
                   SenderCharsets(getattr(settings, "hl7_charsets")))  # noqa: B009


@dataclass
class Frame:
    """One received message: its bytes, and its text — or why it has none (`problem`)."""

    raw: bytes
    text: str | None = None
    charset: str = ""  # MSH-18 as sent
    codec: str = "utf-8"  # what the message was (or would be) decoded with; the ACK is encoded with it
    problem: Hl7Problem | None = None
    detail: str = ""

    @classmethod
    def of_text(cls, text: str) -> Frame:
        """A message handed over as text (tests, the demo): screened as the receivers screen bytes."""
        bad = next((c for c in ("\x00", "\x0b", "\x1c") if c in text), None)
        if bad is not None:
            return cls(text.encode("utf-8"), None, problem=Hl7Problem.control_chars,
                       detail=f"{bad!r} at {text.index(bad)}")
        return cls(b"", text)

    def preview(self) -> str:
        """The bytes as text for a person: undecodable bytes and control characters shown as \\xNN."""
        text = self.raw.decode(self.codec, errors="backslashreplace")
        return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def msh_line(body: bytes) -> bytes | None:
    head = body if body[:3] == b"MSH" else body.lstrip(b"\r\n \t")
    end = head.find(b"\r")
    nl = head.find(b"\n", 0, end if end >= 0 else len(head))
    msh = head[:nl if nl >= 0 else end if end >= 0 else len(head)]
    return msh if msh[:3] == b"MSH" and len(msh) >= 8 else None


def msh_fields(body: bytes) -> list[bytes] | None:
    """The MSH's fields as bytes (index n = MSH-n, as python-hl7 numbers them), or None: no MSH."""
    msh = msh_line(body)
    return None if msh is None else _fields(msh)


def _fields(msh: bytes) -> list[bytes]:
    sep = msh[3:4]
    fields = msh.split(sep)
    fields[1:1] = [sep]
    return fields


def _dbcs_split(line: bytes, sep: int) -> list[bytes]:
    """Split as a double-byte character set (GBK, GB 18030, Big5) reads it: a byte from 0x81 starts a
    character of two bytes (four in GB 18030 when the second is a digit), whose second may be 0x7C '|'."""
    out, start, i, n = [], 0, 0, len(line)
    while i < n:
        b = line[i]
        if b == sep:
            out.append(line[start:i])
            start = i = i + 1
        elif b >= 0x81:
            i += 4 if i + 1 < n and 0x30 <= line[i + 1] <= 0x39 else 2
        else:
            i += 1
    out.append(line[start:])
    return out


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _msh18(fields: list[bytes], line: bytes) -> str:
    """MSH-18's first repetition. A GBK or Big5 name before it may hold a '|' byte (院 is B0 7C in Big5), which
    shifts a plain split: then the split as a double-byte character set is asked too."""
    rep = fields[2][1:2] or b"~" if len(fields) > 2 else b"~"

    def value(fs: list[bytes]) -> str:
        return fs[18].split(rep)[0].strip().decode("ascii", errors="replace") if len(fs) > 18 else ""

    values = [value(fields)]
    if values[0] and codec_for(values[0]) is not None:
        return values[0]
    if not line.isascii() and not _utf8(line):  # UTF-8 never has a "|" byte inside a character
        dbcs = _dbcs_split(line, line[3])
        dbcs[1:1] = [line[3:4]]
        values.append(value(dbcs))
    known = next((v for v in values if v and codec_for(v) is not None), None)
    return known if known is not None else "" if "" in values else values[0]


def decode(body: bytes, charsets: SenderCharsets | None = None) -> Frame:
    """The bytes between the MLLP start and end bytes → a Frame (decoded, or refused with its problem)."""
    line = msh_line(body)
    charset, codec = "", None
    if line is not None:
        charset = _msh18(_fields(line), line)
        if charset:
            codec = codec_for(charset)
            if codec is None:
                return Frame(body, None, charset, "utf-8", Hl7Problem.charset_unknown, charset)
        elif charsets is not None and charsets.entries:
            codec = charsets.codec(line)
    codec = codec or "utf-8"
    for bad in _FORBIDDEN:
        at = body.find(bad)
        if at >= 0:
            return Frame(body, None, charset, codec, Hl7Problem.control_chars, f"{bad!r} at byte {at}")
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        return Frame(body, None, charset, codec, Hl7Problem.charset_invalid,
                     f"{charset or codec}: {exc.object[exc.start:exc.end]!r} at byte {exc.start}")
    return Frame(body, text, charset, codec)


Handler = Callable[[Frame, str | None], Awaitable[str]]


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handle: Handler,
                options: MllpOptions) -> None:
    """One connection: frames in, `handle(frame, peer)` → ACK text out, encoded as the message was."""
    peer = writer.get_extra_info("peername")
    sender = f"{peer[0]}:{peer[1]}" if peer else None
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # not a TCP socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    loop = asyncio.get_running_loop()
    buf = bytearray()
    started: float | None = None  # when the first byte of the frame now being read arrived
    oversize = 0  # bytes of a too large frame thrown away so far (its head is kept in buf)
    searched = 0  # END is not in buf[:searched]
    try:
        async with asyncio.timeout(None) as deadline:
            while True:
                end = buf.find(END, searched)
                if end >= 0:
                    block = bytes(buf[:end])
                    del buf[:end + 2]
                    frame = _frame(block, oversize, options.charsets)
                    started, oversize, searched = None, 0, 0
                    deadline.reschedule(None)
                    ack = await handle(frame, sender)
                    writer.write(START + ack.encode(frame.codec, errors="replace") + END)
                    await writer.drain()
                    continue
                if len(buf) > MAX_FRAME:  # keep the head for the quarantine, drop the rest up to the end bytes
                    tail = bytes(buf[-1:])  # the FS of an END split across two reads
                    oversize += len(buf) - KEEP_BYTES - 1
                    del buf[KEEP_BYTES:]
                    buf += tail
                if started is None and buf.strip(b"\r\n \t"):
                    started = loop.time()
                    deadline.reschedule(started + options.frame_timeout)
                elif started is None:
                    buf.clear()
                    deadline.reschedule(loop.time() + options.idle_timeout)
                searched = max(0, len(buf) - 1)
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buf += chunk
    except TimeoutError:
        log.info("HL7 MLLP connection from %s closed: %s", sender,
                 "frame not finished in time" if started is not None else "idle")
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def _frame(block: bytes, oversize: int, charsets: SenderCharsets) -> Frame:
    start = block.find(START)
    if start == -1:
        return Frame(block[:KEEP_BYTES], None, problem=Hl7Problem.frame_invalid, detail=repr(block[:80]))
    if oversize or len(block) > MAX_FRAME:
        head = block[start + 1:start + 1 + KEEP_BYTES]
        known = decode(head, charsets)  # its character set, for the kept row and the ACK
        return Frame(head, None, known.charset, known.codec, Hl7Problem.frame_too_large,
                     f"{len(block) + oversize} bytes > {MAX_FRAME}")
    return decode(block[start + 1:], charsets)


__all__ = ["CHARSETS", "Frame", "MllpOptions", "SenderCharsets", "codec_for", "decode", "msh_fields", "serve"]
