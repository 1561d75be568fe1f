"""The monthly chronic-care outcome charts (/chronic/outcomes/monthly) computed on the fly over a large registry:
is a stored rollup needed?

    python bench/chronic_outcomes.py [--patients 50000] [--runs 20] [--url postgresql://postgres@127.0.0.1:5432]

Data (generated set-based on PostgreSQL, database `ylt_bench_chronic`, dropped and created again): one centre with
20 family-doctor teams in 20 villages and `--patients` residents, each in the hypertension (4 in 5) or the diabetes
registry, enrolled over the last three years, 1 in 50 marked lost, 2 in 25 transferred or deceased (a status
event on a day since enrolment; follow-ups after it are generated all the same); a follow-up every 60–120 days from enrolment to today, 85 % done
(within a week of the due date, a BP or glucose each), the rest left open or cancelled.

Measured, interleaved `--runs` times: (a) the page's computation of the hypertension figures for the 12 months to
today — `outcomes.programme` (four queries: the registry in any status, its status history, the visits from 12 months before the first month, the
follow-ups due) and `outcomes.monthly_by` per team, as `/chronic/outcomes/monthly` runs it; (b) the same with the
per-village grouping (the addresses read too); (c) the raw reference: the same four result sets fetched by
psycopg alone, no Python walk; (d) the stored figures (chronic_outcome_month, after one `outcome_months.rebuild`
of 13 months, timed) read for the same chart. p50 / p95 of each and the ratio of the medians (a)/(c). Decision
rule (issue 20): if (a) is ≤ 300 ms at p95, no stored rollup — it was not, hence (d).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
import booking as bb  # noqa: E402

DBNAME = "ylt_bench_chronic"


def setup(base_url: str, patients: int, today: date) -> tuple[str, int]:
    url = bb.fresh_database(base_url, DBNAME)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as c:
        inst = c.execute(text("INSERT INTO institution (name, kind, level, province, active, created_at) VALUES"
                              " ('沙县区总医院高桥分院', 'township', 1, '福建', true, now()) RETURNING id")).scalar_one()
        c.execute(text("INSERT INTO family_doctor_team (institution_id, name, village, created_at)"
                       " SELECT :i, '家庭医生' || g || '队', '村' || g, now() FROM generate_series(1, 20) g"), {"i": inst})
        c.execute(text(
            "INSERT INTO patient (name, sex, birth_date, address, registered_by_institution_id, active, created_at)"
            " SELECT '患者' || g, '男', date '1950-01-01' + (g % 9000), '高桥镇村' || (1 + g % 20) || '号' || g, :i, true,"
            " now() FROM generate_series(1, :n) g"), {"i": inst, "n": patients})
        c.execute(text(
            "INSERT INTO chronic_registration (patient_id, condition, icd10, enrolled_on, institution_id, team_id,"
            " status, created_at)"
            " SELECT p.id, CASE WHEN p.id % 5 = 0 THEN 'diabetes_t2' ELSE 'hypertension' END,"
            "        CASE WHEN p.id % 5 = 0 THEN 'E11.9' ELSE 'I10' END, CAST(:today AS date) - (p.id * 7919 % 1095)::int,"
            "        :i, (SELECT min(id) FROM family_doctor_team) + p.id % 20,"
            "        CASE WHEN p.id % 50 = 0 THEN 'lost' WHEN p.id % 25 = 3 THEN 'transferred'"
            "             WHEN p.id % 25 = 4 THEN 'deceased' ELSE 'under_care' END, now()"
            " FROM patient p"), {"i": inst, "today": today})
        c.execute(text(  # the transferred and deceased left care on a day between their enrolment and today
            "INSERT INTO chronic_registration_event (registration_id, kind, from_value, to_value, effective_on,"
            " created_at)"
            " SELECT id, 'status', 'under_care', status,"
            "        enrolled_on + (id * 131 % GREATEST(CAST(:today AS date) - enrolled_on, 1))::int, now()"
            " FROM chronic_registration WHERE status IN ('transferred', 'deceased')"), {"today": today})
        c.execute(text(
            "INSERT INTO chronic_follow_up (registration_id, patient_id, institution_id, team_id, due_on, reason,"
            " status, done_on, sbp, dbp, fasting_glucose, created_at)"
            " SELECT r.id, r.patient_id, r.institution_id, r.team_id, d::date, 'routine',"
            "        CASE WHEN h < 85 AND d::date <= CAST(:today AS date) - 7 THEN 'done' WHEN h < 92 THEN 'open' ELSE 'cancelled' END,"
            "        CASE WHEN h < 85 AND d::date <= CAST(:today AS date) - 7 THEN d::date + (h % 7)::int END,"
            "        CASE WHEN h < 85 THEN 120 + (h * 3 + r.id) % 45 END, CASE WHEN h < 85 THEN 70 + (h + r.id) % 30 END,"
            "        CASE WHEN h < 85 AND r.condition = 'diabetes_t2' THEN 5.0 + ((h + r.id) % 40) / 10.0 END, now()"
            " FROM chronic_registration r"
            " CROSS JOIN LATERAL generate_series((r.enrolled_on + 14)::timestamp, (CAST(:today AS date) + 30)::timestamp,"
            "      make_interval(days => (60 + r.id % 61)::int)) d"
            " CROSS JOIN LATERAL (SELECT ((r.id * 31 + extract(doy FROM d)::int * 17) % 100)::int AS h) x"),
            {"today": today})
        c.execute(text("ANALYZE"))
        counts = c.execute(text("SELECT (SELECT count(*) FROM chronic_registration),"
                                " (SELECT count(*) FROM chronic_follow_up),"
                                " (SELECT count(*) FROM chronic_follow_up WHERE status = 'done')")).one()
    engine.dispose()
    print(f"registrations {counts[0]:,}, follow-ups {counts[1]:,}, done {counts[2]:,}", flush=True)
    return url, inst


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--patients", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    from yilianti.chronic import outcome_months, outcomes, repository
    from yilianti.chronic import teams as team_rules
    from yilianti.kit import clock

    today = clock.today_local()
    url, inst = setup(args.url, args.patients, today)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    start = outcomes.month_first(today, 11)

    def team_chart() -> None:
        with Session(engine) as db:
            data = outcomes.programme(db, [inst], "hypertension", start, today)
            outcomes.monthly_by(data, "hypertension", lambda r: r[3])

    def village_chart() -> None:
        with Session(engine) as db:
            data = outcomes.programme(db, [inst], "hypertension", start, today)
            names = [v for tm in repository.teams_of(db, inst) for v in team_rules.villages(tm.village)]
            address = repository.addresses(db, {r[1] for r in data.regs})
            outcomes.monthly_by(data, "hypertension", lambda r: team_rules.village_of(address.get(r[1], ""), names))

    def raw() -> None:
        with engine.connect() as c:
            c.execute(text("SELECT id, patient_id, institution_id, team_id, enrolled_on, responsible_user_id, status"
                           " FROM chronic_registration WHERE institution_id = :i AND condition = 'hypertension'"
                           " AND enrolled_on <= :e"), {"i": inst, "e": today}).all()
            c.execute(text("SELECT e.registration_id, e.effective_on, e.from_value, e.to_value"
                           " FROM chronic_registration_event e JOIN chronic_registration r ON r.id = e.registration_id"
                           " WHERE r.institution_id = :i AND r.condition = 'hypertension' AND r.enrolled_on <= :e"
                           " AND e.kind = 'status' ORDER BY e.registration_id, e.effective_on, e.id"),
                      {"i": inst, "e": today}).all()
            c.execute(text("SELECT registration_id, done_on, sbp, dbp, fasting_glucose FROM chronic_follow_up"
                           " WHERE institution_id = :i AND status = 'done' AND done_on >= :s AND done_on <= :e"
                           " ORDER BY done_on, id"), {"i": inst, "s": outcomes.month_first(start, 11), "e": today}).all()
            c.execute(text("SELECT registration_id, due_on, status, done_on FROM chronic_follow_up"
                           " WHERE institution_id = :i AND due_on >= :s AND due_on <= :e AND status <> 'cancelled'"),
                      {"i": inst, "s": start, "e": today}).all()

    def stored() -> None:
        with Session(engine) as db:
            figures, built = outcome_months.monthly(db, [inst], "hypertension", "team", start, today)
            assert built is not None and figures

    with Session(engine) as db:
        t0 = time.perf_counter()
        written = outcome_months.rebuild(db, inst, months=13)
        db.commit()
        print(f"rebuild of 13 months (both registries, 4 groupings): {written:,} rows in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    timings: dict[str, list[float]] = {"team": [], "village": [], "raw": [], "stored": []}
    for fn in (team_chart, village_chart, raw, stored):  # warm
        fn()
    for _ in range(args.runs):
        for name, fn in (("team", team_chart), ("village", village_chart), ("raw", raw), ("stored", stored)):
            t0 = time.perf_counter()
            fn()
            timings[name].append((time.perf_counter() - t0) * 1000)

    def p95(xs: list[float]) -> float:
        return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]

    for name, xs in timings.items():
        print(f"{name}: p50 {statistics.median(xs):.0f} ms, p95 {p95(xs):.0f} ms", flush=True)
    print(f"ratio team/raw (medians): {statistics.median(timings['team']) / statistics.median(timings['raw']):.2f}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
