"""A township LIS sends GBK without MSH-18 and a message with a NUL byte over real MLLP (python-hl7's client):
both are answered AR and kept. In the browser the county reader sees each with its labelled reason and what
arrived, re-processes the GBK one once its sender's character set is configured (stored: the order is final)
and discards the other.
"""

from __future__ import annotations

import hl7
from hl7.client import MLLPClient

from tests import builders as b
from tests.browser.conftest import login
from tests.diagnostics.conftest import free_port
from tests.diagnostics.helpers import dx_world
from yilianti.config import get_settings
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.receivers.hl7 import Hl7Receiver
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import PatientIdentifier


def _seed(db):  # type: ignore[no-untyped-def]
    w = dx_world(db, tag="hl7q")
    order = workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=w.tsh.id)
    rid = db.query(PatientIdentifier.value).filter(PatientIdentifier.patient_id == w.patient.id).scalar()
    return {"reader": w.usernames["reader"], "order": order.id, "acc": order.accession_number, "rid": rid}


def _message(control: str, acc: str, rid: str, value: str = "6.8") -> str:
    return "\r".join([
        f"MSH|^~\\&|QK-LIS|渠口镇卫生院|YILIANTI|XH|20261123090000||ORU^R01|{control}|P|2.5.1",
        f"PID|1||{rid}^^^CN-RIC||赵桂兰",
        f"OBR|1|{acc}|F-1|LAB-K^血钾",
        f"OBX|1|NM|2823-3^血钾^LN||{value}|mmol/L|3.5-5.3|HH|||F",
    ]) + "\r"


def test_refused_hl7_messages_are_reprocessed_or_discarded_in_the_browser(  # type: ignore[no-untyped-def]
        live_server, page, monkeypatch) -> None:
    seeded = live_server.seed(_seed)
    rx = Hl7Receiver(live_server.factory, "127.0.0.1", free_port()).start()
    try:
        with MLLPClient("127.0.0.1", rx.port) as client:
            gbk = client.send_message(_message("BRGBK1", seeded["acc"], seeded["rid"]).encode("gbk"))
            nul = client.send_message(_message("BRNUL1", seeded["acc"], seeded["rid"], "6\x008").encode())
    finally:
        rx.stop()
    assert [str(hl7.parse(a.decode("utf-8", "replace")).segment("MSA")[1]) for a in (gbk, nul)] == ["AR", "AR"]

    base = live_server.url
    login(page, base, seeded["reader"], b.PASSWORD)
    page.goto(f"{base}/diagnostics/quarantine")
    gbk_row = page.locator("#quarantine tr:has-text('消息内容与其字符集不符')").first
    assert "消息内容与其字符集不符" in gbk_row.inner_text() and "已拒收待处理（AR）" in gbk_row.inner_text()
    gbk_id = gbk_row.get_attribute("id")
    assert gbk_id is not None
    inbound_id = int(gbk_id.split("-")[1])
    gbk_row.locator("summary").click()
    assert "MSH|^~\\&|QK-LIS|" in page.inner_text(f"#raw-{inbound_id}")  # what arrived, bytes not valid shown as \xNN
    nul_row = page.locator("#quarantine tr:has-text('消息中含有控制字符')").first
    nul_id = int((nul_row.get_attribute("id") or "-0").split("-")[1])

    # not yet configured: re-processing says why it still cannot be read
    page.click(f"#reprocess-{inbound_id}")
    page.wait_for_selector("#action-notice")
    assert "仍未能接收" in page.inner_text("#action-notice")
    # the administrator names the sender's character set; re-processing stores it
    monkeypatch.setattr(get_settings(), "hl7_charsets", {"QK-LIS@渠口镇卫生院": "GBK"})
    page.click(f"#reprocess-{inbound_id}")
    page.wait_for_url(f"{base}/diagnostics/quarantine?done=reprocess")
    assert page.locator(f"#inbound-{inbound_id}").count() == 0

    page.fill(f"#inbound-{nul_id} input[name=reason]", "仪器串口故障")
    page.click(f"#reject-{nul_id}")
    page.wait_for_url(f"{base}/diagnostics/quarantine?done=reject")
    assert page.locator(f"#inbound-{nul_id}").count() == 0

    def status(db):  # type: ignore[no-untyped-def]
        return db.get(DiagnosticOrder, seeded["order"]).status
    assert live_server.seed(status) == "final"
