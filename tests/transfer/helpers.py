"""A Beijing–Langfang world for transfer tests: the children's hospitals share an alliance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.authz.subject import Subject
from yilianti.models.alliance import Institution
from yilianti.models.patient import Patient
from yilianti.models.transfer import CriticalTransfer
from yilianti.transfer import service
from yilianti.transfer.schemas import AcceptIn, DispatchIn, TransferIn


@dataclass
class TWorld:
    capital: Institution  # 首都儿科研究所附属儿童医院 (receives)
    langfang: Institution  # 廊坊市儿童医院 (requests)
    outsider: Institution
    cap_doc: Subject
    lf_doc: Subject
    out_doc: Subject
    patient: Patient
    cap_doc_username: str
    lf_doc_username: str
    out_doc_username: str


def tworld(db: Session) -> TWorld:
    capital = b.institution(db, "首都儿科研究所附属儿童医院", kind="specialty", level=3)
    langfang = b.institution(db, "廊坊市儿童医院", kind="specialty", level=3, province="河北", city="廊坊")
    outsider = b.institution(db, "联盟外医院", level=2)
    b.alliance(db, (capital, "lead"), (langfang, "member"), name="京津冀儿科专科联盟")
    b.alliance(db, (outsider, "member"), name="另一个医联体")
    prac = b.practitioner(db, capital, "王新生", "主任医师")
    cap_user = b.user(db, capital, "doctor", practitioner_id=prac.id)
    lf_user = b.user(db, langfang, "doctor")
    out_user = b.user(db, outsider, "doctor")
    lf_doc = b.subject_for(db, lf_user)
    patient = b.patient(db, lf_doc, name="张宝宝", birth=date(2026, 11, 20))
    return TWorld(capital, langfang, outsider, b.subject_for(db, cap_user), lf_doc, b.subject_for(db, out_user),
                  patient, cap_user.username, lf_user.username, out_user.username)


def neonatal_in(w: TWorld, **kw: object) -> TransferIn:
    data: dict[str, object] = {
        "patient_id": w.patient.id, "destination_institution_id": w.capital.id, "network": "neonatal",
        "diagnosis": "早产儿（32周），新生儿呼吸窘迫综合征",
        "vitals": {"hr": 168, "spo2": 86, "rr": 72, "temp": 36.1, "weight_kg": 1.65},
    }
    data.update(kw)
    return TransferIn.model_validate(data)


def dispatched(db: Session, w: TWorld, **kw: object) -> CriticalTransfer:
    t = service.request(db, w.lf_doc, neonatal_in(w, **kw))
    service.accept(db, w.cap_doc, t.id, AcceptIn(bed_note="NICU 3 床"))
    return service.dispatch(db, w.cap_doc, t.id, DispatchIn(vehicle="京A·12035 新生儿转运车",
                                                             team="王新生（医生）、李护士（护士）"))
