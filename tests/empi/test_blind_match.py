"""Matching compares candidates' phone and resident ID by blind index (HMAC), never decrypting them
(issue 5, B6): the same decisions as comparing the plaintext, and still after a key rotation."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from tests import builders as b
from tests.empi.helpers import register, world
from yilianti.config import get_settings
from yilianti.empi import online, repository
from yilianti.empi import service as empi
from yilianti.empi.matching import CURRENT
from yilianti.kit import crypto
from yilianti.models.empi import PatientRecord
from yilianti.patients import keys as key_rotation
from yilianti.patients import service as patients

# built on rules v4's weights and thresholds (v5 has its own: test_rules_v5.py)
pytestmark = pytest.mark.usefixtures("rules_v4")


@pytest.fixture
def keys_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()
    crypto.reset()


def _set_keys(monkeypatch: pytest.MonkeyPatch, data: list[str] | None = None, index: str | None = None) -> None:
    if data is not None:
        monkeypatch.setenv("YILIANTI_DATA_KEYS", ",".join(data))
    if index is not None:
        monkeypatch.setenv("YILIANTI_INDEX_KEY", index)
    get_settings.cache_clear()
    crypto.reset()


def _demo(name: str, phone: str | None, address: str, rid: str | None = None,
          birth: date = date(1980, 3, 14)) -> online.Demographics:
    return empi.demographics_of(patients.RegistrationIn(
        name=name, sex="男", birth_date=birth.isoformat() if not rid else None, resident_id=rid, phone=phone,
        address=address, consent_scope="none"))


@pytest.fixture
def no_decrypt(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the ciphertexts decrypted while it is active."""
    seen: list[str] = []
    real = crypto.decrypt

    def counting(token: str) -> str:
        seen.append(token)
        return real(token)

    monkeypatch.setattr(crypto, "decrypt", counting)
    return seen


def test_a_phone_written_differently_is_the_supporting_field_through_its_blind_index(db, no_decrypt):  # type: ignore[no-untyped-def]
    w = world(db)
    first = register(db, w.d_town, "欧阳明远", birth=date(1980, 3, 14), phone="13912345678",
                     address="河北省廊坊市香河县渠口镇东街12号")
    # the phone is stored encrypted: the SQL row holds no digits of it
    raw = db.execute(text("SELECT phone FROM patient_record")).scalar_one()
    assert "13912345678" not in raw
    # another member, the phone with the country code and dashes, an address in another city: the
    # phone is the only field besides name and birth date that agrees (rules v2 needs one to auto-link)
    demo = _demo("欧阳明远", "+86 139-1234-5678", "北京市西城区南礼士路56号")
    no_decrypt.clear()
    decision = online.decide(db, demo)
    assert no_decrypt == []  # nothing decrypted to score the candidate
    assert decision.link_to == first.patient.id and decision.score is not None
    assert decision.score >= CURRENT.auto_link
    second = register(db, w.d_county, "欧阳明远", birth=date(1980, 3, 14), phone="+86 139-1234-5678",
                      address="北京市西城区南礼士路56号")
    assert second.patient.id == first.patient.id and second.link == "score"
    # a different phone is no support: the same name and birth date alone go to review, not a link
    other = online.decide(db, _demo("欧阳明远", "13800000000", "广东省广州市天河区体育西路1号"))
    assert other.link_to is None and [c.patient_id for c in other.review] == [first.patient.id]
    assert other.review[0].explanation["phone"] == CURRENT.phone_disagree


