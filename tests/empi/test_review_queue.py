"""The review queue as an identity team works it (issue 17 item 4): likeliest pair first, filters by member
and probability band, what is left per member, bulk decisions through the single decision (audited, scoped,
all-or-nothing per pair), the pair side by side with the differing characters marked, the next pair after a
decision."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import select

from tests import builders as b
from tests.empi.helpers import count, register, world
from yilianti.empi import explain, service
from yilianti.models.audit import AuditEvent
from yilianti.models.empi import DoNotMatch, MatchCandidate, MergeEvent, PatientRecord
from yilianti.models.patient import Patient


def _explanation(total: float, probability: float) -> dict[str, float]:
    return {"prior": -14.2, "name": 11.4, "name_level": 0.0, "name_one_in": 3214.0, "birth_date": 6.1,
            "birth_date_level": 2.0, "sex": 1.0, "sex_level": 0.0, "phone": -2.5, "phone_level": 1.0,
            "total": total, "probability": probability}


def _record(db: Any, who: Any, name: str, birth: date, phone: str) -> PatientRecord:
    reg = register(db, who, name, birth=birth, phone=phone, address=None)
    rec = db.scalar(select(PatientRecord).where(PatientRecord.patient_id == reg.patient.id))
    assert rec is not None
    return rec


def _queue(db: Any) -> dict[str, Any]:
    """Three pairs queued oldest first A, B, C with probabilities A 99.6 %, B 66.7 %, C 95.7 %: newest first
    would be C, B, A, likeliest first is A, C, B. A and C are 渠口镇–香河县 pairs, B is within 北京儿童医院."""
    w = world(db)
    names = iter(["赵一", "钱二", "孙三", "李四", "周五", "吴六"])
    births = iter(date(1950 + i, 1 + i, 1 + i) for i in range(6))
    phones = iter(f"1380000{i:04d}" for i in range(6))

    def rec(who: Any) -> PatientRecord:
        return _record(db, who, next(names), next(births), next(phones))

    pairs = {}
    for key, (x, y), score in (("A", (w.d_town, w.d_county), 8.0), ("B", (w.d_child, w.d_child), 1.0),
                               ("C", (w.d_county, w.d_town), 4.5)):
        r1, r2 = rec(x), rec(y)
        c = MatchCandidate(record_id=r2.id, other_record_id=r1.id, score=score, rules_version="v5",
                           explanation=_explanation(score, round(1 / (1 + 2 ** -score), 4)), status="open")
        db.add(c)
        db.flush()
        pairs[key] = c
    return {"w": w, **pairs}


def test_queue_is_likeliest_first_with_filters_and_counts(db) -> None:  # type: ignore[no-untyped-def]
    q = _queue(db)
    w, a, b_, c = q["w"], q["A"], q["B"], q["C"]
    admin = b.subject_for(db, b.user(db, None, "system_admin"))
    page = service.queue(db, admin)
    assert [v.candidate.id for v in page.items] == [a.id, c.id, b_.id] and page.total == 3
    assert [v.candidate.id for v in service.candidates(db, admin)] == [a.id, c.id, b_.id]  # the API too
    assert [v.candidate.id for v in service.queue(db, admin, band="95").items] == [a.id, c.id]
    assert [v.candidate.id for v in service.queue(db, admin, band="50").items] == [b_.id]
    assert [v.candidate.id for v in service.queue(db, admin, institution_id=w.children.id).items] == [b_.id]
    two = service.queue(db, admin, page=2, per_page=2)
    assert [v.candidate.id for v in two.items] == [b_.id] and two.pages == 2
    waiting = service.waiting_by_member(db, admin)  # most waiting first; a pair within one member counts once
    assert sorted(waiting) == sorted([(w.county.id, w.county.name, 2), (w.township.id, w.township.name, 2),
                                      (w.children.id, w.children.name, 1)]) and waiting[-1][2] == 1
    # 香河县's administrator: only the pairs of its records, counted for its own member
    assert [v.candidate.id for v in service.queue(db, w.steward).items] == [a.id, c.id]
    assert service.waiting_by_member(db, w.steward) == [(w.county.id, w.county.name, 2)]
    # the next pair in the same order, round to the first
    assert service.next_open(db, admin, a) == c.id
    assert service.next_open(db, admin, c) == b_.id
    assert service.next_open(db, admin, b_) == a.id
    assert service.next_open(db, admin, a, band="95") == c.id


def test_bulk_decisions_are_single_decisions_audited_scoped_and_per_pair(db) -> None:  # type: ignore[no-untyped-def]
    q = _queue(db)
    w, a, b_, c = q["w"], q["A"], q["B"], q["C"]
    # B belongs to another member's records: 香河县's administrator cannot decide it
    out = service.decide_many(db, w.steward, [a.id, b_.id], "rejected", "双胞胎")
    assert out == {a.id: None, b_.id: "未找到该候选或无权处理"}
    db.expire_all()
    assert db.get(MatchCandidate, a.id).status == "rejected" and db.get(MatchCandidate, b_.id).status == "open"
    assert count(db, DoNotMatch) == 1
    rejected = db.scalars(select(AuditEvent).where(AuditEvent.action == "empi_reject")).all()
    assert {e.resource_id for e in rejected} == {str(a.id)} and len(rejected) == 2  # once per person, as single
    # C's persons are on the do-not-match list: its merge fails after the decision began — nothing of it stays
    rc, oc = db.get(PatientRecord, c.record_id), db.get(PatientRecord, c.other_record_id)
    lo, hi = sorted((rc.patient_id, oc.patient_id))
    db.add(DoNotMatch(patient_a_id=lo, patient_b_id=hi, reason="test"))
    admin = b.subject_for(db, b.user(db, None, "system_admin"))
    out = service.decide_many(db, admin, [c.id, b_.id, a.id], "confirmed")
    assert out[b_.id] is None and out[c.id] == "两位患者已被标记为不同的人，不能合并" and out[a.id] == "该候选已处理"
    db.expire_all()
    assert db.get(MatchCandidate, c.id).status == "open" and db.get(MatchCandidate, c.id).decided_at is None
    assert db.get(MatchCandidate, b_.id).status == "confirmed"
    event = db.scalar(select(MergeEvent).where(MergeEvent.candidate_id == b_.id))
    assert event is not None and db.get(Patient, event.merged_id).active is False
    merges = db.scalars(select(AuditEvent).where(AuditEvent.action == "empi_merge")).all()
    assert len(merges) == 2 and {e.patient_id for e in merges} == {event.survivor_id, event.merged_id}


def test_explanation_in_chinese_and_character_diff() -> None:
    from yilianti.empi import fs

    assert all(len(explain.LEVEL_LABELS[f]) == len(fs.LEVELS[f]) for f in fs.FIELDS)
    why = explain.reasons(_explanation(8.0, 0.996))
    assert [(r.field, r.level, r.weight) for r in why] == [
        ("name", "姓名相同", 11.4), ("birth_date", "月日颠倒", 6.1), ("sex", "相同", 1.0), ("phone", "不同", -2.5)]
    assert why[0].one_in == 3214 and [r.field for r in explain.strongest(_explanation(8.0, 0.996), 2)] == [
        "name", "birth_date"]
    assert [(r.field, r.level) for r in explain.reasons({"name": 6.0, "phone": -3.0})] == [
        ("name", "一致"), ("phone", "不一致")]  # rules before v5: weights only
    a, b2 = explain.diff("王思琪", "王思齐")
    assert str(a) == "王思<mark>琪</mark>" and str(b2) == "王思<mark>齐</mark>"
    a, b2 = explain.diff("139****5678", "138****5678")
    assert str(a) == "13<mark>9</mark>****5678" and str(b2) == "13<mark>8</mark>****5678"
    a, _ = explain.diff("<b>", "")
    assert str(a) == "<mark>&lt;b&gt;</mark>"


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_pages_list_detail_next_pair_and_bulk(db, client) -> None:  # type: ignore[no-untyped-def]
    q = _queue(db)
    w, a, b_, c = q["w"], q["A"], q["B"], q["C"]
    b.user(db, None, "system_admin", username="root2")
    b.login(client, "root2")
    listing = client.get("/empi/review").text
    assert listing.index(f'id="candidate-{a.id}"') < listing.index(f'id="candidate-{c.id}"') \
        < listing.index(f'id="candidate-{b_.id}"')
    assert "99.6%" in listing and "66.7%" in listing and "姓名：姓名相同 +11.4" in listing
    assert re.search(rf'id="waiting-{w.county.id}"[^>]*>{w.county.name} <strong>2</strong>', listing)
    only = client.get(f"/empi/review?institution={w.children.id}").text
    assert f'id="candidate-{b_.id}"' in only and f'id="candidate-{a.id}"' not in only
    assert f'id="candidate-{b_.id}"' not in client.get("/empi/review?band=95").text
    detail = client.get(f"/empi/review/{a.id}?band=95").text
    assert "<mark>" in detail and "月日颠倒" in detail and "<kbd>N</kbd>" in detail
    assert f'id="skip" href="/empi/review/{c.id}?band=95"' in detail
    assert 'src="/static/js/empi-review.js"' in detail
    r = client.post(f"/empi/review/{a.id}/reject", data={"csrf_token": _csrf(detail), "band": "95"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/empi/review/{c.id}?band=95&done=rejected"
    r = client.post("/empi/review/bulk", data={"csrf_token": _csrf(detail), "action": "confirmed",
                                               "ids": [str(c.id), str(a.id)]})
    assert r.status_code == 200 and 'id="bulk-result"' in r.text and f'id="bulk-error-{a.id}"' in r.text
    db.expire_all()
    assert db.get(MatchCandidate, c.id).status == "confirmed"
    client.cookies.set("lang", "en")
    en = client.get(f"/empi/review/{b_.id}").text
    assert "Match probability" in en and "Merge these two records into one patient?" in en and "匹配概率" not in en
    assert client.get("/static/js/empi-review.js").status_code == 200
