"""Rules v5 (issue 17): weights estimated from the data, names weighed by their frequency, near-equal IDs
as evidence, families kept apart; online registration decides as the batch linker does."""

from __future__ import annotations

import csv
import os
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from tests import builders as b
from tests.empi.test_rules_v2 import link
from yilianti.empi import batch, fs, matching, online
from yilianti.empi import service as empi
from yilianti.empi.normalise import Malformed, record
from yilianti.kit.validate import Invalid, resident_id
from yilianti.models.patient import Patient

BENCH = Path(__file__).resolve().parents[2] / "bench" / "empi"


def rec(name: str, birth: str = "1990-04-05", sex: str = "男", rid: str = "", phone: str = "",
        address: str = "") -> fs.Record:
    return record({"name": name, "birth_date": birth, "sex": sex, "id_number": rid, "phone": phone,
                   "address": address}, Malformed())


def test_v5_is_loadable_with_packaged_weights() -> None:
    rules = matching.fs_rules(matching.rules_for("v5"))
    assert rules.version == "v5" and rules.fellegi_sunter and rules.model is not None
    assert rules.review < rules.auto_link
    w = rules.model.weights()
    assert w["name"][0] > 0 > w["name"][5] and w["birth_date"][0] > 0 > w["birth_date"][4]


def test_levels() -> None:
    assert fs.name_level(rec("王思琪"), rec("王思琪")) == 0
    assert fs.name_level(rec("王思琪"), rec("王思齐")) == 1          # homophone
    assert fs.name_level(rec("王思琪"), rec("王琪")) == 2            # a character dropped
    assert fs.name_level(rec("王子涵"), rec("王子轩")) == 4          # twins: one character differs
    assert fs.name_level(rec("王子涵"), rec("王明")) == 5
    assert fs.birth_level("19900405", "19900406") == 1
    assert fs.birth_level("19900430", "19900501") == 1               # a day off across the month
    assert fs.birth_level("19900405", "19900504") == 2
    assert fs.birth_level("19900405", "19910405") == 3
    assert fs.birth_level("19860405", "19680405") == 3               # the year's digits misplaced


def test_near_equal_ids_are_evidence_two_valid_ids_a_veto() -> None:
    rid = b.resident_id(date(1986, 4, 5), region="110105")
    one_digit = rid[:10] + str((int(rid[10]) + 1) % 10) + rid[11:]
    swapped = rid[:12] + rid[13] + rid[12] + rid[14:]
    legacy = rid[:6] + rid[8:17]
    for typo in (one_digit, swapped if swapped != rid else one_digit):
        with pytest.raises(Invalid):
            resident_id(typo)
        assert fs.id_level(rec("王伟", rid=rid), rec("王伟", rid=typo)) == 1
    assert fs.id_near(legacy, rid)
    other = b.resident_id(date(1986, 4, 5), region="110105", seq=7)
    assert other != rid
    assert fs.id_level(rec("王伟", rid=rid), rec("王伟", rid=other)) == -1
    scorer = fs.Scorer(fs.default_model())
    assert scorer.score(rec("王伟", rid=rid), rec("王伟", rid=other), fs.NameCounts(1000, 1, 1)) == fs.HARD_NEGATIVE


def test_rare_name_weighs_more_than_a_common_one() -> None:
    scorer = fs.Scorer(fs.default_model())
    a, c = rec("欧阳思齐"), rec("欧阳思齐", phone="13900000001")
    rare = scorer.score(a, c, fs.NameCounts(100_000, 1, 1))
    common = scorer.score(a, c, fs.NameCounts(100_000, 2000, 400))
    assert rare > common + 5
    assert fs.probability(rare) >= fs.default_model().auto_probability > fs.probability(common)


def test_id_at_one_member_none_at_another_rare_name_links(tmp_path: Path) -> None:
    rid = b.resident_id(date(1979, 11, 23), region="110105")
    rows = ["a,香河县人民医院,欧阳思齐,女,1979-11-23," + rid + ",13911112222,河北省廊坊市香河县渠口镇东街12号",
            "b,渠口镇卫生院,欧阳思齐,女,1979-11-23,,13588889999,北京市朝阳区"]
    rows += [f"f{k},甲院,{s}{g},男,19{50 + k % 40}-0{1 + k % 9}-1{k % 9},,,"
             for k, (s, g) in enumerate((s, g) for s in "王李张刘陈杨" for g in ("伟", "芳", "敏", "静", "强", "磊"))]
    persons, _ = link(tmp_path, rows, matching.with_model(matching.RULES_V5, fs.default_model()))
    assert persons["a"] == persons["b"]


