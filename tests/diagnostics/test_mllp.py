"""mllp.decode: MSH-18 read from the bytes (HL7 table 0211 and the names Chinese LIS use), the sender's
default when it is empty, and the refusals (NUL, unknown character set, bytes not valid in it)."""

from __future__ import annotations

import pytest

from yilianti.config import Settings
from yilianti.diagnostics.receivers import ingest
from yilianti.diagnostics.receivers.hl7_rules import RULES, Hl7Problem
from yilianti.diagnostics.receivers.mllp import MllpOptions, SenderCharsets, codec_for, decode


def msh(charset: str, app: str = "LIS", facility: str = "渠口镇卫生院", name: str = "王𠮷") -> str:
    return (f"MSH|^~\\&|{app}|{facility}|YILIANTI|XH|20261123083000||ORU^R01|C1|P|2.5.1|||||CHN|{charset}\r"
            f"PID|1||110105196501010011^^^CN-RIC||{name}\r")


@pytest.mark.parametrize(("value", "codec"), [
    ("UNICODE UTF-8", "utf-8"), ("UNICODE", "utf-8"), ("", None), ("8859/1", "iso8859-1"), ("ASCII", "ascii"),
    ("GB 18030-2000", "gb18030"), ("GB18030", "gb18030"), ("gbk", "gb18030"), ("GB2312", "gb18030"),
    ("ISO IR58", "gb18030"), ("CHINESE", "gb18030"), ("BIG-5", "big5"), ("UNICODE UTF-16", None),
])
def test_table_0211_values(value: str, codec: str | None) -> None:
    assert codec_for(value) == codec


def test_gb18030_declared_in_msh18_is_read_before_the_message_is_decoded() -> None:
    frame = decode(msh("GB 18030-2000").encode("gb18030"))
    assert frame.problem is None and frame.charset == "GB 18030-2000" and "||王𠮷\r" in (frame.text or "")


def test_repetitions_and_a_gbk_facility_whose_second_byte_is_the_field_separator() -> None:
    # 亅 is 0x81 0x7C in GBK: a '|' inside MSH-4's bytes shifts the fields by one
    frame = decode(msh("GBK~UNICODE UTF-8", facility="亅村卫生室", name="李四").encode("gbk"))
    assert frame.problem is None and frame.charset == "GBK" and "亅村卫生室" in (frame.text or "")


def test_empty_msh18_takes_the_most_specific_sender_default() -> None:
    charsets = SenderCharsets({"*": "UNICODE UTF-8", "LIS": "GBK", "LIS@别的医院": "GB18030", "@某醫院": "BIG-5"})
    frame = decode(msh("", name="张三").encode("gbk"), charsets)
    assert frame.problem is None and frame.codec == "gb18030" and "张三" in (frame.text or "")
    assert decode(msh("", app="ECG", name="张三").encode("utf-8"), charsets).codec == "utf-8"
    assert decode(msh("", app="ECG", facility="某醫院", name="張三").encode("big5"), charsets).codec == "big5"
    assert decode(msh("UNICODE UTF-8", name="张三").encode(), charsets).codec == "utf-8"  # MSH-18 wins
    with pytest.raises(ValueError, match="cannot be written"):
        SenderCharsets({"LIS@渠口": "8859/1"})


@pytest.mark.parametrize(("data", "problem"), [
    (msh("UNICODE UTF-8").replace("王", "王\x00").encode(), Hl7Problem.control_chars),
    (msh("UNICODE UTF-16").encode(), Hl7Problem.charset_unknown),
    (msh("").encode("gbk", errors="replace").replace(b"?", b""), Hl7Problem.charset_invalid),
    (msh("GBK", name="王𠮷").encode("gb18030").replace(b"GBK", b"ASCII"), Hl7Problem.charset_invalid),
])
def test_refused_frames_are_ar(data: bytes, problem: Hl7Problem) -> None:
    frame = decode(data)
    assert frame.problem is problem and frame.text is None and frame.raw == data
    assert RULES[problem].ack == "AR"


def test_every_refusal_is_decided_in_the_rules() -> None:
    assert {r.ack for r in RULES.values()} == {"AE", "AR"}
    assert [p for p, r in RULES.items() if r.ack == "AE"] == [Hl7Problem.unknown_accession,
                                                            Hl7Problem.patient_mismatch, Hl7Problem.unavailable]
    ack = ingest.build_ack(ingest.Hl7Outcome("AA", None, "C1", "LIS", "渠口", "2.5.1", charset="GBK")
                           .refuse(Hl7Problem.control_chars, "b'\\x00' at byte 9"))
    assert "MSA|AR|C1|" in ack and "\rERR|||102^" in ack and ack.split("\r")[0].endswith("|2.5.1||||||GBK")


def test_the_receivers_refuse_to_start_with_a_character_set_they_cannot_read() -> None:
    assert MllpOptions.from_settings(Settings(hl7_charsets={"LIS": "GB18030"})).charsets.entries
    with pytest.raises(ValueError, match="not a character set"):
        MllpOptions.from_settings(Settings(hl7_charsets={"LIS": "EBCDIC"}))
