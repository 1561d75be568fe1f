"""The cockpit's part of the demo (behind its own marker).

- The county-level supervisor — 廊坊市卫生健康委员会, a health authority of its own kind — and its account, which sees
  the cockpits of the alliances led from 廊坊 (香河, 固安, 霸州, 广阳, the chest-pain and stroke networks), no patient.
  Its cockpit opens on the first of them by name, 固安县医共体: no referral history there (its referral curves are
  zeros; 广阳's city alliance holds the region's referrals), but its members' HIS data and the register draw the
  curves of national (7) and (11) (demo/encounters.py).
- Three years of the Baoding trusteeship, made by driving the referral workflow's own services under a frozen
  clock (not numbers painted into tables): up-referrals 保定 → 北京儿童医院 rising while 保定 cannot yet treat
  what it sends, then falling as the experts posted there build its departments; down-referrals rising. With them
  the help sent down (postings of Beijing experts as department directors, clinics, surgeries guided, lectures,
  trainees, techniques first done in 保定), entered through the assistance service, and targets set by the
  alliance's administrator.
- 香河县医共体's national indicators for 2025 and the first half of 2026, imported as the 卫健委 would.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.cockpit import assistance, service
from yilianti.demo import loader, referrals
from yilianti.kit import clock
from yilianti.models.alliance import Alliance, Institution, InstitutionKind
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.outbox import Notification
from yilianti.models.scheduling import Ward
from yilianti.scheduling import beds

MARKER_ACTION = "demo_load_cockpit"
PATIENTS = 24 + 12  # 保定's children sent up, and those who went to Beijing on their own
COMMISSION = "廊坊市卫生健康委员会"


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


def load(db: Session) -> dict[str, Any]:
    authority = db.scalar(select(Institution).where(Institution.name == COMMISSION))
    if authority is None:
        authority = Institution(name=COMMISSION, short_name="廊坊市卫健委", kind=InstitutionKind.health_authority,
                                level=None, province="河北", city="廊坊", address="河北省廊坊市广阳区新华路")
        db.add(authority)
        db.flush()
    for spec in loader.COCKPIT_ACCOUNTS:
        if db.scalar(select(User.id).where(User.username == spec.username)) is None:
            auth_service.create_user(db, None, spec.username, loader.DEMO_PASSWORD, spec.display_name,
                                     [(str(spec.role), authority.id, None)])
    first_note = (db.scalar(select(func.max(Notification.id))) or 0) + 1
    with loader.history_kept_in_app(db):
        history = _baoding_history(db)
    # three years of history are not three years of unread notices: the staff read them at the time
    db.execute(update(Notification).where(Notification.id >= first_note, Notification.read_at.is_(None))
               .values(read_at=Notification.created_at).execution_options(synchronize_session=False))
    detail = {"authority": authority.id, **history, **_xianghe_figures(db)}
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, "cockpit", channel="cli", detail=detail)
    db.flush()
    return detail


# --------------------------------------------------------------------------------- Baoding, three years

BAODING_KEY = "baoding-trusteeship"
BCH, BAODING = referrals.BCH, referrals.BAODING
# up-referrals per month, oldest first (36 months ending five months ago, where the referral demo's own recent
# months begin): rising while 保定 sends what it cannot treat, falling as the co-built departments take over
UPS = (2, 3, 3, 4, 4, 5, 5, 6, 6, 6, 6, 5, 5, 5, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1)
DOWNS = (0, 0, 1, 0, 1, 1, 1, 1, 2, 1, 2, 2, 2, 2, 2, 2, 3, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 3, 2, 3, 3)
CASES = (("Q21.0", "室间隔缺损", "先天性心脏病需介入封堵，保定院区暂不能开展"),
         ("C91.0", "急性淋巴细胞白血病", "初诊白血病，转北京儿童医院血液肿瘤中心诱导化疗"),
         ("G40.9", "癫痫（药物难治性）", "两种抗癫痫药物足量治疗仍频繁发作，请术前评估"),
         ("N04.9", "肾病综合征（激素耐药）", "激素耐药，请肾内科行肾穿刺活检"))


def _month_start(months_ago: int) -> date:
    today = clock.today_local()
    y, m = today.year, today.month - months_ago
    while m <= 0:
        y, m = y - 1, m + 12
    return date(y, m, 1)


def _baoding_history(db: Session) -> dict[str, Any]:
    alliance = db.scalar(select(Alliance).where(Alliance.key == BAODING_KEY))
    if alliance is None or db.scalar(select(User.id).where(User.username == "baoding-doctor")) is None:
        return {}
    ctx = referrals._Ctx(db)
    ctx.mrn = 9000  # after the referral demo's record numbers
    ctx.r = random.Random(loader.SEED + 19)  # other children than the referral demo's (same seed = same people)
    ctx.people = loader._People(ctx.r)
    kids = referrals._register(ctx, "baoding-doctor", BAODING, BAODING_KEY, 24, 1.0, ("130602",))
    walk_ins = referrals._register(ctx, "bch-doctor", BCH, BAODING_KEY, 12, 1.0, ("130602",))
    bch_ward = db.scalar(select(Ward).where(Ward.name == "儿内科二病区（京保转诊）"))
    bd_ward = db.scalar(select(Ward).where(Ward.name == "儿内科病区", Ward.institution_id == ctx.inst[BAODING].id))
    assert bch_ward is not None and bd_ward is not None
    bch, bd = ctx.inst[BCH].id, ctx.inst[BAODING].id
    admin = ctx.subject("admin")
    census = {w.id: w.occupied for w in (bch_ward, bd_ward)}

    def discharged(ward: Ward) -> None:
        """The ward's census back to its usual level once the child has gone home (the ward's daily census)."""
        db.refresh(ward)
        beds.set_occupied(db, admin, ward.id, census[ward.id])
    n_up = n_down = 0
    treated: list[tuple[int, int, int, datetime]] = []  # (up-referral, patient, case, start) not yet sent back
    for i, (ups, downs) in enumerate(zip(UPS, DOWNS, strict=True)):
        first = _month_start(len(UPS) + 5 - i)
        for k in range(ups):
            case = (i + k) % len(CASES)
            code, text, reason = CASES[case]
            p = kids[n_up % len(kids)]
            start = datetime.combine(first + timedelta(days=1 + k * 4), time(9), clock.SHANGHAI)
            up = referrals._refer(ctx, "baoding-doctor", start, direction="up", patient_id=p, to_institution_id=bch,
                                  priority="routine", target_service="儿内科", reason=reason,
                                  summary={"diagnoses": referrals._dx(code, text)})
            referrals._bed_loop(ctx, up, p, "baoding-doctor", "bch-doctor", bch_ward, start,
                                f"{text}：在北京儿童医院完成诊治，病情稳定出院", stay_days=5)
            discharged(bch_ward)
            # a child sent up again is no longer waiting to come back from the earlier stay (and a down-referral
            # accepted in 保定 ends Beijing's access: only the newest stay can be sent back)
            treated = [t for t in treated if t[1] != p] + [(up, p, case, start)]
            n_up += 1
        # children treated in Beijing this month or before come back to 保定 for the rest of their care
        # (within the month after the stay: the Beijing team's access to the child ends 30 days after acceptance)
        d_first = datetime.combine(first + timedelta(days=26), time(10), clock.SHANGHAI)
        treated = [t for t in treated if d_first - t[3] < timedelta(days=28)]
        for k in range(downs):
            closes: int | None = None
            if treated:
                closes, p, case, _ = treated.pop(0)
            else:  # a 保定 child who went to Beijing on the family's own (no up-referral), registered there
                p, case = walk_ins[n_down % len(walk_ins)], k % len(CASES)
            code, text, _ = CASES[case]
            d_start = d_first + timedelta(hours=k)
            down = referrals._refer(ctx, "bch-doctor", d_start, direction="down", patient_id=p,
                                    to_institution_id=bd, linked_referral_id=closes, priority="routine",
                                    target_service="儿内科", reason="北京诊治阶段完成，转回保定院区继续治疗与随访",
                                    summary={"diagnoses": referrals._dx(code, text)})
            referrals._bed_loop(ctx, down, p, "bch-doctor", "baoding-doctor", bd_ward, d_start,
                                "保定院区继续治疗完成，已出院，按计划随访", stay_days=3)
            discharged(bd_ward)
            n_down += 1
    _baoding_assistance(db, ctx, alliance.id, bch, bd)
    service.set_target(db, admin, alliance.id, code="referral.down_rate", value=0.5,
                       source="京保托管协议年度考核指标（演示）", effective_from=_month_start(len(UPS) + 5))
    return {"baoding_up": n_up, "baoding_down": n_down}


def _baoding_assistance(db: Session, ctx: Any, alliance_id: int, bch: int, bd: int) -> None:
    rows = []
    experts = (("儿内科", "钱主任", "主任医师", "儿内科执行主任"), ("新生儿科", "孙主任", "主任医师", "新生儿科执行主任"),
               ("心脏外科", "周教授", "主任医师", "心脏中心副主任"), ("血液肿瘤科", "吴主任", "副主任医师", "血液科副主任"))
    for n, (dept, person, title, post) in enumerate(experts):
        for half in range(0, 8, 2):  # a new six-month posting each year, the last one running now
            begin = _month_start(max(1, len(UPS) + 5 - half * 6 - n * 2))
            rows.append(assistance.AssistanceIn(kind="posting", from_institution_id=bch, to_institution_id=bd,
                                                start_date=begin, end_date=begin + timedelta(days=181),
                                                person=person, title=title, post=post, subject=dept))
    for i in range(len(UPS) + 5):  # the help goes on to this month
        first = _month_start(len(UPS) + 5 - i)
        rows.append(assistance.AssistanceIn(kind="clinic", from_institution_id=bch, to_institution_id=bd,
                                            start_date=first + timedelta(days=3), sessions=4 + i // 6,
                                            patients=60 + 4 * i, subject="北京专家周四坐诊"))
        if i >= 6:
            rows.append(assistance.AssistanceIn(kind="surgery", from_institution_id=bch, to_institution_id=bd,
                                                start_date=first + timedelta(days=10), surgeries=2 + i // 4,
                                                surgeries_grade34=1 + i // 6, subject="带教手术"))
        if i % 3 == 0:
            rows.append(assistance.AssistanceIn(kind="lecture", from_institution_id=bch, to_institution_id=bd,
                                                start_date=first + timedelta(days=15), sessions=2, patients=80,
                                                subject="儿科急危重症识别与处置"))
            rows.append(assistance.AssistanceIn(kind="trainee", from_institution_id=bd, to_institution_id=bch,
                                                start_date=first, end_date=first + timedelta(days=90),
                                                person=f"保定进修医师{i // 3 + 1}", patients=2, subject="进修"))
    for months_ago, technique in ((30, "小儿先天性心脏病介入封堵术"), (22, "儿童纤维支气管镜检查"),
                                  (14, "儿童白血病规范化化疗"), (8, "新生儿亚低温治疗")):
        rows.append(assistance.AssistanceIn(kind="technique", from_institution_id=bch, to_institution_id=bd,
                                            start_date=_month_start(months_ago) + timedelta(days=12),
                                            subject=technique))
    rows.append(assistance.AssistanceIn(kind="department", from_institution_id=bch, to_institution_id=bd,
                                        start_date=_month_start(len(UPS) + 4), subject="儿童心脏中心（共建）"))
    rows.append(assistance.AssistanceIn(kind="equipment", from_institution_id=bch, to_institution_id=bd,
                                        start_date=_month_start(20), amount_yuan=1_800_000, subject="新生儿转运暖箱"))
    assistance.import_rows(db, ctx.subject("admin"), alliance_id, rows)


def _xianghe_figures(db: Session) -> dict[str, Any]:
    alliance = db.scalar(select(Alliance).where(Alliance.key == "xianghe-county"))
    if alliance is None:
        return {}
    admin = referrals._Ctx(db).subject("admin")
    src = "廊坊市卫生健康委员会统计直报（演示数据）"
    periods = ((date(2025, 1, 1), date(2025, 12, 31)), (date(2026, 1, 1), date(2026, 6, 30)))
    values = {"national.01_resources": (1, 1), "national.02_governance": (1, 1), "national.03_coordination": (0, 1),
              "county.residents": (405_000, 406_500), "national.05b_ecg_village": (0.41, 0.63),
              "national.06_income_ratio": (0.78, 0.83),
              "national.14_premature_mortality": (0.158, 0.153)}  # (4) and (7)–(13) are computed from the platform's rows
    rows = [service.FigureIn(code, start, end, v[n], src,
                             "县域医共体管理委员会文件（演示）" if code.startswith("national.0") and v[n] in (0, 1) else None)
            for code, v in values.items() for n, (start, end) in enumerate(periods)]
    service.import_figures(db, admin, alliance.id, rows)
    return {"xianghe_figures": len(rows)}
