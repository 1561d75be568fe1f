"""A small diagnostics world: a county reading centre, a township site, a catalogue and people."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.authz.subject import Subject
from yilianti.diagnostics.orders import workflow
from yilianti.models.alliance import Institution
from yilianti.models.diagnostics import DiagnosticItem, DiagnosticOrder, ItemPrice
from yilianti.models.patient import Patient


@dataclass
class DxWorld:
    county: Institution
    township: Institution
    outsider: Institution
    site_doc: Subject  # township doctor
    reader: Subject  # county reader (qualified), head of the reading department (may assign)
    reader2: Subject  # another qualified county reader
    trainee: Subject  # county reader in training
    head: Subject  # township department head
    outsider_doc: Subject
    admin: Subject  # county institution admin
    ct: DiagnosticItem
    tsh: DiagnosticItem
    patient: Patient
    usernames: dict[str, str]


def dx_world(db: Session, tag: str = "") -> DxWorld:
    county = b.institution(db, f"香河县人民医院{tag}{id(db) % 10000}", level=2)
    township = b.institution(db, f"渠口镇卫生院{tag}{id(db) % 10000}", kind="township", level=1)
    outsider = b.institution(db, f"外地医院{tag}{id(db) % 10000}")
    b.alliance(db, (county, "lead"), (township, "member"), model="county_community")
    dept = b.department(db, township, "全科")
    names: dict[str, str] = {}

    def person(inst: Institution, key: str, *roles: str, trainee: bool = False, head: bool = False,
               department_id: int | None = None) -> Subject:
        p = b.practitioner(db, inst, name=f"{key}医生")
        p.is_trainee, p.is_department_head, p.department_id = trainee, head, department_id
        u = b.user(db, inst, *roles, practitioner_id=p.id)
        names[key] = u.username
        return b.subject_for(db, u, inst.id)

    site_doc = person(township, "site", "doctor", department_id=dept.id)
    head = person(township, "head", "doctor", head=True, department_id=dept.id)
    reader = person(county, "reader", "reader", "doctor", head=True)  # head of the county imaging department
    reader2 = person(county, "reader2", "reader")
    trainee = person(county, "trainee", "reader", trainee=True)
    outsider_doc = person(outsider, "outsider", "doctor")
    admin_user = b.user(db, county, "institution_admin")
    names["admin"] = admin_user.username
    admin = b.subject_for(db, admin_user, county.id)
    ct = DiagnosticItem(code="CT-HEAD", name="头颅CT平扫", kind="imaging", modality="CT",
                        reading_centre_institution_id=county.id, expected_tat_minutes=120)
    tsh = DiagnosticItem(code="LAB-TSH", name="促甲状腺激素", kind="lab", modality="LAB", loinc_code="3016-3",
                         reading_centre_institution_id=county.id, expected_tat_minutes=24 * 60)
    db.add_all([ct, tsh])
    db.flush()
    db.add_all([ItemPrice(item_id=ct.id, institution_id=township.id, price_fen=16000, fee_standard="乡镇卫生院"),
                ItemPrice(item_id=tsh.id, institution_id=township.id, price_fen=2500, fee_standard="乡镇卫生院")])
    db.flush()
    patient = b.patient(db, site_doc, name="赵桂兰")
    return DxWorld(county, township, outsider, site_doc, reader, reader2, trainee, head, outsider_doc, admin,
                   ct, tsh, patient, names)


def ordered(db: Session, w: DxWorld, item: DiagnosticItem | None = None, priority: str = "routine") -> DiagnosticOrder:
    return workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=(item or w.ct).id,
                                priority=priority, clinical_question="头晕两天，排除脑梗")


def received(db: Session, w: DxWorld, **kw: object) -> DiagnosticOrder:
    order = ordered(db, w, **kw)  # type: ignore[arg-type]
    workflow.mark_acquired(db, w.site_doc, order.id)
    workflow.mark_transmitted(db, w.site_doc, order.id)
    workflow.mark_received(db, w.reader, order.id)
    return order
