"""HL7 v2 ORU^R01 over MLLP with python-hl7's own client: AA stored, AE quarantined, AR rejected.

Also: refused content (NUL) kept as bytes with AR, never "AE, resend"; idle and half-open
connections closed; GB 18030 / GBK messages (MSH-18 or the sender's default) and ACKs in them.
test_hl7_fast.py runs the MLLP tests again against the lean receiver.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.diagnostics.conftest import free_port, make_order
from yilianti.diagnostics.receivers import ingest
from yilianti.diagnostics.receivers.hl7 import Hl7Receiver
from yilianti.diagnostics.receivers.mllp import MllpOptions, SenderCharsets
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder, InboundMessage, LabObservation


@pytest.fixture(scope="module")
def receiver(committed: sessionmaker[Session]) -> Iterator[Hl7Receiver]:
    rx = Hl7Receiver(committed, "127.0.0.1", free_port()).start()
    yield rx
    rx.stop()


@pytest.fixture(scope="module")
def make_receiver(committed: sessionmaker[Session]) -> Iterator[Callable[[MllpOptions], Hl7Receiver]]:
    started: list[Hl7Receiver] = []

    def make(options: MllpOptions) -> Hl7Receiver:
        started.append(Hl7Receiver(committed, "127.0.0.1", free_port(), options).start())
        return started[-1]

    yield make
    for rx in started:
        rx.stop()


def oru(accession: str, control: str, name: str = "张三丰", rid: str = "110105196501010011",
        sep: str = "\r", charset: str = "UNICODE UTF-8") -> str:
    return sep.join([
        f"MSH|^~\\&|LIS|渠口镇卫生院|YILIANTI|香河县人民医院|20261123083000||ORU^R01^ORU_R01|{control}|P|2.5.1|||||CHN|{charset}",
        f"PID|1||{rid}^^^CN-RIC||{name}||19650101|M",
        f"OBR|1|{accession}|F-778|LAB001^血常规^L|||20261123080000",
        "OBX|1|NM|718-7^Hemoglobin^LN||96|g/L|130-175|L|||F|||20261123081500",
        "OBX|2|NM|6690-2^白细胞计数^LN||6.2|10*9/L|3.5-9.5|N|||F",
        "OBX|3|NM|2823-3^血钾^LN||6.8|mmol/L|3.5-5.3|HH|||F",
    ]) + sep


def send(port: int, text: str | bytes) -> hl7.Message:
    with MLLPClient("127.0.0.1", port, encoding="utf-8") as client:
        ack = client.send_message(text)
    return hl7.parse(ack.decode("utf-8") if isinstance(ack, bytes) else ack)


def test_known_accession_is_stored_and_acknowledged_aa(committed, receiver):  # type: ignore[no-untyped-def]
    order_id, patient_id = make_order(committed, "LAB20261123001")
    ack = send(receiver.port, oru("LAB20261123001", "MSG0001"))
    msa = ack.segment("MSA")
    assert str(msa[1]) == "AA" and str(msa[2]) == "MSG0001"
    with committed() as db:
        obs = db.scalars(select(LabObservation).where(LabObservation.order_id == order_id)
                         .order_by(LabObservation.set_id)).all()
        assert [(o.code, o.code_system, o.value, o.units, o.reference_range, o.abnormal_flags) for o in obs] == [
            ("718-7", "LN", "96", "g/L", "130-175", "L"),
            ("6690-2", "LN", "6.2", "10*9/L", "3.5-9.5", "N"),
            ("2823-3", "LN", "6.8", "mmol/L", "3.5-5.3", "HH"),
        ]
        assert obs[1].name == "白细胞计数"
        assert obs[0].observed_at is not None
        order = db.get(DiagnosticOrder, order_id)
        assert order is not None and order.status == "final" and order.filler_order_number == "F-778"
        inbound = db.scalar(select(InboundMessage).where(InboundMessage.control_id == "MSG0001"))
        assert inbound is not None and inbound.status == "stored"
        assert "张三丰" in (inbound.raw or "")  # the Chinese name survived the trip
        audits = db.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient_id,
                                                     AuditEvent.channel == "hl7")).all()
        assert len(audits) == 1


def test_newline_separated_segments_are_accepted(committed, receiver):  # type: ignore[no-untyped-def]
    order_id, _ = make_order(committed, "LAB20261123002", resident_id="110105196501010038")
    ack = send(receiver.port, oru("LAB20261123002", "MSG0002", rid="110105196501010038", sep="\n"))
    assert str(ack.segment("MSA")[1]) == "AA"
    with committed() as db:
        assert len(db.scalars(select(LabObservation).where(LabObservation.order_id == order_id)).all()) == 3


def test_a_resent_message_is_acknowledged_again_and_stored_once(committed, receiver):  # type: ignore[no-untyped-def]
    # an interface engine that missed the ACK resends the same MSH-10: AA again, no second set of results
    order_id, _ = make_order(committed, "LAB20261123077", resident_id="110105196501010937")
    message = oru("LAB20261123077", "MSG0077", rid="110105196501010937")
    assert str(send(receiver.port, message).segment("MSA")[1]) == "AA"
    ack = send(receiver.port, message)
    assert str(ack.segment("MSA")[1]) == "AA" and str(ack.segment("MSA")[2]) == "MSG0077"
    with committed() as db:
        assert len(db.scalars(select(LabObservation).where(LabObservation.order_id == order_id)).all()) == 3
        rows = db.scalars(select(InboundMessage).where(InboundMessage.control_id == "MSG0077")
                          .order_by(InboundMessage.id)).all()
        assert [r.status for r in rows] == ["stored", "duplicate"] and rows[1].order_id == order_id


def test_unknown_accession_is_ae_and_quarantined(committed, receiver):  # type: ignore[no-untyped-def]
    ack = send(receiver.port, oru("NOPE-404", "MSG0003"))
    msa = ack.segment("MSA")
    assert str(msa[1]) == "AE" and str(msa[2]) == "MSG0003"
    assert "未知的检查号" in str(msa[3])
    assert "204" in str(ack.segment("ERR"))
    with committed() as db:
        inbound = db.scalar(select(InboundMessage).where(InboundMessage.control_id == "MSG0003"))
        assert inbound is not None and inbound.status == "quarantined" and inbound.accession_number == "NOPE-404"
        assert "张三丰" in (inbound.raw or "")


def test_patient_mismatch_is_ae_and_quarantined(committed, receiver):  # type: ignore[no-untyped-def]
    order_id, _ = make_order(committed, "LAB20261123003", resident_id="110105196501010054")
    ack = send(receiver.port, oru("LAB20261123003", "MSG0004", name="李四", rid="110105197001010012"))
    assert str(ack.segment("MSA")[1]) == "AE"
    with committed() as db:
        assert db.scalars(select(LabObservation).where(LabObservation.order_id == order_id)).all() == []
        order = db.get(DiagnosticOrder, order_id)
        assert order is not None and order.status == "ordered"
        inbound = db.scalar(select(InboundMessage).where(InboundMessage.control_id == "MSG0004"))
        assert inbound is not None and inbound.status == "quarantined"


def test_garbage_is_ar_and_kept(committed, receiver):  # type: ignore[no-untyped-def]
    ack = send(receiver.port, "this is not HL7 at all 乱码")
    assert str(ack.segment("MSA")[1]) == "AR"
    with committed() as db:
        rejected = db.scalars(select(InboundMessage).where(InboundMessage.status == "rejected")).all()
        assert any("乱码" in (m.raw or "") for m in rejected)


def test_mllp_send_console_script_with_loose_file(committed, receiver, tmp_path):  # type: ignore[no-untyped-def]
    """python-hl7's `mllp_send --loose` (a third-party sender): two messages, `\\n` line ends, one file."""
    order_id, _ = make_order(committed, "LAB20261123009", resident_id="110105196501010099")
    path = tmp_path / "batch.hl7"
    path.write_bytes((oru("LAB20261123009", "MSG0091", rid="110105196501010099", sep="\n")
                      + oru("NOPE-999", "MSG0092", sep="\n")).encode("utf-8"))
    script = Path(sys.executable).with_name("mllp_send")
    done = subprocess.run([str(script), "--loose", "-f", str(path), "-p", str(receiver.port), "127.0.0.1"],
                          capture_output=True, timeout=60, check=True)
    acks = done.stdout.decode("utf-8")
    assert "MSA|AA|MSG0091" in acks and "MSA|AE|MSG0092" in acks
    with committed() as db:
        assert len(db.scalars(select(LabObservation).where(LabObservation.order_id == order_id)).all()) == 3
        quarantined = db.scalar(select(InboundMessage).where(InboundMessage.control_id == "MSG0092"))
        assert quarantined is not None and quarantined.status == "quarantined"


