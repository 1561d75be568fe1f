"""The demo data set: real alliances from the YAML, synthetic staff, accounts and patients.

The data set is loaded once for the package (tests/demo/conftest.py, in a transaction rolled
back at the end); the tests only read it, except the login tests whose writes are rolled back too.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.auth.service import build_subject
from yilianti.demo import chronic as demo_chronic
from yilianti.demo import cockpit as demo_cockpit
from yilianti.demo import dataset, loader, recognition, referrals
from yilianti.demo import empi as demo_empi
from yilianti.demo import scheduling as demo_scheduling
from yilianti.kit import validate
from yilianti.models import (
    Alliance,
    AuditEvent,
    CareRelationship,
    Consent,
    Department,
    Institution,
    Membership,
    Patient,
    PatientIdentifier,
    PracticeSite,
    Practitioner,
    RoleAssignment,
    User,
)
from yilianti.models.alliance import GRASSROOTS_KINDS
from yilianti.models.outbox import OutboxMessage
from yilianti.models.patient import Authority
from yilianti.models.scheduling import (
    BedReservation,
    Booking,
    BookingRequest,
    ClinicSession,
    Schedule,
    ScheduleTemplate,
    Slot,
    Ward,
)

PATIENTS = (300 + 36 + referrals.PATIENTS + recognition.PATIENTS + demo_empi.PATIENTS
            + demo_cockpit.PATIENTS + demo_chronic.PATIENTS)  # first data set, 36 at 太阳宫 (booking), referral,
# recognition, EMPI, cockpit data and 高桥镇's residents (chronic care)


def _inst(db: Session, name: str) -> Institution:
    inst = db.scalar(select(Institution).where(Institution.name == name))
    assert inst is not None, name
    return inst


def test_every_alliance_institution_and_membership_of_the_yaml_is_there(db: Session) -> None:
    data = loader.alliances_data()
    assert data["alliances"]
    for entry in data["alliances"]:
        alliance = db.scalar(select(Alliance).where(Alliance.key == entry["key"]))
        assert alliance is not None, entry["key"]
        assert alliance.name == entry["name"] and alliance.model == entry["model"]
        assert alliance.name_en == entry.get("name_en")
        assert alliance.founded == (None if entry.get("founded") is None else str(entry["founded"]))
        if entry.get("notes"):
            assert alliance.notes and alliance.notes.startswith(entry["notes"])
        members = {(inst_name, role): m for m, inst_name, role in db.execute(
            select(Membership, Institution.name, Membership.role).join(Institution)
            .where(Membership.alliance_id == alliance.id))}
        expected = [(i["name"], i["role"]) for i in entry.get("institutions") or []]
        expected += [(name, "lead") for name in entry.get("leads") or []]
        assert set(members) == set(expected), entry["key"]
        for item in entry.get("institutions") or []:
            inst = _inst(db, item["name"])
            assert inst.kind == item["kind"] and inst.province == item["province"]
            if "level" in item:
                assert inst.level == item["level"]
            if "short" in item:
                assert inst.short_name == item["short"]
            if "city" in item:
                assert inst.city == item["city"]
            membership = members[(item["name"], item["role"])]
            assert membership.notes == item.get("notes")
    # joined dates: "2016-06" → first of the month; 2018-10-25 kept as is
    joined = dict(db.execute(select(Institution.name, Membership.joined_on).join(Membership)
                             .where(Membership.joined_on.is_not(None))).all())
    assert joined["乌鲁木齐儿童医院"] == date(2016, 6, 1)
    assert joined["廊坊市儿童医院"] == date(2018, 10, 25)
    assert joined["太阳宫社区卫生服务中心"] == date(2013, 12, 1)
    # the Tianjin pediatric alliance of secondary hospitals shares its reserved pool with every member
    pools = dict(db.execute(select(Alliance.key, Alliance.reserve_for)).all())
    assert pools["tianjin-pediatric"] == "members" and pools["xianghe-county"] == "grassroots"
    # alliances without listed institutions exist on their own
    lone = db.scalar(select(Alliance).where(Alliance.key == "jinjinji-recognition"))
    assert lone is not None and lone.cross_province
    # chaoyang-district: the four leads, 垂杨柳医院 created as a general hospital of unknown level
    chuiyangliu = _inst(db, "垂杨柳医院")
    assert chuiyangliu.kind == "general" and chuiyangliu.level is None


def test_institutions_named_in_two_alliances_are_one_institution(db: Session) -> None:
    names = [i["name"] for a in loader.alliances_data()["alliances"] for i in a.get("institutions") or []]
    # + 垂杨柳医院, + 廊坊市卫生健康委员会 (the health authority of the cockpit's demo: it treats no one)
    assert db.scalar(select(func.count()).select_from(Institution)) == len(set(names)) + 2
    for name, alliances in {
        "首都医科大学附属北京儿童医院": {("bch-group", "lead"), ("baoding-trusteeship", "lead")},
        "中日友好医院": {("chaoyang-pediatric", "member"), ("chaoyang-east", "lead"), ("chaoyang-district", "lead")},
        "青海省妇女儿童医院": {("bch-group", "member"), ("qinghai-pediatric", "lead")},
        "乌鲁木齐儿童医院": {("bch-group", "member"), ("urumqi-pediatric", "lead")},
        "太阳宫社区卫生服务中心": {("chaoyang-pediatric", "member"), ("chaoyang-east", "member")},
    }.items():
        assert db.scalar(select(func.count()).select_from(Institution).where(Institution.name == name)) == 1
        got = set(db.execute(select(Alliance.key, Membership.role).join(Membership).join(Institution)
                             .where(Institution.name == name)))
        assert got == alliances, name


def test_departments_and_practitioners_fit_the_kind_of_institution(db: Session) -> None:
    def depts(name: str) -> set[str]:
        return set(db.scalars(select(Department.name).where(Department.institution_id == _inst(db, name).id)))

    assert {"儿内科", "新生儿科", "小儿外科", "儿童呼吸科", "影像科", "检验科"} <= depts("天津市儿童医院")
    assert {"心内科", "急诊科", "影像科", "心电图室"} <= depts("香河县人民医院")
    assert depts("河西区桃园街社区卫生服务中心") == {"全科", "预防保健科", "中医科"}
    assert depts("渠口镇卫生院") == {"全科", "预防保健科", "中医科"}
    assert {"儿保科", "妇产科"} <= depts("株洲市妇幼保健院")
    assert depts("廊坊市120卫生急救中心") == {"院前急救科"}
    # every institution that treats patients has staff (a health authority has none); every hospital department
    # has one head
    staffed = set(db.scalars(select(Practitioner.home_institution_id).distinct()))
    assert staffed == set(db.scalars(select(Institution.id).where(Institution.kind != "health_authority")))
    heads = Counter(db.scalars(select(Practitioner.department_id).where(Practitioner.is_department_head)))
    assert heads and max(heads.values()) == 1
    lead_depts = db.scalars(select(Department.id).where(Department.institution_id == _inst(db, "天津市儿童医院").id))
    assert all(heads[d] == 1 for d in lead_depts)
    # specialty follows the department; some residents have under 3 years of independent practice
    for p, dept_specialty in db.execute(select(Practitioner, Department.specialty)
                                        .join(Department, Department.id == Practitioner.department_id)):
        assert p.specialty == dept_specialty
    residents = db.scalars(select(Practitioner).where(Practitioner.title == "住院医师")).all()
    assert any(p.years_of_practice(date(2026, 1, 1)) < 3 for p in residents)
    assert any(p.years_of_practice(date(2026, 1, 1)) >= 3 for p in residents)
    names = db.scalars(select(Practitioner.name)).all()
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,3}", n) for n in names)


def test_multi_site_practice_follows_the_articles(db: Session) -> None:
    def sites(home: str, site: str) -> list[tuple[PracticeSite, Practitioner]]:
        return list(db.execute(
            select(PracticeSite, Practitioner).join(Practitioner)
            .where(Practitioner.home_institution_id == _inst(db, home).id,
                   PracticeSite.institution_id == _inst(db, site).id)))

    wuhan = sites("武汉市中心医院", "江岸区劳动街社区卫生服务中心")
    assert len(wuhan) == 5 and len({p.id for _, p in wuhan}) == 5
    assert sorted(s.weekday for s, _ in wuhan) == [1, 2, 3, 4, 5]  # each one day a week
    xianghe = sites("香河县人民医院", "渠口镇卫生院")
    assert len(xianghe) >= 3 and all(s.weekday == 5 for s, _ in xianghe)  # every Friday
    (resp, expert), = sites("中日友好医院", "太阳宫社区卫生服务中心")
    assert expert.specialty == "respiratory"
    (tj, tj_expert), = sites("天津市儿童医院", "河西区桃园街社区卫生服务中心")
    assert tj.weekday is not None and tj_expert.name == "张文博"
    baoding = sites("首都医科大学附属北京儿童医院", "北京儿童医院保定医院(保定市儿童医院)")
    assert len(baoding) >= 3
    trainees = db.execute(select(Practitioner, Institution.kind).join(
        Institution, Institution.id == Practitioner.home_institution_id).where(Practitioner.is_trainee)).all()
    assert trainees and all(kind == "township" for _, kind in trainees)
    assert len(sites("渠口镇卫生院", "香河县人民医院")) == 2


def test_loading_again_creates_nothing(db: Session) -> None:
    tables = [Alliance, Institution, Membership, Department, Practitioner, PracticeSite, User, RoleAssignment,
              Patient, PatientIdentifier, Consent, CareRelationship, AuditEvent, Schedule, ScheduleTemplate,
              ClinicSession, Slot, Booking, BookingRequest, Ward, BedReservation, OutboxMessage]

    def counts() -> dict[str, int]:
        return {t.__name__: db.scalar(select(func.count()).select_from(t)) or 0 for t in tables}

    before = counts()
    assert loader.is_loaded(db) and demo_scheduling.is_loaded(db)
    assert dataset.load_demo(db) == loader.demo_accounts()
    db.flush()
    assert counts() == before


def test_demo_accounts_cover_every_role_and_every_tier(db: Session) -> None:
    accounts = loader.demo_accounts()
    assert {a.role for a in accounts} == {"system_admin", "alliance_admin", "institution_admin", "doctor", "nurse",
                                          "reader", "coordinator", "auditor", "health_commission"}
    assert len({a.username for a in accounts}) == len(accounts)
    leads = set(db.scalars(select(Institution.name).join(Membership).where(Membership.role == "lead")))
    tiers: dict[str, set[str]] = {"lead": set(), "secondary": set(), "grassroots": set()}
    for a in accounts:
        inst = db.scalar(select(Institution).where(Institution.name == a.institution_name))
        if inst is None:
            continue
        if inst.kind in GRASSROOTS_KINDS:
            tiers["grassroots"].add(a.role)
        elif inst.name in leads:
            tiers["lead"].add(a.role)
        elif inst.level == 2:
            tiers["secondary"].add(a.role)
    assert all(tiers.values()), tiers
    assert {"doctor", "institution_admin"} <= tiers["grassroots"] and "doctor" in tiers["secondary"]
    county = {a.username: a for a in accounts if a.institution_name in ("香河县人民医院", "渠口镇卫生院")}
    assert {"xianghe-doctor", "xianghe-reader", "qukou-doctor"} <= set(county)


def test_every_demo_account_logs_in_with_its_advertised_role(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    for account in loader.demo_accounts():
        b.login(client, account.username, account.password)
        assert client.get("/account").status_code == 200
        user = db.scalar(select(User).where(User.username == account.username))
        assert user is not None
        subject = build_subject(db, user, None)
        assert account.role in subject.roles
        if account.role == "system_admin":
            assert account.institution_name == loader.PLATFORM
        else:
            assert subject.acting_institution_name == account.institution_name
        if account.role in ("doctor", "nurse", "reader"):
            practitioner = db.get(Practitioner, user.practitioner_id)
            assert practitioner is not None
            assert practitioner.home_institution_id == subject.acting_institution_id
        client.cookies.clear()
    admin = db.scalar(select(User).where(User.username == "tj-alliance-admin"))
    assert admin is not None
    tianjin = db.scalar(select(Alliance).where(Alliance.key == "tianjin-pediatric"))
    assert tianjin is not None and build_subject(db, admin, None).alliance_admin_of == {tianjin.id}


def test_visiting_expert_switches_to_the_community_centre(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    def acting() -> str:
        m = re.search(r'id="acting-institution">([^<]+)<', client.get("/").text)
        assert m
        return m.group(1)

    csrf = b.login(client, "tj-lead-doctor", loader.DEMO_PASSWORD)
    assert acting() == "天津市儿童医院"  # the home institution by default
    community = _inst(db, "河西区桃园街社区卫生服务中心")
    r = client.post("/switch-institution", data={"institution_id": community.id, "csrf_token": csrf, "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert acting() == "河西区桃园街社区卫生服务中心"


def test_patients_have_valid_resident_ids_matching_birth_date_and_sex(db: Session) -> None:
    patients = db.scalars(select(Patient)).all()
    assert len(patients) == PATIENTS
    ids = dict(db.execute(select(PatientIdentifier.patient_id, PatientIdentifier.value)
                          .where(PatientIdentifier.authority == Authority.resident_id)).all())
    with_id = PATIENTS - demo_empi.WITHOUT_ID  # the EMPI review-queue pairs were registered without an ID
    assert len(ids) == with_id and len(set(ids.values())) == with_id
    patients = [p for p in patients if p.id in ids]
    for p in patients:
        rid = validate.resident_id(ids[p.id])
        assert rid.birth_date == p.birth_date and rid.sex == p.sex, p.name
        assert validate.person_name(p.name) == p.name
        if p.guardian_name:
            assert p.guardian_relation and validate.mobile(p.guardian_phone or "") == p.guardian_phone
        else:
            assert validate.mobile(p.phone or "") == p.phone
        assert p.address and p.city and p.address.startswith(("天津市", "河北省廊坊市", "北京市朝阳区", "河北省保定市",
                                                              "福建省三明市沙县区"))
    children = [p for p in patients if p.birth_date and p.birth_date.year >= 2012]
    assert len(children) > 80 and all(c.guardian_name for c in children)
    # the region codes are in the registering institution's region
    lead = _inst(db, "天津市儿童医院")
    township = _inst(db, "渠口镇卫生院")
    taiyanggong = _inst(db, "太阳宫社区卫生服务中心")
    for p in patients:
        if p.registered_by_institution_id in (lead.id,):
            assert ids[p.id][:2] == "12"
        if p.registered_by_institution_id == township.id:
            assert ids[p.id][:6] in ("131024", "132823")
        if p.registered_by_institution_id == taiyanggong.id:
            assert ids[p.id][:6] == "110105" and p.city == "北京"


def test_registration_went_through_the_real_flow(db: Session) -> None:
    mrns = db.execute(select(PatientIdentifier.patient_id, PatientIdentifier.value)
                      .where(PatientIdentifier.authority.like("MRN:%"))).all()
    assert all(re.fullmatch(r"MZ2026\d{6}", v) for _, v in mrns)
    per_patient = Counter(pid for pid, _ in mrns)
    assert set(per_patient.values()) == {1, 2}
    twice = [pid for pid, n in per_patient.items() if n == 2]
    assert len(twice) >= 20  # registered at two members: one person, two care relationships
    for pid in twice[:5]:
        care = db.scalars(select(CareRelationship.institution_id).where(CareRelationship.patient_id == pid)).all()
        assert len(set(care)) == 2
    consented = set(db.scalars(select(Consent.patient_id)))
    assert 0.75 <= len(consented) / PATIENTS <= 0.95  # ~15 % gave no sharing consent
    assert set(db.scalars(select(Consent.scope))) == {"alliance", "all"}
    by_inst = Counter(db.scalars(select(Patient.registered_by_institution_id)))
    for name in ("河西区桃园街社区卫生服务中心", "天津市儿童医院", "渠口镇卫生院", "香河县人民医院"):
        assert by_inst[_inst(db, name).id] >= 50
    assert by_inst[_inst(db, "太阳宫社区卫生服务中心").id] == 36
    created = db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.resource_type == "patient", AuditEvent.action == "create"))
    assert created == PATIENTS


def test_twins_and_namesakes_stay_separate_people(db: Session) -> None:
    def patient(resident_id: str) -> Patient:
        p = db.scalar(select(Patient).join(PatientIdentifier).where(
            PatientIdentifier.authority == Authority.resident_id, PatientIdentifier.value == resident_id))
        assert p is not None
        return p

    a, b_ = (patient(t["resident_id"]) for t in loader.TWINS)
    assert a.id != b_.id and a.name != b_.name
    assert (a.birth_date, a.address, a.guardian_phone) == (b_.birth_date, b_.address, b_.guardian_phone)
    w1, w2 = (patient(n["resident_id"]) for n in loader.NAMESAKES)
    assert w1.id != w2.id and w1.name == w2.name == "王伟"
    assert w1.birth_date and w2.birth_date and w1.birth_date.year == w2.birth_date.year
    assert db.scalar(select(func.count()).select_from(Patient).where(Patient.name == "王伟")) == 2