def test_a_different_valid_resident_id_is_never_the_same_person_compared_by_blind_index(db, no_decrypt):  # type: ignore[no-untyped-def]
    w = world(db)
    rid_a = b.resident_id(date(1980, 3, 14), region="110105")
    rid_b = b.resident_id(date(1980, 3, 14), region="110105", seq=11)
    first = register(db, w.d_town, "欧阳明远", rid=rid_a, phone="13912345678")
    rec = db.scalar(select(PatientRecord).where(PatientRecord.patient_id == first.patient.id))
    assert rec.rid_key == crypto.blind_index("id", rid_a) and rid_a not in str(
        db.execute(text("SELECT rid FROM patient_record")).scalar_one())
    no_decrypt.clear()
    decision = online.decide(db, _demo("欧阳明远", "13912345678", "河北省廊坊市香河县渠口镇东街12号", rid=rid_b))
    assert no_decrypt == []
    assert decision.link_to is None and decision.review == []  # hard negative: not even a review
    second = register(db, w.d_county, "欧阳明远", rid=rid_b, phone="13912345678")
    assert second.patient.id != first.patient.id and second.link == "new"


def test_matching_still_works_after_rotating_the_data_key_and_reindexing(db, keys_env):  # type: ignore[no-untyped-def]
    w = world(db)
    rid = b.resident_id(date(1980, 3, 14), region="110105")
    first = register(db, w.d_town, "欧阳明远", birth=date(1980, 3, 14), phone="13912345678",
                     address="河北省廊坊市香河县渠口镇东街12号")
    twin = register(db, w.d_town, "欧阳明远", rid=rid, phone="13700001111", address="河北省沧州市献县")
    assert twin.patient.id != first.patient.id
    old = get_settings().resolved_data_keys()[0]
    _set_keys(keys_env, data=[Fernet.generate_key().decode(), old])
    key_rotation.rotate_all(db.connection(), out=io.StringIO())
    _set_keys(keys_env, index="a-new-index-key")  # a new index key: every blind index recomputed
    key_rotation.rotate_all(db.connection(), reindex=True, out=io.StringIO())
    db.expire_all()
    rec = db.scalar(select(PatientRecord).where(PatientRecord.patient_id == twin.patient.id))
    assert rec.rid_key == crypto.blind_index("id", rid)
    # the phone (written differently) still supports the link, through the new index key
    again = register(db, w.d_county, "欧阳明远", birth=date(1980, 3, 14), phone="139 1234 5678",
                     address="北京市西城区南礼士路56号")
    assert again.patient.id == first.patient.id and again.link == "score"
    # and another valid resident ID is still a different person than the one with `rid`
    other_rid = b.resident_id(date(1980, 3, 14), region="110105", seq=11)
    decision = online.decide(db, _demo("欧阳明远", "13700001111", "河北省沧州市献县", rid=other_rid))
    assert twin.patient.id not in {decision.link_to, *(c.patient_id for c in decision.review)}


def test_do_not_match_reaches_persons_merged_into_either_side_until_the_merge_is_undone(db):  # type: ignore[no-untyped-def]
    from yilianti.kit import clock
    from yilianti.models.empi import DoNotMatch, MergeEvent

    w = world(db)
    p = [register(db, w.d_town, name, birth=date(1980 + i, 1, 2), phone=None, address=None).patient.id
         for i, name in enumerate(["甲一", "乙二", "丙三", "丁四", "戊五"])]
    # p1 ← p2 ← p3 merged (transitively into p1); p3 and p4 declared different people
    m1 = MergeEvent(kind="merge", survivor_id=p[0], merged_id=p[1], moved={}, snapshot={})
    db.add_all([m1, MergeEvent(kind="merge", survivor_id=p[1], merged_id=p[2], moved={}, snapshot={}),
                DoNotMatch(patient_a_id=p[2], patient_b_id=p[3])])
    db.flush()
    assert repository.do_not_match(db, p[0], p[3]) and repository.do_not_match(db, p[3], p[0])
    assert repository.do_not_match(db, p[2], p[3]) and repository.do_not_match(db, p[1], p[3])
    assert not repository.do_not_match(db, p[0], p[4]) and not repository.do_not_match(db, p[3], p[4])
    m1.undone_at = clock.now()  # unmerged: p2 and p3 are no longer part of p1
    db.flush()
    assert not repository.do_not_match(db, p[0], p[3]) and repository.do_not_match(db, p[1], p[3])