def test_quarantine_lists_what_a_person_must_resolve(committed, receiver):  # type: ignore[no-untyped-def]
    send(receiver.port, oru("NOPE-500", "MSG0500"))
    with committed() as db:
        listed = ingest.list_quarantine(db, channel="hl7")
        assert listed[0].control_id == "MSG0500" and listed[0].status == "quarantined"
        assert {m.status for m in listed} <= {"quarantined", "rejected"}
        assert all(m.channel == "hl7" for m in listed)


def _send_bytes(port: int, data: bytes, encoding: str = "utf-8") -> tuple[bytes, hl7.Message]:
    with MLLPClient("127.0.0.1", port, encoding=encoding) as client:
        ack = client.send_message(data)
    return ack, hl7.parse(ack.decode(encoding))


def _inbound(committed: sessionmaker[Session], control: str) -> list[InboundMessage]:
    with committed() as db:
        return list(db.scalars(select(InboundMessage).where(InboundMessage.control_id == control)
                               .order_by(InboundMessage.id)))


def test_a_nul_byte_is_ar_kept_as_bytes_and_never_ae(committed, receiver):  # type: ignore[no-untyped-def]
    """A NUL inside a result (PostgreSQL's text refuses it): AR with an ERR saying why, the bytes kept in
    the quarantine, nothing stored — and the same answer when the engine sends it again (no AE loop)."""
    order_id, _ = make_order(committed, "LAB20261123NUL", resident_id="110105196501010118")
    data = oru("LAB20261123NUL", "MSGNUL1", rid="110105196501010118").replace("||96|", "||9\x006|").encode("utf-8")
    for attempt in (1, 2):
        _, ack = _send_bytes(receiver.port, data)
        assert str(ack.segment("MSA")[1]) == "AR" and str(ack.segment("MSA")[2]) == "MSGNUL1"
        err = ack.segment("ERR")
        assert str(err[3][0][0]) == "102" and "控制字符" in str(err[3][0][1]) and str(err[4]) == "E"
        rows = _inbound(committed, "MSGNUL1")
        assert len(rows) == attempt and {r.status for r in rows} == {"rejected"}
        assert rows[-1].reason_code == "control_chars" and rows[-1].raw_bytes == data
        assert rows[-1].sender and rows[-1].received_at is not None
    with committed() as db:
        assert db.scalars(select(LabObservation).where(LabObservation.order_id == order_id)).all() == []
        order = db.get(DiagnosticOrder, order_id)
        assert order is not None and order.status == "ordered"


