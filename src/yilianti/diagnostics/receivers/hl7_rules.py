"""Why an HL7 message was not stored, and what the sender is told: the one place where AE or AR is decided.

Both receivers (hl7.py, the lean hl7_fast.py) and the quarantine page take every refusal from
`RULES`; nothing else writes "AE" or "AR".

- **AE** (application error): the message is well formed but cannot be matched (unknown accession
  number, another patient). It is kept `quarantined`; a person attaches it to an order. A resend
  would be answered the same way.
- **AR** (application reject): the content itself is refused (NUL or framing bytes inside it, a
  character set we cannot read, bytes that are not valid in its character set, no MSH, not an
  ORU^R01, no OBR...). Its raw bytes are kept `rejected` in the quarantine, where a person
  re-processes it (after the sender's character set is configured, say) or discards it. Sending
  it again unchanged cannot help, so it is never answered "AE, resend".
- Only when nothing can be kept at all (the database is unreachable) is the answer AE 207 with
  "resend": then a resend is the only way the result is not lost, and it stops once the
  database is back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Hl7Problem(StrEnum):
    control_chars = "control_chars"
    charset_unknown = "charset_unknown"
    charset_invalid = "charset_invalid"
    frame_invalid = "frame_invalid"
    frame_too_large = "frame_too_large"
    unparseable = "unparseable"
    unsupported_type = "unsupported_type"
    no_obr = "no_obr"
    segment_order = "segment_order"
    store_failed = "store_failed"
    unknown_accession = "unknown_accession"
    patient_mismatch = "patient_mismatch"
    unavailable = "unavailable"


@dataclass(frozen=True)
class Rule:
    ack: str  # MSA-1: AE | AR
    error_code: str  # ERR-3, HL7 table 0357
    status: str | None  # InboundMessage.status the message is kept under (None: nothing could be kept)
    label: str  # Chinese; English in locale/en/diagnostics.json
    english: str  # for MSA-3 / ERR-3.2, read by the sender's engineers


_AR, _AE = "rejected", "quarantined"
P = Hl7Problem
RULES: dict[Hl7Problem, Rule] = {
    P.control_chars: Rule("AR", "102", _AR, "消息中含有控制字符（如 NUL）", "control characters (NUL) in the message"),
    P.charset_unknown: Rule("AR", "103", _AR, "无法识别的字符集（MSH-18）", "unknown character set in MSH-18"),
    P.charset_invalid: Rule("AR", "102", _AR, "消息内容与其字符集不符", "bytes not valid in the message's character set"),
    P.frame_invalid: Rule("AR", "100", _AR, "MLLP 帧缺少起始字节", "MLLP block without its start byte"),
    P.frame_too_large: Rule("AR", "102", _AR, "MLLP 帧过大", "MLLP block too large"),
    P.unparseable: Rule("AR", "100", _AR, "无法解析的 HL7 消息", "unparseable HL7 message"),
    P.unsupported_type: Rule("AR", "200", _AR, "不支持的消息类型", "unsupported message type"),
    P.no_obr: Rule("AR", "101", _AR, "缺少 OBR 段", "no OBR segment"),
    P.segment_order: Rule("AR", "100", _AR, "OBX 出现在 OBR 之前", "OBX before OBR"),
    P.store_failed: Rule("AR", "207", _AR, "数据库拒绝了消息内容", "the database refused the content"),
    P.unknown_accession: Rule("AE", "204", _AE, "未知的检查号", "unknown accession number"),
    P.patient_mismatch: Rule("AE", "204", _AE, "患者与检查号的申请不符", "patient does not match the order"),
    P.unavailable: Rule("AE", "207", None, "内部错误，请重发", "internal error, resend"),
}

LABELS: dict[str, str] = {str(p): r.label for p, r in RULES.items()}


def kept_as(problem: Hl7Problem) -> str:
    """The InboundMessage status a refused message is kept under."""
    status = RULES[problem].status
    if status is None:
        raise ValueError(f"{problem}: nothing is kept")
    return status


def reason_text(problem: Hl7Problem, detail: str = "") -> str:
    """MSA-3 and the stored reason: the label, the English words for the sender, and the detail."""
    rule = RULES[problem]
    return f"{rule.label} ({rule.english})" + (f": {detail}" if detail else "")
