"""A follow-up the patient misses: an SMS reminder goes out before the due date (once per follow-up and due
date, through the delivery interface), the patient appears on the overdue list of the team and the doctor
(search, filters, paging, xlsx), and the township doctor's call is logged with its outcome. An urgent value —
at a visit, or a glucose result arriving over HL7 — raises an alarm on the workbench that the doctor
acknowledges and turns into an urgent up-referral whose form arrives prefilled."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from io import BytesIO
from urllib.parse import parse_qs, urlparse

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from tests import builders as b
from tests.chronic.test_chronic import _at
from yilianti.chronic import alarms, reminders, repository, service
from yilianti.config import get_settings
from yilianti.exceptions import Conflict, NotFound
from yilianti.kit import clock
from yilianti.models.auth import User
from yilianti.models.chronic import ChronicAlarm, ChronicReminder
from yilianti.models.diagnostics import DiagnosticOrder, LabObservation
from yilianti.models.outbox import OutboxMessage
from yilianti.workbench import service as workbench

D = date(2026, 3, 2)


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    centre = b.institution(db, "沙县区总医院高桥分院", kind="community", level=1)
    other = b.institution(db, "三明市第一医院", level=3)
    doctor = b.user(db, centre, "doctor", username="gqdoctor")
    b.user(db, other, "doctor", username="smdoctor")
    db.flush()
    sub = b.subject_for(db, doctor)
    with clock.frozen(_at(D)):
        wang = b.patient(db, sub, "王辉煌", birth=date(1960, 5, 1))
        wang.phone = "13800138000"
        li = b.patient(db, sub, "李秀英", birth=date(1955, 8, 9), phone=None)
        team = service.create_team(db, sub, "高桥家庭医生一队", "高桥村", [(doctor.id, "gp")])
        team2 = service.create_team(db, sub, "高桥家庭医生二队", "溪口村", [(doctor.id, "gp")])
        dm = service.enrol(db, sub, wang.id, "diabetes_t2", team_id=team.id)
        htn = service.enrol(db, sub, li.id, "hypertension", team_id=team2.id)
    return {"centre": centre, "sub": sub, "team": team, "team2": team2, "dm": dm, "htn": htn, "wang": wang,
            "li": li, "doctor": doctor}


def test_reminders_before_the_due_date_once_per_follow_up_and_date(db, world, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(get_settings(), "chronic_reminder_spool_dir", str(tmp_path / "spool"))
    due = D + timedelta(days=14)
    with clock.frozen(_at(due - timedelta(days=4))):  # not yet: 3 days before
        assert reminders.queue_due(db) == 0
    with clock.frozen(_at(due - timedelta(days=3))):
        assert reminders.queue_due(db) == 2
        assert reminders.queue_due(db) == 0  # idempotent per (follow-up, due date)
        rows = {r.patient_id: r for r in db.scalars(select(ChronicReminder))}
        wang, li = rows[world["wang"].id], rows[world["li"].id]
        assert wang.status == "queued" and wang.due_on == due
        assert wang.text == "【沙县区总医院高桥分院】王辉煌您好，您的2型糖尿病随访将于3月16日到期，请按时到沙县区总医院高桥分院随访。"
        assert li.status == "no_phone"  # recorded, never sent: the overdue list shows the team must call
        out = list(db.scalars(select(OutboxMessage).where(OutboxMessage.topic == reminders.TOPIC)))
        assert [m.payload for m in out] == [{"reminder_id": wang.id}]
        # after commit the handler sends it: the test double records, the file adapter writes the spool
        double = reminders.RecordingDelivery()
        reminders.deliver(db, wang.id, double)
        assert wang.status == "sent" and [m.phone for m in double.sent] == ["13800138000"]
        reminders.deliver(db, wang.id, double)
        assert len(double.sent) == 1  # a second delivery of the same message sends nothing
        wang.status = "queued"
        reminders.deliver(db, wang.id)
        spooled = json.loads((tmp_path / "spool" / f"{wang.id}.json").read_text(encoding="utf-8"))
        assert spooled == {"id": wang.id, "channel": "sms", "to": "13800138000", "text": wang.text}
    # the due date moves (a re-check): a new date, a new reminder
    task = repository.open_follow_up(db, world["dm"].id)
    task.due_on = due + timedelta(days=7)
    with clock.frozen(_at(due + timedelta(days=5))):
        assert reminders.queue_due(db) == 1


def test_the_overdue_list_per_team_doctor_and_village_with_calls(db, client, world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(_at(D + timedelta(days=11))):
        reminders.queue_due(db)
    with clock.frozen(_at(D + timedelta(days=20))):  # both first follow-ups (due day 14) are 6 days overdue
        csrf = b.login(client, "gqdoctor")
        page = client.get("/chronic/overdue")
        assert page.status_code == 200
        assert re.search(r'id="list-total">共 2 条', page.text)
        assert "王辉煌" in page.text and "逾期 6 天" in page.text and "138****8000" in page.text
        assert "已发送" in page.text or "待发送" in page.text
        one = client.get(f"/chronic/overdue?team_id={world['team'].id}").text
        assert "王辉煌" in one and "李秀英" not in one
        assert "李秀英" in client.get("/chronic/overdue?village=溪口村").text
        assert "王辉煌" not in client.get("/chronic/overdue?village=溪口村").text
        assert "李秀英" in client.get("/chronic/overdue?status=hypertension").text
        assert "王辉煌" not in client.get("/chronic/overdue?q=李").text
        assert re.search(r'id="list-total">共 0 条', client.get(
            f"/chronic/overdue?doctor_id={world['doctor'].id}&from={(D + timedelta(days=15)).isoformat()}").text)
        paged = client.get("/chronic/overdue?per_page=10&page=2").text
        assert "王辉煌" not in paged and "李秀英" not in paged
        x = client.get("/chronic/overdue?format=xlsx&status=diabetes_t2")
        assert x.status_code == 200
        sheet = list(load_workbook(BytesIO(x.content)).active.iter_rows(values_only=True))
        assert sheet[0][:3] == ("患者", "联系电话", "病种") and [r[0] for r in sheet[1:]] == ["王辉煌"]
        assert sheet[1][6] == 6
        # the township doctor calls; a missing outcome keeps the note typed
        task = repository.open_follow_up(db, world["dm"].id)
        r = client.post(f"/chronic/follow-ups/{task.id}/calls", data={"csrf_token": csrf, "call_note": "下午再打"},
                        follow_redirects=False)
        assert r.status_code == 422 and "请选择通话结果" in r.text and 'value="下午再打"' in r.text
        r = client.post(f"/chronic/follow-ups/{task.id}/calls",
                        data={"csrf_token": csrf, "outcome": "will_come", "call_note": "周五来"}, follow_redirects=False)
        assert r.status_code == 303
        assert "已接通，约定随访" in client.get(r.headers["location"]).text
        assert "已接通，约定随访" in client.get("/chronic/overdue").text
        # the other institution sees none of it
        client.post("/logout", data={"csrf_token": csrf})
        b.login(client, "smdoctor")
        assert "王辉煌" not in client.get("/chronic/overdue").text
        assert client.post(f"/chronic/follow-ups/{task.id}/calls",
                           data={"csrf_token": b.login(client, "smdoctor"), "outcome": "no_answer"}).status_code == 404


def _order(db, patient_id: int, institution_id: int) -> DiagnosticOrder:  # type: ignore[no-untyped-def]
    order = DiagnosticOrder(accession_number="GQ-GLU-1", patient_id=patient_id, ordering_institution_id=institution_id,
                            kind="lab", item_code="GLU", item_name="空腹血糖", status="reported")
    db.add(order)
    db.flush()
    return order


def _glucose_result(db, order: DiagnosticOrder, value: str, units: str = "mmol/L"):  # type: ignore[no-untyped-def]
    obs = LabObservation(order_id=order.id, code="1558-6", code_system="LN", name="空腹血糖", value=value,
                         units=units, result_status="F", observed_at=clock.now())
    db.add(obs)
    db.flush()
    return obs


def test_a_visit_or_a_lab_result_raises_an_alarm_that_becomes_a_prefilled_urgent_referral(db, client, world) -> None:  # type: ignore[no-untyped-def]
    sub = world["sub"]
    day = D + timedelta(days=14)
    with clock.frozen(_at(day)):
        task = repository.open_follow_up(db, world["dm"].id)
        data = service.VisitIn(done_on=day, fasting_glucose=17.2, sbp=150, dbp=90,
                               medications=["二甲双胍 0.5g tid"])
        nxt = service.record_follow_up(db, sub, task.id, data)
        assert task.classification == "urgent" and nxt.reason == "after_referral"
        alarm = db.scalar(select(ChronicAlarm).where(ChronicAlarm.source_key == f"visit-{task.id}"))
        assert (alarm.kind, alarm.value_text, alarm.responsible_user_id) == (
            "glucose_high", "血糖 17.2 mmol/L", world["doctor"].id)
        assert alarms.open_count(db, sub) == 1
        # a lab result of the same patient: ≤ 3.9 mmol/L (70 mg/dL ÷ 18) raises one more, once
        order = _order(db, world["wang"].id, world["centre"].id)
        obs = _glucose_result(db, order, "60", units="mg/dL")
        _glucose_result(db, order, "6.1")
        assert alarms.scan_labs(db) == 1 and alarms.scan_labs(db) == 0
        lab = db.scalar(select(ChronicAlarm).where(ChronicAlarm.source_key == f"lab-{obs.id}"))
        assert lab.kind == "glucose_low" and lab.source == "lab"
        item = next(i for i in workbench.for_subject(db, sub).items if i.key == "chronic.alarms")
        assert item.count == 2 and item.url == "/chronic/alarms?status=open"

        csrf = b.login(client, "gqdoctor")
        # the patient's next follow-up shows both open alarms with their buttons
        visit_page = client.get(f"/chronic/follow-ups/{nxt.id}").text
        assert 'id="patient-alarms"' in visit_page and visit_page.count("确认并发起紧急上转") == 2
        page = client.get(item.url)
        assert re.search(r'id="list-total">共 2 条', page.text) and "血糖过高" in page.text
        r = client.post(f"/chronic/alarms/{alarm.id}/acknowledge", data={"csrf_token": csrf, "refer": "1"},
                        follow_redirects=False)
        assert r.status_code == 303
        prefill = parse_qs(urlparse(r.headers["location"]).query)
        assert prefill["priority"] == ["urgent"] and prefill["direction"] == ["up"]
        assert prefill["patient_id"] == [str(world["wang"].id)]
        form = client.get(r.headers["location"])
        assert form.status_code == 200
        assert "血糖 17.2 mmol/L" in form.text and "二甲双胍 0.5g tid" in form.text and "E11 2型糖尿病" in form.text
        assert re.search(r'<option value="urgent" selected', form.text)
        assert alarms.open_count(db, sub) == 1
        db.expire_all()
        with pytest.raises(Conflict):
            alarms.acknowledge(db, sub, alarm.id)
        assert db.scalar(select(func.count()).select_from(ChronicAlarm).where(
            ChronicAlarm.acknowledged_at.is_(None))) == 1
    # nobody acknowledges the lab alarm within the hour: the whole institution is told
    with clock.frozen(_at(day) + timedelta(minutes=61)):
        assert alarms.escalate_overdue(db) == 1 and alarms.escalate_overdue(db) == 0
    stranger = b.subject_for(db, db.scalar(select(User).where(User.username == "smdoctor")))
    with pytest.raises(NotFound):
        alarms.acknowledge(db, stranger, lab.id)