def test_a_frame_too_large_is_ar_and_its_head_kept(committed, receiver):  # type: ignore[no-untyped-def]
    from yilianti.diagnostics.receivers.mllp import KEEP_BYTES, MAX_FRAME

    head = oru("LAB-BIG", "MSGBIG1").encode()
    data = head + b"NTE|1||" + b"x" * (MAX_FRAME + 1024) + b"\r"
    _, ack = _send_bytes(receiver.port, data)
    assert str(ack.segment("MSA")[1]) == "AR" and "过大" in str(ack.segment("MSA")[3])
    [row] = _inbound(committed, "MSGBIG1")
    assert row.status == "rejected" and row.reason_code == "frame_too_large" and row.raw_bytes == data[:KEEP_BYTES]
    assert str(send(receiver.port, "garbage after a large frame").segment("MSA")[1]) == "AR"  # still serving


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the receiver closed the connection, or None if it is still open after `seconds`."""
    sock.settimeout(seconds)
    t0 = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return time.monotonic() - t0


def test_idle_and_half_open_connections_are_closed(make_receiver):  # type: ignore[no-untyped-def]
    rx = make_receiver(MllpOptions(idle_timeout=0.5, frame_timeout=30))
    with socket.create_connection(("127.0.0.1", rx.port)) as silent:  # connects, sends nothing
        closed = _closed_within(silent, 5)
        assert closed is not None and closed < 4
    rx = make_receiver(MllpOptions(idle_timeout=30, frame_timeout=0.6))
    with socket.create_connection(("127.0.0.1", rx.port)) as half, \
            socket.create_connection(("127.0.0.1", rx.port)) as quiet:
        half.sendall(b"\x0bMSH|^~\\&|LIS|X|YILIANTI|Y|20261123083000||ORU^R01|HALF1|P|2.5.1\r")  # never ends
        assert _closed_within(half, 5) is not None
        assert _closed_within(quiet, 0.5) is None  # an idle connection is under the (longer) idle timeout
    with socket.create_connection(("127.0.0.1", rx.port)) as trickle:  # bytes keep coming, the frame never ends
        t0 = time.monotonic()
        trickle.sendall(b"\x0bMSH|")
        try:
            for _ in range(40):
                time.sleep(0.1)
                trickle.sendall(b"x")
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _closed_within(trickle, 5) is not None and time.monotonic() - t0 < 4.5


GB_NAME = "王𠮷"  # 𠮷 (U+20BB7) is in GB 18030 (four bytes) but not in GBK


def test_a_gb18030_message_with_a_rare_character_is_stored_and_acked_in_gb18030(committed, receiver):  # type: ignore[no-untyped-def]
    order_id, _ = make_order(committed, "LAB20261123GB1", name=GB_NAME, resident_id="110105196501010126")
    text = oru("LAB20261123GB1", "MSGGB1", name=GB_NAME, rid="110105196501010126", charset="GB 18030-2000")
    text += f"OBX|4|ST|NOTE^备注^L||{GB_NAME}，复查血钾||||||F\r"
    with MLLPClient("127.0.0.1", receiver.port, encoding="gb18030") as client:  # python-hl7 encodes the text
        raw_ack = client.send_message(text)
    ack = hl7.parse(raw_ack.decode("gb18030"))
    assert str(ack.segment("MSA")[1]) == "AA" and str(ack.segment("MSH")[18]) == "GB 18030-2000"
    assert "渠口镇卫生院".encode("gb18030") in raw_ack and "渠口镇卫生院".encode() not in raw_ack
    with committed() as db:
        inbound = db.scalar(select(InboundMessage).where(InboundMessage.control_id == "MSGGB1"))
        assert inbound is not None and inbound.status == "stored" and f"{GB_NAME}^^" not in (inbound.raw or "")
        assert f"||{GB_NAME}||" in (inbound.raw or "")
        values = db.scalars(select(LabObservation.value).where(LabObservation.order_id == order_id)).all()
        assert f"{GB_NAME}，复查血钾" in values


def test_a_gbk_message_without_msh18_uses_the_senders_default(committed, make_receiver):  # type: ignore[no-untyped-def]
    name = "阿依古丽·买买提"  # the middle dot of minority names is A1A4 in GBK
    rx = make_receiver(MllpOptions(charsets=SenderCharsets({"LIS@渠口镇卫生院": "GBK"})))
    order_id, _ = make_order(committed, "LAB20261123GBK", name=name, resident_id="110105196501010134")
    data = oru("LAB20261123GBK", "MSGGBK1", name=name, rid="110105196501010134", charset="").encode("gbk")
    raw_ack, ack = _send_bytes(rx.port, data, encoding="gbk")
    assert str(ack.segment("MSA")[1]) == "AA"
    assert "渠口镇卫生院".encode("gbk") in raw_ack  # the ACK in the sender's character set
    with committed() as db:
        inbound = db.scalar(select(InboundMessage).where(InboundMessage.control_id == "MSGGBK1"))
        assert inbound is not None and inbound.status == "stored" and name in (inbound.raw or "")
        names = db.scalars(select(LabObservation.name).where(LabObservation.order_id == order_id)).all()
        assert "白细胞计数" in names


def test_gbk_bytes_from_an_unconfigured_sender_are_ar_and_kept(committed, receiver):  # type: ignore[no-untyped-def]
    """Without MSH-18 and without a configured default the message is read as UTF-8: GBK bytes are not
    valid there → AR (no mojibake stored), the bytes kept to be re-processed once the sender is configured."""
    make_order(committed, "LAB20261123GB2", resident_id="110105196501010142")
    data = oru("LAB20261123GB2", "MSGGBK2", rid="110105196501010142", charset="").encode("gbk")
    _, ack = _send_bytes(receiver.port, data)  # the ACK is in UTF-8, what the receiver took the message for
    assert str(ack.segment("MSA")[1]) == "AR" and "字符集" in str(ack.segment("MSA")[3])
    [row] = _inbound(committed, "MSGGBK2")
    assert row.status == "rejected" and row.reason_code == "charset_invalid" and row.raw_bytes == data


def test_content_the_database_refuses_is_ar_and_kept_only_an_unreachable_database_says_resend(  # type: ignore[no-untyped-def]
        committed, monkeypatch):
    """The two answers when storing fails (hl7_rules): the bytes kept → AR 207; nothing can be written → AE 207."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DataError

    from yilianti.diagnostics.receivers.mllp import decode

    make_order(committed, "LAB20261123DBX", resident_id="110105196501010150")
    data = oru("LAB20261123DBX", "MSGDBX1", rid="110105196501010150").encode()
    real = ingest.ingest_hl7

    def refused(db, raw, **kw):  # type: ignore[no-untyped-def]
        if getattr(raw, "problem", None) is None:
            raise DataError("INSERT", {}, Exception("invalid byte sequence"))
        return real(db, raw, **kw)

    monkeypatch.setattr(ingest, "ingest_hl7", refused)
    ack = hl7.parse(ingest.process_hl7(committed, decode(data), "peer"))
    assert str(ack.segment("MSA")[1]) == "AR" and str(ack.segment("MSA")[2]) == "MSGDBX1"
    assert str(ack.segment("ERR")[3][0][0]) == "207"
    [row] = _inbound(committed, "MSGDBX1")
    assert (row.status, row.reason_code, row.raw_bytes) == ("rejected", "store_failed", data)

    unreachable = sessionmaker(bind=create_engine("sqlite:////nonexistent-dir/ylt/down.db"))  # cannot connect
    ack = hl7.parse(ingest.process_hl7(unreachable, decode(data), "peer"))
    assert str(ack.segment("MSA")[1]) == "AE" and "resend" in str(ack.segment("MSA")[3])
    assert str(ack.segment("MSA")[2]) == "MSGDBX1"
