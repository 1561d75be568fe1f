"""An alliance administrator maintains the recognition catalogue in a real browser: adding 香河's QC
qualification for the thyroid panel makes the Beijing doctor's order-time lookup offer 香河's result with
the HR mark; a QC period that ended before the result's date drops it again."""

from __future__ import annotations

from datetime import date, timedelta

from tests import builders as b
from tests.browser.conftest import login
from yilianti.authz import policy
from yilianti.kit import clock
from yilianti.recognition import catalogue, service
from yilianti.recognition.results import ExternalResultIn, ObservationIn, import_external_result

CSV = ("item_code,item_name,kind,loinc,codes,price_yuan,scope_code,valid_days,institution,qc_from,qc_to,qc_body\n"
       "TFT,甲状腺功能（FT3/FT4/TSH）,lab,,LAB-TFT,120,JJJ,30,,,,\n")


def _seed(db):  # type: ignore[no-untyped-def]
    xianghe = b.institution(db, "香河县人民医院", province="河北", city="廊坊")
    beijing = b.institution(db, "北京朝阳医院", province="北京", city="北京")
    b.alliance(db, (beijing, "lead"), (xianghe, "member"), name="京津冀互认协作网")
    xh = b.subject_for(db, b.user(db, xianghe, "doctor", username="xh-doc2"))
    b.user(db, beijing, "doctor", username="bj-doc2")
    b.user(db, beijing, "alliance_admin", username="ylt-admin2")
    service.create_scope(db, None, code="JJJ", name="京津冀", kind="region",
                         areas=[("北京", None), ("天津", None), ("河北", None)])
    catalogue.import_catalogue(db, None, catalogue.read_rows(CSV.encode()))  # no institution qualified yet
    patient = b.patient(db, xh, "王淑芬", date(1965, 3, 14), consent="all")
    policy.grant_access(db, None, patient_id=patient.id, institution_id=beijing.id, kind="referral",
                        reason="转诊", source=("referral", 1))
    order = import_external_result(db, xh, ExternalResultIn(
        patient_id=patient.id, item_code="LAB-TFT", external_id="TH-0100",
        reported_at=clock.now() - timedelta(days=10),
        observations=[ObservationIn(code="3016-3", name="TSH", value="3.10", units="mIU/L")]))
    return {"patient": patient.id, "order": order.id, "xianghe": xianghe.id}


def test_admin_adds_qc_qualification_then_lookup_shows_hr_mark(live_server, browser, page) -> None:  # type: ignore[no-untyped-def]
    s = live_server.seed(_seed)
    base = live_server.url
    lookup_url = f"{base}/recognition?patient_id={s['patient']}&item_code=TFT"
    doctor_ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    doctor = doctor_ctx.new_page()
    doctor.set_default_timeout(15000)
    try:
        login(doctor, base, "bj-doc2", b.PASSWORD)
        doctor.goto(lookup_url)
        assert doctor.locator(f"#result-{s['order']}").count() == 0  # 香河 not QC-qualified: not offered

        login(page, base, "ylt-admin2", b.PASSWORD)
        page.goto(f"{base}/recognition/catalogue")
        assert page.locator("#import-link").count() == 1  # the spreadsheet import is linked
        page.click("#item-TFT a.edit-item")
        page.wait_for_url(f"{base}/recognition/catalogue/items/TFT")
        today = clock.today_local()
        page.select_option("#q-institution_id", str(s["xianghe"]))
        page.select_option("#q-scope_code", "JJJ")
        page.fill("#q-qc_from", (today - timedelta(days=60)).isoformat())
        page.fill("#q-qc_to", (today - timedelta(days=90)).isoformat())  # ends before it starts
        page.click("#qual-save")
        assert "质控截止日期早于开始日期" in page.inner_text("#q-err-qc_to")
        assert page.locator("#qualified tr[id^=qual-]").count() == 0  # nothing written
        page.fill("#q-qc_to", (today + timedelta(days=300)).isoformat())
        page.fill("#q-qc_body", "河北省临床检验中心")
        page.click("#qual-save")
        page.wait_for_url(f"{base}/recognition/catalogue/items/TFT?saved=qual")
        row = page.locator("#qualified tr[id^=qual-]")
        assert "香河县人民医院" in row.inner_text() and "有效" in row.locator(".qc-status").inner_text()

        doctor.goto(lookup_url)
        result = doctor.locator(f"#result-{s['order']}")
        assert "香河县人民医院" in result.inner_text() and "HR 京津冀" in result.locator(".hr-mark").inner_text()
        assert "20 天" in result.locator(".days-left").inner_text()

        # the QC period turns out to have ended before the result's date: the mark drops
        page.click("#qualified a.edit-qual")
        page.fill("#f-qc_to", (today - timedelta(days=20)).isoformat())
        page.click("#qual-save")
        page.wait_for_url(f"{base}/recognition/catalogue/items/TFT?saved=qual")
        assert "已过期" in page.inner_text("#qualified .qc-status")
        doctor.goto(lookup_url)
        assert doctor.locator(f"#result-{s['order']}").count() == 0
        assert doctor.locator(".hr-mark").count() == 0
    finally:
        doctor_ctx.close()
