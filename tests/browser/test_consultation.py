"""Teleconsultation in a real browser: request with an ECG → signed answer → one-click referral.

A community doctor at 河西区桃园街社区卫生服务中心 asks a 天津市儿童医院 expert about a child, the
child's ECG attached; the request without the consent box is refused with the message beside it.
The expert finds the case on the worklist and signs "recommend referral"; the community doctor
converts the case into an up-referral in one click and lands on the referral carrying the question.
"""

from __future__ import annotations

from datetime import date

from tests import builders as b
from tests.browser.conftest import login, pick_patient
from yilianti.models.diagnostics import DiagnosticOrder


def _seed(db):  # type: ignore[no-untyped-def]
    lead = b.institution(db, "天津市儿童医院", kind="specialty", level=3, province="天津")
    comm = b.institution(db, "河西区桃园街社区卫生服务中心", kind="community_center", level=1, province="天津")
    b.alliance(db, (lead, "lead"), (comm, "member"), name="天津市儿科医疗联合体")
    dept = b.department(db, lead, "心内科")
    expert = b.practitioner(db, lead, "赵心怡", "主任医师", licence=date(2008, 7, 1))
    expert.department_id = dept.id
    b.user(db, lead, "doctor", username="tjch-cardio", practitioner_id=expert.id)
    comm_doc = b.user(db, comm, "doctor", username="taoyuan-consult")
    patient = b.patient(db, b.subject_for(db, comm_doc), name="钱小乐", resident_id=b.resident_id(region="120103", seq=9))
    order = DiagnosticOrder(accession_number="BR-ECG-0001", patient_id=patient.id, ordering_institution_id=comm.id,
                            reading_centre_institution_id=lead.id, kind="ecg", modality="ECG", item_code="ECG12",
                            item_name="常规12导联心电图", status="acquired")
    db.add(order)
    db.flush()
    return {"lead": lead.id, "patient": patient.id, "expert": expert.id, "order": order.id}


def test_request_answer_convert(live_server, browser, page) -> None:  # type: ignore[no-untyped-def]
    seeded = live_server.seed(_seed)
    base = live_server.url

    # 1. the community doctor asks, with the ECG attached; first without the consent box
    login(page, base, "taoyuan-consult", b.PASSWORD)
    page.goto(f"{base}/consultations/new")
    page.fill("#f-question", "8岁患儿心悸2周，心电图示频发室性早搏，是否需要转诊？")  # typed first: kept below
    pick_patient(page, "qxl", "钱小乐")
    page.wait_for_selector(f"#orders input[value='{seeded['order']}']")  # the patient's results, in place
    page.select_option("#r-target", str(seeded["lead"]))
    page.wait_for_selector(f"#experts input[value='{seeded['expert']}']")  # institution → experts, in place
    page.check(f"#experts input[value='{seeded['expert']}']")
    page.check(f"#orders input[value='{seeded['order']}']")
    page.select_option("#f-urgency", "urgent")
    assert page.input_value("#f-question").startswith("8岁患儿心悸2周")
    page.click("#submit-consultation")
    page.wait_for_selector("#err-consent_confirmed")
    assert "知情同意" in page.inner_text("#err-consent_confirmed")
    page.check("#f-consent")
    page.click("#submit-consultation")
    page.wait_for_url(f"{base}/consultations/*?done=request")
    case_id = int(page.url.split("/consultations/")[1].split("?")[0])
    assert page.inner_text("#case-status").strip() == "已分派"
    assert "BR-ECG-0001" in page.inner_text("#orders")

    # 2. the expert finds it on the worklist and signs "recommend referral"
    ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    expert = ctx.new_page()
    expert.set_default_timeout(15000)
    try:
        login(expert, base, "tjch-cardio", b.PASSWORD)
        expert.goto(f"{base}/consultations?side=consultant&bucket=mine")
        expert.click(f"a[href='/consultations/{case_id}']")
        expert.wait_for_url(f"{base}/consultations/{case_id}")
        assert "钱小乐" in expert.inner_text("#patient-name")
        expert.select_option("#opinion-outcome", "recommend_referral")
        expert.fill("#opinion-text", "频发室早伴短阵室速可能，建议转诊心内科门诊做动态心电图和心脏超声")
        expert.click("#sign-button")
        expert.wait_for_url(f"{base}/consultations/{case_id}?done=opinion")
        assert expert.inner_text("#case-status").strip() == "已答复"
        assert "建议转诊" in expert.inner_text("#opinions")
    finally:
        ctx.close()

    # 3. the community doctor converts it into an up-referral in one click
    page.goto(f"{base}/consultations/{case_id}")
    assert "动态心电图" in page.input_value("#convert-reason")  # prefilled with the opinion
    page.click("#convert-button")
    page.wait_for_url(f"{base}/referrals/*?done=submit")
    assert "频发室性早搏" in page.content()
    page.goto(f"{base}/consultations/{case_id}")
    assert page.inner_text("#case-status").strip() == "已转为转诊"
    assert page.is_visible("#referral-link")