def test_hard_negatives_hold_under_v5(tmp_path: Path) -> None:
    v5 = matching.with_model(matching.RULES_V5, fs.default_model())
    twins = ["t1,甲院,李子涵,女,2016-05-20,,13700001111,河北省廊坊市香河县渠口镇东街12号",
             "t2,乙院,李子轩,男,2016-05-20,,13700001111,河北省廊坊市香河县渠口镇东街12号"]
    siblings = ["s1,甲院,张明,男,2012-03-01,,13700002222,河北省廊坊市香河县安平镇前庄58号",
                "s2,乙院,张亮,男,2015-07-09,,13700002222,河北省廊坊市香河县安平镇前庄58号"]
    same_name_siblings = ["n1,甲院,朱若曦,女,2017-07-05,,13700003333,河北省廊坊市固安县钳屯镇后屯9号",
                          "n2,乙院,朱若曦,女,2024-06-09,,13700003333,河北省廊坊市固安县钳屯镇后屯9号"]
    wang = [f"w{k},甲院,王伟,男,1986-{1 + k % 12:02d}-{1 + k:02d},,1390000{k:04d},北京市朝阳区{k}号" for k in range(20)]
    wang += ["x1,甲院,王伟,男,1986-03-03,,13900000001,北京市朝阳区建国路1号",
             "x2,乙院,王伟,男,1986-03-03,,13900000002,河北省廊坊市霸州市胜芳镇"]
    rid_a, rid_b = (b.resident_id(date(2016, 5, 20), region="110105", seq=s) for s in (3, 5))
    two_ids = [f"i1,甲院,刘洋,男,2016-05-20,{rid_a},13700004444,河北省廊坊市香河县渠口镇东街1号",
               f"i2,乙院,刘洋,男,2016-05-20,{rid_b},13700004444,河北省廊坊市香河县渠口镇东街1号"]
    persons, review = link(tmp_path, twins + siblings + same_name_siblings + wang + two_ids, v5)
    for x, y in (("t1", "t2"), ("s1", "s2"), ("n1", "n2"), ("x1", "x2"), ("i1", "i2")):
        assert persons[x] != persons[y], (x, y)
    assert len({persons[f"w{k}"] for k in range(20)}) == 20
    reviewed = {frozenset((r["record_id_a"], r["record_id_b"])) for r in review}
    assert frozenset(("t1", "t2")) not in reviewed and frozenset(("s1", "s2")) not in reviewed
    assert [float(r["score"]) for r in review] == sorted((float(r["score"]) for r in review), reverse=True)


def test_explanation_is_readable() -> None:
    scorer = fs.Scorer(fs.default_model())
    e = scorer.explain(rec("欧阳思齐", phone="13900000001"), rec("欧阳思琪", phone="13900000001"),
                       fs.NameCounts(10_000, 1, 1))
    assert all(isinstance(v, float) for v in e.values())  # the review queue stores a dict of floats
    assert e["name_level"] == 1 and e["name_one_in"] > 100 and e["phone"] > 0
    text = "\n".join(fs.describe(e))
    assert "homophone" in text and "phone: same" in text and "match probability" in text


def test_train_round_trip(tmp_path: Path) -> None:
    model = fs.default_model()
    path = tmp_path / "w.json"
    model.save(path)
    again = fs.Model.load(path)
    assert again.m == model.m and again.auto_probability == model.auto_probability


