"""DONE-WHEN of issue 7 in a real browser: 香河县人民医院's thyroid panel from last month is offered
to the Beijing hospital the patient was referred to; re-testing asks for a reason; reusing it is
recorded and the monthly report counts the saving at the Beijing hospital's price."""

from __future__ import annotations

from datetime import date, timedelta

from tests import builders as b
from tests.browser.conftest import login
from tests.recognition.helpers import CSV
from yilianti.kit import clock
from yilianti.models.diagnostics import DiagnosticItem, ItemPrice
from yilianti.recognition import catalogue, service
from yilianti.recognition.results import ExternalResultIn, ObservationIn, import_external_result
from yilianti.referral import service as referral
from yilianti.referral.schemas import ReferralIn


def _seed(db):  # type: ignore[no-untyped-def]
    xianghe = b.institution(db, "香河县人民医院", province="河北", city="廊坊")
    beijing = b.institution(db, "北京朝阳医院", province="北京", city="北京")
    b.alliance(db, (beijing, "lead"), (xianghe, "member"), name="京津冀互认转诊协作网")
    xh = b.subject_for(db, b.user(db, xianghe, "doctor", username="xh-doc"))
    bj = b.subject_for(db, b.user(db, beijing, "doctor", username="bj-doc"))
    service.create_scope(db, None, code="JJJ", name="京津冀", kind="region",
                         areas=[("北京", None), ("天津", None), ("河北", None)])
    catalogue.import_catalogue(db, None, catalogue.read_rows(CSV.format(xh=xianghe.name).encode()))
    service.set_rule(db, None, item_code="TFT", scope_code="JJJ", valid_days=60)  # the demo's window
    item = DiagnosticItem(code="LAB-TFT", name="甲状腺功能", kind="lab", reading_centre_institution_id=beijing.id)
    db.add(item)
    db.flush()
    db.add(ItemPrice(item_id=item.id, institution_id=beijing.id, price_fen=15500))
    patient = b.patient(db, xh, "刘桂芳", date(1971, 5, 9), consent="all")
    last_month = clock.today_local().replace(day=1) - timedelta(days=10)
    reported = clock.now() - timedelta(days=(clock.today_local() - last_month).days)
    order = import_external_result(db, xh, ExternalResultIn(
        patient_id=patient.id, item_code="LAB-TFT", external_id="TH-0001", reported_at=reported,
        observations=[ObservationIn(code="3016-3", name="TSH", value="5.86", units="mIU/L", abnormal_flags="H"),
                      ObservationIn(code="3024-7", name="FT4", value="11.2", units="pmol/L", abnormal_flags="L")]))
    ref = referral.draft_and_submit(db, xh, ReferralIn.model_validate({
        "direction": "up", "patient_id": patient.id, "to_institution_id": beijing.id, "priority": "routine",
        "reason": "甲状腺功能减退待查，请内分泌科明确诊断", "summary": {"diagnoses": [], "key_results": "",
                                                                 "medications": [], "allergies": []}}))
    referral.receive(db, bj, ref.id)
    referral.accept(db, bj, ref.id)
    return {"patient": patient.id, "order": order.id, "referral": ref.id, "days_left": 60 - (clock.today_local() - last_month).days}


def test_thyroid_panel_from_xianghe_is_offered_in_beijing(live_server, page) -> None:  # type: ignore[no-untyped-def]
    s = live_server.seed(_seed)
    base = live_server.url
    login(page, base, "bj-doc", b.PASSWORD)
    # ordering the panel from the referral: the lookup offers 香河's result with its HR mark
    page.goto(f"{base}/recognition?referral_id={s['referral']}")
    assert page.input_value("#f-patient_id") == str(s["patient"])  # the referral's patient is preselected
    page.select_option("#l-item", "TFT")
    page.click("#lookup-button")
    row = page.locator(f"#result-{s['order']}")
    assert "香河县人民医院" in row.inner_text() and "HR 京津冀" in row.inner_text()
    assert f"{s['days_left']} 天" in row.locator(".days-left").inner_text()
    assert "TSH 5.86 mIU/L" in row.inner_text()
    # re-testing asks for a reason and the patient informed; nothing recorded
    page.check("#decision-retest")
    page.click("#decide-button")
    assert "请确认已告知患者" in page.inner_text("#err-patient_informed")
    assert "重新检查须选择原因" in page.content()
    # reuse it: the order is satisfied by recognition, and the saving is the Beijing price
    page.check(f"#reuse-{s['order']}")
    page.check("#decision-reuse")
    page.click("#decide-button")
    page.wait_for_url(f"{base}/recognition/decisions/*")
    assert "已互认" in page.inner_text("#decision-status")
    assert "155.00" in page.inner_text("#price-saved")
    page.goto(f"{base}/recognition/report")
    month = clock.today_local().strftime("%Y-%m")
    assert page.inner_text(f"#month-{month} .saved") == "155.00"
    assert page.inner_text(f"#month-{month} .avoided") == "1"
    assert page.locator("#recognition-chart canvas").count() >= 1  # the vendored echarts drew the chart
