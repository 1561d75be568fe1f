"""Encounters and the out-of-county register of the demo's county alliances (behind its own marker): three years of
the members' HIS data and of the insurance fund's settlements outside the county, imported month by month through
the import service (cockpit/encounters.py) as the members' systems would send them — not rows painted into tables.

A sample, not a county's real volume (one row per visit, a few a day per institution), shaped as the reform
reports:
- 沙县区总医院's county alliance and the Langfang counties (香河, 固安, 霸州): the grassroots share of visits rising
  (沙县 46 % → 62 % over the three years), the TCM share steady (townships ~20 %, the county hospital ~6 %), the
  inpatient cost per stay growing ~3 % a year, winter busier than summer;
- the county alliances' residents' stays outside the county (Fuzhou, Sanming, Beijing, Tianjin) falling as a share:
  the stays inside the county from about 80 % to about 89 %;
- a few managed hypertension and diabetes patients of 高桥 admitted to 沙县区总医院 in the last year, their stays
  sent with their resident ID and matched to the person: the chronic admission rate (national 13).
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.alliance.repository import current_memberships, departments_of
from yilianti.alliance.service import is_grassroots
from yilianti.audit import service as audit
from yilianti.cockpit import encounters as imports
from yilianti.demo import loader, referrals
from yilianti.kit import clock
from yilianti.models.alliance import Alliance, Institution
from yilianti.models.audit import AuditEvent
from yilianti.models.chronic import ChronicRegistration
from yilianti.patients.repository import resident_ids

MARKER_ACTION = "demo_load_encounters"
SEED = loader.SEED + 38
MONTHS = 37  # three years and the current month
# alliance key → (grassroots share of visits three years ago, now; in-county share of stays then, now; hospitals
# outside the county its residents go to)
ALLIANCES: dict[str, tuple[float, float, float, float, tuple[str, ...]]] = {
    "shaxian-county": (0.46, 0.62, 0.80, 0.89, ("福建医科大学附属协和医院", "福建省立医院", "三明市第一医院")),
    "xianghe-county": (0.50, 0.61, 0.79, 0.86, ("北京朝阳医院", "首都医科大学附属北京天坛医院", "廊坊市人民医院")),
    "guan-county": (0.48, 0.58, 0.78, 0.85, ("北京大学人民医院", "廊坊市人民医院")),
    "bazhou-county": (0.45, 0.55, 0.76, 0.84, ("天津医科大学总医院", "廊坊市人民医院")),
}
LEAD_VISITS, LEAD_EMERGENCY, LEAD_STAYS, TOWN_STAYS = 30, 5, 6, 1  # a month, before the season


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


def _months(today: date) -> list[date]:
    first = date(today.year, today.month, 1)
    out = []
    for back in range(MONTHS - 1, -1, -1):
        y, m = first.year, first.month - back
        while m <= 0:
            y, m = y - 1, m + 12
        out.append(date(y, m, 1))
    return out


def _days_of(month: date, today: date) -> list[date]:
    nxt = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return [d for d in (month + timedelta(days=i) for i in range((nxt - month).days)) if d < today]


def _season(month: date) -> float:
    """Winter busier than summer (±15 %)."""
    return 1 + 0.15 * math.cos((month.month - 1) / 12 * 2 * math.pi)


def load(db: Session) -> dict[str, Any]:
    ctx = referrals._Ctx(db)
    admin = ctx.subject("admin")
    r = random.Random(SEED)
    today = clock.today_local()
    months = _months(today)
    admitted = _chronic_admissions(db, r, today)
    counts = {"encounters": 0, "register": 0, "matched": 0}
    for key, (g0, g1, c0, c1, away) in ALLIANCES.items():
        alliance = db.scalar(select(Alliance).where(Alliance.key == key))
        if alliance is None:
            continue
        members = [db.get(Institution, m.institution_id) for m in current_memberships(db, alliance.id, today)]
        towns = [i for i in members if i is not None and is_grassroots(i)]
        leads = [i for i in members if i is not None and not is_grassroots(i)]
        if not towns or not leads:
            continue
        lead = leads[0]
        depts = {i.id: [d.name for d in departments_of(db, i.id, include_inactive=False)] or ["内科"] for i in members
                 if i is not None}
        for n, month in enumerate(months):
            progress, season = n / (MONTHS - 1), _season(month)
            days = _days_of(month, today)
            if not days:
                continue
            share = g0 + (g1 - g0) * progress
            lead_visits = round((LEAD_VISITS + LEAD_EMERGENCY) * season)
            town_visits = round(lead_visits * share / (1 - share))
            batches: dict[int, list[imports.EncounterIn]] = {lead.id: []}
            for k in range(lead_visits):
                kind = "emergency" if k < round(LEAD_EMERGENCY * season) else "outpatient"
                batches[lead.id].append(_visit(r, lead.id, kind, r.choice(days), depts[lead.id], 220, 0.55, 0.06))
            stays = round(LEAD_STAYS * season)
            years = (month - months[0]).days / 365
            for _ in range(stays):
                batches[lead.id].append(_stay(r, lead.id, r.choice(days), today, depts[lead.id],
                                              7800 * 1.03 ** years, 0.62))
            for _ in range(town_visits):
                town = r.choice(towns)
                batches.setdefault(town.id, []).append(_visit(r, town.id, "outpatient", r.choice(days), depts[town.id],
                                                              70, 0.65, 0.2))
            for town in towns:
                for _ in range(TOWN_STAYS):
                    batches.setdefault(town.id, []).append(_stay(r, town.id, r.choice(days), today, depts[town.id],
                                                                 2600 * 1.03 ** years, 0.72))
            if key == "shaxian-county":
                for rid, day in admitted:
                    if day.year == month.year and day.month == month.month:
                        stay = _stay(r, lead.id, day, today, depts[lead.id], 6400, 0.7)
                        stay.resident_id = rid
                        batches[lead.id].append(stay)
            for inst, rows in batches.items():
                done = imports.import_encounters(db, admin, inst, rows)
                counts["encounters"] += done.created
                counts["matched"] += done.matched
            if away:
                in_county = stays + TOWN_STAYS * len(towns)
                inside = c0 + (c1 - c0) * progress
                out = round(in_county * (1 - inside) / inside)
                register = [_away(r, key, month, k, "inpatient", r.choice(days), today, r.choice(away),
                                  r.choice(towns + leads).id, 21000, 0.5) for k in range(out)]
                register += [_away(r, key, month, out + k, "outpatient", r.choice(days), today, r.choice(away),
                                   r.choice(towns + leads).id, 600, 0.3) for k in range(round(4 * season))]
                counts["register"] += imports.import_register(db, admin, alliance.id, register).created
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, "encounters", channel="cli", detail=counts)
    db.flush()
    return counts


_serial = iter(range(1, 10**9))


def _visit(r: random.Random, inst: int, kind: str, day: date, depts: list[str], cost: float, insured: float,
           tcm: float) -> imports.EncounterIn:
    total = round(cost * r.uniform(0.4, 1.8), 2)
    is_tcm = r.random() < tcm
    return imports.EncounterIn(source_no=f"{'JZ' if kind == 'emergency' else 'MZ'}{inst}-{next(_serial):07d}",
                               kind=kind, visit_date=day, department="中医科" if is_tcm else r.choice(depts),
                               total_cost=total, insurance_paid=round(total * insured * r.uniform(0.8, 1.1), 2)
                               if r.random() < 0.9 else 0.0, tcm=is_tcm)


def _stay(r: random.Random, inst: int, admitted: date, today: date, depts: list[str], cost: float,
          insured: float) -> imports.EncounterIn:
    out = admitted + timedelta(days=r.randint(3, 12))
    total = round(cost * r.uniform(0.8, 1.25), 2)
    return imports.EncounterIn(source_no=f"ZY{inst}-{next(_serial):07d}", kind="inpatient", visit_date=admitted,
                               discharge_date=out if out < today else None, department=r.choice(depts),
                               total_cost=total, insurance_paid=round(total * insured * r.uniform(0.85, 1.0), 2))


def _away(r: random.Random, key: str, month: date, k: int, kind: str, day: date, today: date, hospital: str,
          home: int, cost: float, insured: float) -> imports.OutOfCountyIn:
    out = day + timedelta(days=r.randint(5, 14)) if kind == "inpatient" else None
    total = round(cost * r.uniform(0.5, 1.8), 2)
    return imports.OutOfCountyIn(settlement_no=f"YB-{key}-{month:%Y%m}-{k:04d}", kind=kind, hospital=hospital,
                                 visit_date=day, discharge_date=out if out is None or out < today else None,
                                 home_institution_id=home, total_cost=total,
                                 insurance_paid=round(total * insured, 2))


def _chronic_admissions(db: Session, r: random.Random, today: date) -> list[tuple[str, date]]:
    """Three managed patients of 高桥 (the chronic demo's), each admitted once in the last year: (resident ID, day)."""
    patients = sorted(set(db.scalars(select(ChronicRegistration.patient_id).where(
        ChronicRegistration.status == "under_care"))))
    ids = resident_ids(db, patients[:40])
    chosen = r.sample(sorted(ids.values()), min(3, len(ids)))
    return [(rid, today - timedelta(days=r.randint(20, 330))) for rid in chosen]
