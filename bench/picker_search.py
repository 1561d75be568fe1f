"""The patient picker's type-ahead on PostgreSQL at scale (issue 16 item 4).

Loads N patients (default 100 000) registered at one township centre — all of them readable by its doctor,
the worst case for `policy.readable` — each with a phone and a resident ID, then times the picker's query
(`patients.repository.search_readable`, limit 9, the fragment's) for a name part, 拼音首字母, the last four
digits of a phone or ID, and a whole resident ID. Server time of the query, p50/p95 of 30 runs each.

    .venv/bin/python bench/picker_search.py [--patients 100000] [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from yilianti import db as dbmod
from yilianti.auth import service as auth_service
from yilianti.empi.normalise import name_initials
from yilianti.kit import crypto
from yilianti.migrate import upgrade
from yilianti.models.alliance import Institution
from yilianti.models.patient import CareRelationship, Patient, PatientIdentifier
from yilianti.patients import repository

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彩春菊兰凤洁梅琳素云莲真环雪荣爱妹霞香月莺媛艳瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝思丽"
_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def resident_id(k: int) -> str:
    birth = date(1940 + k % 80, 1 + k % 12, 1 + k % 28)
    body = f"{110000 + k // 1000:06d}{birth:%Y%m%d}{k % 1000:03d}"  # unique: the region code counts thousands
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _W, strict=True)) % 11]


def insert_patients(engine: Engine, inst_id: int, n: int, *, seed: int = 16, rid_offset: int = 0) -> dict[str, str]:
    """`n` patients registered at `inst_id` (a registered-care relationship each), each with a phone and a resident
    ID (`rid_offset` keeps them apart from IDs already in the database), ids after the highest one; ANALYZEd.
    Returns a sample of the keys the picker is typed with (of the middle patient)."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    sample: dict[str, str] = {}
    with engine.begin() as conn:
        first = (conn.scalar(select(func.max(Patient.id))) or 0) + 1
        for start in range(0, n, 5000):
            pats, idents, care = [], [], []
            for k in range(start, min(n, start + 5000)):
                pid = first + k
                name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
                phone = f"13{rng.randrange(10**9):09d}"
                rid = resident_id(k + rid_offset)
                pats.append({"id": pid, "name": name, "sex": rng.choice("男女"), "birth_date": date(1950, 1, 1)
                             + timedelta(days=rng.randrange(27_000)),
                             "phone_enc": phone, "phone_bidx": crypto.blind_index("phone", phone),
                             "name_initials": name_initials(name), "phone_tail_bidx": crypto.tail_index(phone),
                             "registered_by_institution_id": inst_id, "active": True, "created_at": now})
                idents.append({"patient_id": pid, "authority": "CN-RIC", "value_enc": rid,  # Encrypted: ciphertext
                               "value_bidx": crypto.blind_index("id", rid),
                               "tail_bidx": crypto.tail_index(rid), "created_at": now})
                care.append({"patient_id": pid, "institution_id": inst_id, "kind": "registered", "started_at": now,
                             "created_at": now})
                if k == n // 2:
                    sample = {"name": name[:2], "initials": name_initials(name) or "", "phone_tail": phone[-4:],
                              "id_tail": rid[-4:], "resident_id": rid}
            conn.execute(insert(Patient), pats)
            conn.execute(insert(PatientIdentifier), idents)
            conn.execute(insert(CareRelationship), care)
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('patient', 'id'), (SELECT max(id) FROM patient))"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return sample


def load(url: str, n: int) -> tuple[int, dict[str, str]]:
    engine = dbmod.make_engine(url)
    with Session(engine) as db:
        inst = Institution(name="渠口镇卫生院(基准)", kind="township", level=1, province="河北")
        db.add(inst)
        db.commit()
        user = auth_service.create_user(db, None, "picker-bench", "bench-password-16", "基准医生",
                                        [("doctor", inst.id, None)])
        db.commit()
        inst_id, user_id = inst.id, user.id
    sample = insert_patients(engine, inst_id, n)
    engine.dispose()
    return user_id, sample


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    admin = create_engine(args.admin_url.replace("postgresql://", "postgresql+psycopg://", 1),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS bench_picker"))
        conn.execute(text("CREATE DATABASE bench_picker"))
    url = args.admin_url.rsplit("/", 1)[0] + "/bench_picker"
    upgrade(url)
    started = time.monotonic()
    user_id, sample = load(url, args.patients)
    print(f"loaded {args.patients} patients in {time.monotonic() - started:.0f} s; sample {sample}")
    engine = dbmod.make_engine(url)
    with Session(engine) as db:
        from yilianti.models.auth import User

        subject = auth_service.build_subject(db, db.get(User, user_id), None)  # type: ignore[arg-type]
        total = db.scalar(select(func.count()).select_from(Patient))
        print(f"patients {total}; readable by the bench doctor: {repository.count_readable(db, subject)}")
        for label, q in sample.items():
            times, found = [], 0
            for _ in range(30):
                t0 = time.perf_counter()
                found = len(repository.search_readable(db, subject, q, limit=9))
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            print(f"{label:12s} q={q!r:22s} found {found}: p50 {statistics.median(times):6.1f} ms, "
                  f"p95 {times[int(len(times) * 0.95) - 1]:6.1f} ms")
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS bench_picker"))


if __name__ == "__main__":
    main()
