"""HL7 v2 ORU^R01 over MLLP with python-hl7's own client: AA stored, AE quarantined, AR rejected."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.diagnostics.conftest import free_port, make_order
from yilianti.diagnostics.receivers import ingest
from yilianti.diagnostics.receivers.hl7 import Hl7Receiver
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder, InboundMessage, LabObservation


@pytest.fixture(scope="module")
def receiver(committed: sessionmaker[Session]) -> Iterator[Hl7Receiver]:
    rx = Hl7Receiver(committed, "127.0.0.1", free_port()).start()
    yield rx
    rx.stop()


def oru(accession: str, control: str, name: str = "张三丰", rid: str = "110105196501010011",
        sep: str = "\r") -> str:
    return sep.join([
        f"MSH|^~\\&|LIS|渠口镇卫生院|YILIANTI|香河县人民医院|20261123083000||ORU^R01^ORU_R01|{control}|P|2.5.1|||||CHN|UNICODE UTF-8",
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
