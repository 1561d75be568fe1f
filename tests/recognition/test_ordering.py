"""Recognition at the moment of ordering (issue 16 item 8): the new-order form checks every chosen item."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests import builders as b
from tests.recognition.helpers import days_ago, price, thyroid, world
from yilianti.models.diagnostics import DiagnosticItem, DiagnosticOrder
from yilianti.models.recognition import RecognitionDecision


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def _block(html: str, item_id: int) -> str:
    return html.split(f'id="check-{item_id}"')[1].split('id="check-')[0].split("</section>")[0]


def _setup(db):  # type: ignore[no-untyped-def]
    w = world(db)
    result_id = thyroid(db, w, days_ago(3))
    price(db, w.beijing, "LAB-TFT", 12000)
    price(db, w.beijing, "LAB-GLU", 1000)  # not a recognition item: simply ordered
    items = {i.code: i.id for i in db.scalars(select(DiagnosticItem).where(
        DiagnosticItem.reading_centre_institution_id == w.beijing.id))}
    return w, result_id, items


def _orders(db, w):  # type: ignore[no-untyped-def]
    return list(db.scalars(select(DiagnosticOrder).where(DiagnosticOrder.ordering_institution_id == w.beijing.id)))


def test_the_check_offers_reuse_for_every_chosen_item(db, client) -> None:  # type: ignore[no-untyped-def]
    w, result_id, items = _setup(db)
    b.login(client, w.bj_doctor.username)
    r = client.get("/diagnostics/orders/new/check", params={
        "patient_id": w.patient_id, "item_ids": [items["LAB-TFT"], items["LAB-GLU"]]})
    assert r.status_code == 200
    tft = _block(r.text, items["LAB-TFT"])
    assert f'value="reuse:{result_id}"' in tft and "测试香河县人民医院" in tft and "HR 京津冀" in tft
    assert "TSH 2.1" in tft and 'name="reason_code_' in tft
    glu = _block(r.text, items["LAB-GLU"])
    assert "reuse:" not in glu and "不在互认目录" in glu


def test_an_order_with_recognised_results_needs_a_choice_and_nothing_is_placed_without(db, client) -> None:  # type: ignore[no-untyped-def]
    w, result_id, items = _setup(db)
    csrf = b.login(client, w.bj_doctor.username)
    form = {"csrf_token": csrf, "patient_id": str(w.patient_id), "item_ids": [str(items["LAB-TFT"]),
                                                                           str(items["LAB-GLU"])],
            "priority": "urgent", "clinical_question": "甲亢复查"}
    r = client.post("/diagnostics/orders/new", data=form)
    assert r.status_code == 422 and f'id="err-choice_{items["LAB-TFT"]}"' in r.text
    assert "甲亢复查" in r.text and f'id="item-{items["LAB-GLU"]}" checked' in r.text  # values kept
    assert _orders(db, w) == []  # the glucose was not placed either: one error, nothing placed
    # re-test without a reason: the coded reason is asked beside the item
    r = client.post("/diagnostics/orders/new", data={**form, f"choice_{items['LAB-TFT']}": "retest"})
    assert r.status_code == 422 and f'id="err-reason_code_{items["LAB-TFT"]}"' in r.text
    assert f'id="err-patient_informed_{items["LAB-TFT"]}"' in r.text and _orders(db, w) == []
    # reuse the thyroid panel, order the glucose
    r = client.post("/diagnostics/orders/new", data={**form, f"choice_{items['LAB-TFT']}": f"reuse:{result_id}"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    placed = _orders(db, w)
    assert [o.item_code for o in placed] == ["LAB-GLU"]
    decision = db.scalars(select(RecognitionDecision)).one()
    assert decision.decision == "reuse" and decision.reused_order_id == result_id and decision.price_saved_fen > 0
    assert "已开具1项检查申请，1项采用互认结果" in client.get(r.headers["location"]).text


def test_retest_with_a_coded_reason_places_the_order_and_records_the_decision(db, client) -> None:  # type: ignore[no-untyped-def]
    w, _result_id, items = _setup(db)
    csrf = b.login(client, w.bj_doctor.username)
    tft = items["LAB-TFT"]
    r = client.post("/diagnostics/orders/new", data={
        "csrf_token": csrf, "patient_id": str(w.patient_id), "item_ids": [str(tft)], "priority": "routine",
        f"choice_{tft}": "retest", f"reason_code_{tft}": "condition_changed", f"informed_{tft}": "1"},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    order = _orders(db, w)[0]
    assert r.headers["location"] == f"/diagnostics/orders/{order.id}?done=ordered"
    decision = db.scalars(select(RecognitionDecision)).one()
    assert (decision.decision, decision.reason_code, decision.order_id) == ("retest", "condition_changed", order.id)
