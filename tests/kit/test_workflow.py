"""The workflow kit (kit/workflow.py): one declared machine, one transition.

Exercised through real domains (the kit has no table of its own): the transfer's machine for the
checks, the referral's for the history row, and a committed database for racing moves.
"""

from __future__ import annotations

import threading
from collections import Counter
from enum import StrEnum

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.referral.helpers import setup, submitted_up
from tests.transfer.helpers import neonatal_in, tworld
from yilianti import db as dbmod
from yilianti.exceptions import Conflict, Forbidden, NotFound
from yilianti.kit import clock
from yilianti.kit.sqlcompile import column, sql, sql_in, sql_insert, sql_json
from yilianti.kit.workflow import Machine, move_detail
from yilianti.migrate import upgrade
from yilianti.models.referral import ReferralHistory
from yilianti.models.transfer import CriticalTransfer
from yilianti.referral import service as referral
from yilianti.transfer import service as transfer
from yilianti.transfer.schemas import AcceptIn
from yilianti.transfer.states import Status


class Light(StrEnum):
    red = "red"
    green = "green"
    amber = "amber"


class Who(StrEnum):
    driver = "driver"
    police = "police"


LIGHT: Machine[Light, Who] = Machine(
    status=Light, moves={(Light.red, Light.green): frozenset({Who.police}),
                         (Light.green, Light.amber): frozenset({Who.police, Who.driver})},
    final=frozenset({Light.amber}), labels={Light.red: "红灯", Light.green: "绿灯", Light.amber: "黄灯"},
    conflict_code="light_state_conflict", conflict_message="信号灯当前为“{current}”")


def test_machine_declares_moves_sides_and_the_conflict() -> None:
    assert LIGHT.allowed("red", "green") == {Who.police}
    assert LIGHT.allowed("green", "red") is None  # not declared
    assert LIGHT.allowed("blue", "red") is None  # not a status
    assert LIGHT.next_moves("green", Who.driver) == [Light.amber]
    assert LIGHT.next_moves("red", Who.driver) == []
    assert LIGHT.open == {Light.red, Light.green}
    conflict = LIGHT.conflict("green")
    assert (conflict.status, conflict.code, conflict.params) == (409, "light_state_conflict", {"current": "绿灯"})
    assert LIGHT.label("blue") == "blue"
    # a message that names no status gets no parameter (the transfer's)
    assert transfer.WORKFLOW.machine.conflict("accepted").params == {}


def test_builders_compile_into_sql() -> None:
    assert sql(Light.red) == "'red'" and sql(None) == "NULL" and sql(True) == "true"
    assert sql_in([Light.amber, Light.red]) == "('red', 'amber')"  # the enum's order
    assert sql_json({"a": column("x.a"), "b": {"c": "文字", "d": None}}) == \
        "json_build_object('a', x.a, 'b', json_build_object('c', '文字', 'd', NULL))"
    assert sql_insert({"k": column("u.id"), "v": None}) == ("k, v", "u.id, NULL")
    assert move_detail("a", "b", {"c": 1}) == {"from": "a", "to": "b", "c": 1}


def test_undeclared_move_is_409_and_writes_nothing(db: Session) -> None:
    w = tworld(db)
    t = transfer.request(db, w.lf_doc, neonatal_in(w))
    with pytest.raises(Conflict) as exc:  # requested → dispatched is not declared
        transfer.WORKFLOW.transition(db, w.cap_doc, t.id, Status.dispatched)
    assert (exc.value.status, exc.value.code, exc.value.message) == (409, "transfer_state_conflict",
                                                                     "转运当前状态不允许此操作")
    with pytest.raises(Conflict):  # move() refuses an undeclared edge as well
        transfer.WORKFLOW.move(db, w.cap_doc, t, Status.handed_over, None)
    db.expire_all()
    assert db.get(CriticalTransfer, t.id).status == Status.requested  # type: ignore[union-attr]