def _generated(persons: int, seed: int) -> list[online.Demographics]:
    """Generated registrations as the registration form accepts them (a resident ID failing its check is
    refused at the form, so it is dropped here)."""
    sys.path.insert(0, str(BENCH))
    try:
        from generate import generate  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH))
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ylt_v5_agree_{os.getpid()}")
    rec_path, _truth, _n = generate(persons, out, seed)
    demos = []
    with open(rec_path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            r = record(row, Malformed())
            demos.append(online.Demographics(
                row["name"], r.sex or None, date(int(r.birth[:4]), int(r.birth[4:6]), int(r.birth[6:])) if r.birth else None,
                r.phone or None, row["address"] or None, r.rid or None))
    return demos


def test_online_decides_as_the_batch_on_a_generated_set(db) -> None:  # type: ignore[no-untyped-def]
    """The index holds generated records; each further registration is decided online and, for the same
    pairs, by the batch linker's scoring over the index plus that registration: the same scores, the same
    auto-link and the same review persons."""
    inst = b.institution(db, "香河县人民医院")
    demos = _generated(160, 17)
    index, registrations = demos[:240], [d for d in demos[240:] if d.birth_date]
    model = fs.default_model()
    rules = matching.with_model(matching.RULES_V5, model)
    patient_of: dict[int, int] = {}
    for k, d in enumerate(index):
        p = Patient(name=d.name, sex=d.sex or "未知", birth_date=d.birth_date, registered_by_institution_id=inst.id)
        db.add(p)
        db.flush()
        empi.save_record(db, p.id, inst.id, d, "new", None, rules)
        patient_of[k] = p.id
    index_recs = [online.keyed(d.normalised(), online.keys(d.normalised())) for d in index]
    scorer = fs.Scorer(model)
    checked = Counter[str]()
    index_rids = {d.rid for d in index if d.rid}
    for d in registrations:
        if d.rid and d.rid in index_rids:
            continue  # the deterministic resident-ID path, not scoring
        mine = online.keyed(d.normalised(), online.keys(d.normalised()))
        recs = [*index_recs, mine]
        n = len(recs)
        counts = batch.name_counts(recs)(mine)
        pairs = batch.candidate_pairs(recs, rules, Counter())
        cands = [i for code in pairs for i, j in [divmod(code, n)] if j == n - 1]
        scored = {patient_of[i]: scorer.score(mine, index_recs[i], counts) for i in cands}
        decision = online.decide(db, d, rules)
        auto = [p for p, s in scored.items() if s >= rules.auto_link]
        top = max((scored[p] for p in auto), default=None)
        assert (decision.link_to is None) == (top is None), d
        best = decision.link_to
        if best is not None:  # the best-scoring person (of several equal ones, either)
            assert scored[best] == pytest.approx(top), (d, scored[best], top)
            assert decision.score == pytest.approx(scored[best])
            checked["auto"] += 1
        for c in decision.review:
            assert c.score == pytest.approx(scored[c.patient_id]) and rules.review <= c.score
            checked["review"] += 1
        # the review list: every other person at or above the review threshold, most likely first, at most 5
        band = sorted((p for p, s in scored.items() if s >= rules.review and p != best), key=lambda p: -scored[p])
        assert [c.patient_id for c in decision.review] == band[:5]
        checked["registrations"] += 1
    assert checked["registrations"] >= 20 and checked["auto"] >= 5, checked


def test_weights_option_and_train_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from yilianti.cli import main as cli_main
    src = tmp_path / "in.csv"
    src.write_text("record_id,source,name,sex,birth_date,id_number,phone,address\n"
                   + "\n".join(f"r{k},甲院,{s}{g},男,19{50 + k % 40}-0{1 + k % 9}-1{k % 9},,13{k:09d},"
                               for k, (s, g) in enumerate((s, g) for s in "王李张刘陈杨黄赵" for g in "伟芳敏静强磊军洋"))
                   + "\n", encoding="utf-8")
    weights = tmp_path / "w.json"
    assert cli_main(["empi", "train", "--input", str(src), "--output", str(weights)]) == 0
    assert "trained rules v5" in capsys.readouterr().out
    model = fs.Model.load(weights)
    assert model.trained["records"] == 64 and model.auto_probability == fs.default_model().auto_probability
    out = tmp_path / "out.csv"
    assert cli_main(["empi", "link", "--input", str(src), "--output", str(out), "--rules", "v5",
                     "--weights", str(weights)]) == 0
    assert "rules=v5" in capsys.readouterr().err
    assert cli_main(["empi", "link", "--input", str(src), "--output", str(out), "--rules", "v4",
                     "--weights", str(weights)]) == 2




def test_online_registration_by_v5(db) -> None:  # type: ignore[no-untyped-def]
    """Through the registration service (v5 is current): a rare name with an ID at one member and none at
    another, another phone and only the district, links; two 王伟 of one birth date with nothing else in
    common go to review, explained."""
    from tests.empi.helpers import open_candidates, register, world
    assert matching.CURRENT is matching.RULES_V5 and online.RULES is matching.RULES_V5
    w = world(db)
    rid = b.resident_id(date(1979, 11, 23), male=False)
    first = register(db, w.d_county, "欧阳思齐", sex="女", birth=date(1979, 11, 23), rid=rid, phone="13911112222")
    second = register(db, w.d_town, "欧阳思齐", sex="女", birth=date(1979, 11, 23), phone="13588889999",
                      address="北京市朝阳区")
    assert second.patient.id == first.patient.id and second.link == "score"
    a = register(db, w.d_town, "王伟", birth=date(1986, 3, 3), phone="13900000001", address="北京市朝阳区建国路1号")
    c = register(db, w.d_county, "王伟", birth=date(1986, 3, 3), phone="13900000002", address="河北省廊坊市霸州市胜芳镇")
    assert c.patient.id != a.patient.id and c.review_candidates == 1
    [cand] = open_candidates(db)
    assert cand.rules_version == "v5"
    e = cand.explanation
    assert e["name_level"] == 0 and e["birth_date"] > 0 and e["phone"] < 0 and 0.05 <= e["probability"] < 0.8
    assert cand.score == e["total"]


def test_train_from_the_index(db) -> None:  # type: ignore[no-untyped-def]
    """`yilianti empi train` reads the index as online matching does (phone and ID by blind index)."""
    from yilianti.empi.train import records_of_index
    inst = b.institution(db, "香河县人民医院")
    demos = _generated(700, 23)[:1300]
    rules = matching.with_model(matching.RULES_V5, fs.default_model())
    for d in demos:
        p = Patient(name=d.name, sex=d.sex or "未知", birth_date=d.birth_date, registered_by_institution_id=inst.id)
        db.add(p)
        db.flush()
        empi.save_record(db, p.id, inst.id, d, "new", None, rules)
    recs = records_of_index(db)
    assert len(recs) == len(demos) and any(r.phone for r in recs) and not any(r.rid_weak for r in recs)
    model = batch.train_on(recs)
    assert model.trained["records"] == len(demos) and model.rho > 0
    w = model.weights()
    assert w["name"][0] > 5 and w["birth_date"][0] > 5 and w["phone"][0] > 5 and w["sex"][1] < 0
