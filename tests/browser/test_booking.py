"""A community doctor books the last reserved slot of a 首都儿科研究所 expert session; a colleague sees it gone."""

from __future__ import annotations

from tests import builders as b
from tests.browser.conftest import login, pick_patient
from tests.scheduling.helpers import world
from yilianti.scheduling import booking
from yilianti.scheduling.schemas import BookingIn


def _seed(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=6)  # 2 reserved for grassroots members, 4 public
    early = b.patient(db, w.comm_doc2, name="李早到", resident_id=b.resident_id(seq=3))
    booking.book(db, w.comm_doc2, BookingIn(session_id=w.session.id, patient_id=early.id, pool="reserved"))
    b.patient(db, w.comm_doc, name="王小虎", resident_id=b.resident_id(seq=5))
    return {"session": w.session.id, "doc1": w.comm_doc.username, "doc2": w.comm_doc2.username}


def test_last_reserved_slot_is_gone_for_the_next_doctor(live_server, browser, page) -> None:  # type: ignore[no-untyped-def]
    seeded = live_server.seed(_seed)
    base = live_server.url
    url = f"{base}/scheduling/sessions/{seeded['session']}"

    login(page, base, seeded["doc1"], b.PASSWORD)
    page.goto(url)
    assert page.inner_text("#free-reserved") == "1" and page.inner_text("#free-public") == "4"
    assert "太阳宫社区卫生服务中心" in page.inner_text("header")
    pick_patient(page, "wxh", "王小虎")
    page.select_option("#f-pool", "reserved")
    page.click("#book-button")
    page.wait_for_selector("#booking-number")
    assert page.inner_text("#booking-number").strip()
    assert "首都儿科研究所" in page.inner_text("#slip-place") and "王小虎" in page.inner_text("#slip-patient")

    other = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    try:
        page2 = other.new_page()
        page2.set_default_timeout(15000)
        login(page2, base, seeded["doc2"], b.PASSWORD)
        page2.goto(f"{url}?q=王小虎")
        assert page2.inner_text("#free-reserved") == "0" and page2.inner_text("#free-public") == "4"
        pools = page2.eval_on_selector_all("#f-pool option", "els => els.map(e => e.value)")
        assert pools == ["public"]  # only the public pool is offered
        slot_labels = page2.eval_on_selector_all("#f-slot_id option", "els => els.map(e => e.textContent)")
        assert len(slot_labels) == 5 and not any("预留" in s for s in slot_labels)  # automatic + 4 public
    finally:
        other.close()