def test_wrong_side_is_403_and_a_stranger_404(db: Session) -> None:
    w = tworld(db)
    t = transfer.request(db, w.lf_doc, neonatal_in(w))
    with pytest.raises(Forbidden) as exc:  # only the destination accepts
        transfer.WORKFLOW.transition(db, w.lf_doc, t.id, Status.accepted)
    assert exc.value.message == "只有接收医院的医护人员可以接收转运"
    with pytest.raises(NotFound):
        transfer.WORKFLOW.transition(db, w.out_doc, t.id, Status.accepted)
    with pytest.raises(NotFound):
        transfer.WORKFLOW.transition(db, w.cap_doc, 999_999_999, Status.accepted)
    transfer.accept(db, w.cap_doc, t.id, AcceptIn())
    # the transfer refuses the side before the status (side_first), as it always did: the origin gets 403
    # for accepting an accepted transfer, the destination 409
    with pytest.raises(Forbidden):
        transfer.accept(db, w.lf_doc, t.id, AcceptIn())
    with pytest.raises(Conflict):
        transfer.accept(db, w.cap_doc, t.id, AcceptIn())


def test_referral_checks_the_status_before_the_side(db: Session) -> None:
    w, patient = setup(db)
    ref = submitted_up(db, w, patient)
    with pytest.raises(Forbidden) as exc:  # the sender may not receive
        referral.transition(db, w.comm_doc, ref.id, "received")
    assert exc.value.message == "该操作应由转诊的另一方执行"
    with pytest.raises(Conflict) as conflict:  # an undeclared move is 409 whoever asks
        referral.transition(db, w.comm_doc, ref.id, "arrived")
    assert conflict.value.params == {"current": "已提交"}


def test_a_move_writes_its_history_row_deadline_audit_and_notification(db: Session) -> None:
    w, patient = setup(db)
    ref = submitted_up(db, w, patient)
    with clock.frozen(clock.now()):
        moved = referral.transition(db, w.lead_doc, ref.id, "received", reason="已收到", detail={"k": 1},
                                    expected_status="submitted")
    row = db.scalars(select(ReferralHistory).where(ReferralHistory.referral_id == ref.id)
                     .order_by(ReferralHistory.id.desc())).first()
    assert row is not None
    assert (row.user_id, row.acting_institution_id, row.from_status, row.to_status, row.reason, row.detail) == \
        (w.lead_doc.user_id, w.lead.id, "submitted", "received", "已收到", {"k": 1})
    assert moved.updated_at == row.at and moved.due_at is not None and moved.due_at > row.at
    # the expected status is checked on the locked row: a second, late client gets the 409 naming it
    with pytest.raises(Conflict) as exc:
        referral.transition(db, w.lead_doc, ref.id, "received", expected_status="submitted")
    assert exc.value.params == {"current": "已接收"}


@pytest.fixture(scope="module")
def committed(test_db):  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url)
    engine = dbmod.make_engine(url, **({"pool_size": 12, "max_overflow": 4} if "postgresql" in url else {}))
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    yield factory
    engine.dispose()


def test_racing_moves_with_the_same_expected_status_one_wins(committed):  # type: ignore[no-untyped-def]
    with committed() as db:
        w = tworld(db)
        t = transfer.request(db, w.lf_doc, neonatal_in(w))
        db.commit()
        transfer_id, doc = t.id, w.cap_doc
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        with committed() as db:
            try:
                transfer.WORKFLOW.transition(db, doc, transfer_id, Status.accepted, expected_status=Status.requested)
                db.commit()
                result = "ok"
            except Conflict as exc:
                db.rollback()
                result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert Counter(outcomes) == Counter({"ok": 1, "transfer_state_conflict": n - 1})
    with committed() as db:
        assert db.scalar(select(CriticalTransfer.status).where(CriticalTransfer.id == transfer_id)) == "accepted"
        assert db.scalar(select(func.count()).select_from(CriticalTransfer)) == 1
