"""Remote reading in a real browser: the township orders a CT, the study arrives, a county reader
claims it from the worklist (htmx), writes and signs the report; the township sees the final report.
"""

from __future__ import annotations

from tests import builders as b
from tests.browser.conftest import login, pick_patient
from tests.diagnostics.helpers import dx_world
from yilianti.diagnostics.orders import workflow
from yilianti.models.diagnostics import DiagnosticOrder


def _seed(db):  # type: ignore[no-untyped-def]
    w = dx_world(db, tag="browser")
    return {"site": w.usernames["site"], "reader": w.usernames["reader"], "patient": w.patient.name,
            "ct": w.ct.id, "township": w.township.name}


def test_township_orders_county_reads_and_signs(live_server, browser, page) -> None:  # type: ignore[no-untyped-def]
    seeded = live_server.seed(_seed)
    base = live_server.url

    # 1. the township doctor orders a head CT
    login(page, base, seeded["site"], b.PASSWORD)
    page.goto(f"{base}/diagnostics/orders/new")
    pick_patient(page, seeded["patient"], seeded["patient"])
    page.check(f"#item-{seeded['ct']}")
    page.wait_for_selector(f"#check-{seeded['ct']}")  # the item's recognition check, filled in place
    page.select_option("#f-priority", "urgent")
    page.fill("#f-clinical_question", "突发头痛伴呕吐2小时")
    page.click("#submit-order")
    page.wait_for_url(f"{base}/diagnostics/orders/*?done=ordered")
    order_id = int(page.url.split("/diagnostics/orders/")[1].split("?")[0])
    assert page.inner_text("#order-status").strip() == "已申请"
    assert page.inner_text("#order-price").strip() == "160.00"
    page.click("#form-transmit button[type=submit]")
    page.wait_for_url(f"{base}/diagnostics/orders/{order_id}?done=transmit")
    assert page.inner_text("#order-status").strip() == "已传输"

    # 2. the study arrives (what the C-STORE receiver does)
    def arrive(db):  # type: ignore[no-untyped-def]
        order = db.get(DiagnosticOrder, order_id)
        workflow.system_received(db, order, channel="dicom")
    live_server.seed(arrive)

    # 3. the county reader claims it on the worklist (htmx swaps the row), writes and signs
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    reader = context.new_page()
    reader.set_default_timeout(15000)
    login(reader, base, seeded["reader"], b.PASSWORD)
    reader.goto(f"{base}/diagnostics/worklist")
    assert seeded["patient"] in reader.inner_text(f"#wl-{order_id}")
    reader.click(f"#claim-{order_id}")
    reader.wait_for_selector(f"#write-{order_id}")
    assert reader.url == f"{base}/diagnostics/worklist"  # swapped in place, no navigation
    reader.click(f"#write-{order_id}")
    reader.wait_for_url(f"{base}/diagnostics/orders/{order_id}/report")
    assert "突发头痛伴呕吐2小时" in reader.content()
    reader.fill("#f-findings", "脑实质密度均匀，脑室系统未见扩大，中线结构居中。")
    reader.fill("#f-conclusion", "头颅CT平扫未见明显异常。")
    reader.click("#sign-report")
    reader.wait_for_url(f"{base}/diagnostics/orders/{order_id}?done=sign")
    assert reader.inner_text("#order-status").strip() == "已出报告"
    context.close()

    # 4. the township sees the final report with its TAT and can print it
    page.goto(f"{base}/diagnostics/orders")
    assert "已出报告" in page.inner_text(f"#order-{order_id}")
    page.goto(f"{base}/diagnostics/orders/{order_id}")
    assert page.inner_text("#report-conclusion").strip() == "头颅CT平扫未见明显异常。"
    assert page.inner_text("#report-status").strip() == "正式报告"
    assert page.inner_text("#order-tat").strip().isdigit()
    page.click("#print-link")
    page.wait_for_url(f"{base}/diagnostics/orders/{order_id}/print")
    assert seeded["township"] in page.inner_text("#print-ordering")
