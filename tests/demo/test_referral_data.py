"""The demo referral and critical-transfer data (demo/referrals.py), on the package's one load."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.auth import service as auth_service
from yilianti.demo import dataset, loader, referrals
from yilianti.models.alliance import Institution
from yilianti.models.auth import User
from yilianti.models.referral import FollowUpTask, Referral
from yilianti.models.transfer import CriticalTransfer
from yilianti.transfer import service as transfer


def _inst(db: Session, name: str) -> int:
    return db.scalar(select(Institution.id).where(Institution.name == name))  # type: ignore[return-value]


def test_neonatal_transfer_takes_2h40(db: Session) -> None:
    t = db.scalar(select(CriticalTransfer).where(CriticalTransfer.network == "neonatal"))
    assert t is not None and t.status == "handed_over"
    assert t.origin_institution_id == _inst(db, referrals.LF_CHILDREN)
    assert t.destination_institution_id == _inst(db, referrals.JINGLANG_LEAD)
    m = transfer.metrics(t, transfer.milestones(db, t.id))
    assert m.total_minutes == 160


def test_chest_pain_indicators_and_an_open_transfer(db: Session) -> None:
    t = db.scalar(select(CriticalTransfer).where(CriticalTransfer.network == "chest_pain"))
    assert t is not None
    got = {i.key: i.minutes for i in transfer.metrics(t, transfer.milestones(db, t.id)).indicators}
    assert got["fmc_to_ecg"] == 8 and got["door_to_balloon"] == 85
    assert db.scalar(select(func.count()).where(CriticalTransfer.status == "in_progress")) == 1


def test_every_referral_state_is_there(db: Session) -> None:
    states = set(db.scalars(select(Referral.status).distinct()))
    assert {"submitted", "received", "accepted", "rejected", "returned", "closed"} <= states
    rej = db.scalar(select(Referral).where(Referral.status == "rejected"))
    assert rej is not None and rej.reject_code == "no_bed"
    assert db.scalar(select(func.count()).select_from(Referral).where(Referral.direction == "down")) >= 10
    bd = _inst(db, referrals.BAODING)
    months = set(db.scalars(select(Referral.submitted_at).where(Referral.from_institution_id == bd)))
    assert len({(m.year, m.month) for m in months if m}) >= 4


def test_tianjin_down_referral_tasks_are_open_at_taoyuanjie(db: Session) -> None:
    community = _inst(db, loader.COMMUNITY)
    down = db.scalar(select(Referral).where(Referral.direction == "down", Referral.to_institution_id == community))
    assert down is not None and down.status == "accepted" and down.linked_referral_id is not None
    up = db.get(Referral, down.linked_referral_id)
    assert up is not None and up.status == "closed" and up.booking_id is not None
    tasks = list(db.scalars(select(FollowUpTask).where(FollowUpTask.referral_id == down.id)))
    assert len(tasks) == 3 and all(t.status == "open" and t.institution_id == community for t in tasks)


def test_one_overdue_referral(db: Session) -> None:
    from yilianti.kit import clock
    overdue = db.scalars(select(Referral).where(Referral.due_at < clock.now(),
                                                Referral.status.in_(("submitted", "received", "accepted")))).all()
    assert [(r.status, r.from_institution_id) for r in overdue] == [("submitted", _inst(db, referrals.YINHE))]


def test_a_second_load_adds_nothing(db: Session) -> None:
    before = (db.scalar(select(func.count(Referral.id))), db.scalar(select(func.count(CriticalTransfer.id))))
    dataset.load_demo(db)
    assert (db.scalar(select(func.count(Referral.id))), db.scalar(select(func.count(CriticalTransfer.id)))) == before


def test_new_accounts_log_in(db: Session) -> None:
    names = {a.username for a in loader.demo_accounts()}
    for spec in loader.REFERRAL_ACCOUNTS:
        assert spec.username in names
        user = db.scalar(select(User).where(User.username == spec.username))
        assert user is not None
        assert auth_service.authenticate(db, spec.username, loader.DEMO_PASSWORD) is not None



def test_the_pages_show_the_neonatal_timeline_and_the_community_tasks(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    t = db.scalar(select(CriticalTransfer).where(CriticalTransfer.network == "neonatal"))
    assert t is not None
    b.login(client, "lfch-doctor", loader.DEMO_PASSWORD)
    page = client.get(f"/transfers/{t.id}")
    assert page.status_code == 200
    assert re.search(r'id="total"><b>2 小时 40 分', page.text), page.text[:2000]
    client.cookies.clear()
    b.login(client, "tj-community-doctor", loader.DEMO_PASSWORD)
    page = client.get("/referrals?side=receiver")
    assert page.status_code == 200 and "随访吸入装置使用方法" in page.text
