"""Rules v2: auto-link needs a supporting field; hard negatives; the version of every link (issue 5)."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.builders import resident_id
from tests.empi.helpers import open_candidates, register, world
from yilianti.cli import main as cli_main
from yilianti.empi import matching, online
from yilianti.empi.batch import run
from yilianti.empi.matching import CURRENT, RULES_V1, RULES_V2, RULES_V3, RULES_V4, RULES_V5, rules_for
from yilianti.empi.normalise import Malformed, record
from yilianti.models.empi import PatientRecord

HEADER = "record_id,source,name,sex,birth_date,id_number,phone,address"


def link(tmp_path: Path, rows: list[str], rules: matching.Rules = CURRENT) -> tuple[dict[str, str], list[dict[str, str]]]:
    src = tmp_path / "in.csv"
    src.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out, rev = tmp_path / "out.csv", tmp_path / "review.csv"
    run(str(src), str(out), str(rev), rules, log=None)
    with out.open(encoding="utf-8") as fh:
        persons = {r["record_id"]: r["person_id"] for r in csv.DictReader(fh)}
    with rev.open(encoding="utf-8") as fh:
        return persons, list(csv.DictReader(fh))


# a rare name: its exact agreement alone weighs the maximum
RARE = ["a1,香河县人民医院,欧阳翊宸,男,1979-04-17,,13900000001,北京市朝阳区建国路1号",
        "a2,北京朝阳医院,欧阳翊宸,男,1979-04-17,,13611112222,河北省廊坊市霸州市胜芳镇西街8号"]


def test_v5_is_current_and_v1_to_v4_stay_loadable() -> None:
    assert CURRENT is RULES_V5 and CURRENT.version == "v5"
    assert rules_for("v1") is RULES_V1 and rules_for("v2") is RULES_V2 and rules_for("v3") is RULES_V3
    assert rules_for("v4") is RULES_V4
    assert RULES_V1.auto_link == RULES_V2.auto_link and RULES_V1.review == RULES_V2.review
    with pytest.raises(ValueError, match="v9"):
        rules_for("v9")


def test_rare_name_and_birth_date_alone_no_longer_auto_link(tmp_path: Path) -> None:
    v1, _ = link(tmp_path, RARE, RULES_V1)
    assert v1["a1"] == v1["a2"]  # the 1 M run's false link
    v2, review = link(tmp_path, RARE, RULES_V2)  # v2–v4 (v5 weighs a rare name by its frequency and links)
    assert v2["a1"] != v2["a2"]
    [pair] = review  # goes to the review band instead
    assert {pair["record_id_a"], pair["record_id_b"]} == {"a1", "a2"}
    assert RULES_V2.review <= float(pair["score"]) < RULES_V2.auto_link


@pytest.mark.parametrize("support", [
    ("13900000001", "河北省廊坊市霸州市胜芳镇西街8号"),        # same phone
    ("13611112222", "朝阳区建国路1号"),                        # same address, shortened
    ("+86 139 0000 0001", ""),                                 # same phone, other format; no address
])
def test_a_supporting_field_lets_name_and_birth_date_link(tmp_path: Path, support: tuple[str, str]) -> None:
    phone, address = support
    rows = [RARE[0], f"a2,北京朝阳医院,欧阳翊宸,男,1979-04-17,,{phone},{address}"]
    persons, _ = link(tmp_path, rows)
    assert persons["a1"] == persons["a2"]


def test_an_id_failing_its_check_equal_on_both_sides_supports(tmp_path: Path) -> None:
    weak = "110105197904171235"  # 18 digits, wrong check digit
    rows = [f"a1,香河县人民医院,欧阳翊宸,男,1979-04-17,{weak},13900000001,北京市朝阳区建国路1号",
            f"a2,北京朝阳医院,欧阳翊宸,男,1979-04-17,{weak},13611112222,河北省廊坊市霸州市胜芳镇西街8号"]
    persons, _ = link(tmp_path, rows)
    assert persons["a1"] == persons["a2"]


def test_twins_on_one_address_and_guardian_phone_stay_apart(tmp_path: Path) -> None:
    rows = ["t1,渠口镇卫生院,李子涵,女,2016-05-20,,13700001111,河北省廊坊市香河县渠口镇东街12号",
            "t2,香河县人民医院,李子轩,男,2016-05-20,,13700001111,河北省廊坊市香河县渠口镇东街12号",
            "t3,北京儿童医院,李子涵,女,2016-05-20,,13700001111,香河县渠口镇东街12号"]
    for rules in (RULES_V1, RULES_V2):
        persons, review = link(tmp_path, rows, rules)
        assert persons["t1"] == persons["t3"] != persons["t2"]
        assert review == []


def test_siblings_on_a_guardian_phone_stay_apart(tmp_path: Path) -> None:
    rows = ["s1,渠口镇卫生院,张一诺,女,2014-03-02,,13700002222,河北省廊坊市香河县渠口镇西村3号",
            "s2,渠口镇卫生院,张浩然,男,2018-09-11,,13700002222,河北省廊坊市香河县渠口镇西村3号",
            "s3,北京儿童医院,张浩然,男,2018-09-11,,+8613700002222,"]
    persons, _ = link(tmp_path, rows)
    assert persons["s2"] == persons["s3"] != persons["s1"]


def test_wang_wei_born_the_same_day_without_support_is_not_one_person(tmp_path: Path) -> None:
    rows = [f"w{k},香河县人民医院,王伟,男,1986-03-03,,1390000{k:04d},河北省廊坊市{town}"
            for k, town in enumerate(["霸州市胜芳镇", "固安县柳泉镇", "大城县权村镇", "文安县新镇"])]
    rows += [f"f{k},渠口镇卫生院,王伟,男,1987-01-{1 + k:02d},,,," for k in range(20)]
    for rules in (RULES_V1, RULES_V2):
        persons, _ = link(tmp_path, rows, rules)
        assert len({persons[f"w{k}"] for k in range(4)}) == 4
        assert len({persons[f"f{k}"] for k in range(20)}) == 20


def test_explain_shows_what_v2_took_off() -> None:
    m = Malformed()
    a = record({"name": "欧阳翊宸", "sex": "男", "birth_date": "1979-04-17", "phone": "13900000001"}, m)
    b = record({"name": "欧阳翊宸", "sex": "男", "birth_date": "1979-04-17", "phone": "13611112222"}, m)
    weight = RULES_V2.name_exact_max
    v1 = matching.explain(RULES_V1, a, b, weight)
    v2 = matching.explain(RULES_V2, a, b, weight)
    assert v1["total"] >= RULES_V1.auto_link and "no_supporting_field" not in v1
    assert v2["total"] == RULES_V2.auto_link - matching.UNSUPPORTED_MARGIN
    assert v2["no_supporting_field"] == round(v2["total"] - v1["total"], 2) < 0


def test_links_file_names_method_and_rules_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rid = resident_id(date(1971, 2, 3), seq=2)
    rows = ["r1,甲院,李娜,女,1990-01-01,,13800000009,", "r2,乙院,李 娜,女,1990-01-01,,13800000009,",
            f"r3,丙院,陈静,女,1971-02-03,{rid},,", f"r4,丁院,陈静,女,,{rid.lower()},,"]
    src = tmp_path / "in.csv"
    src.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    args = ["empi", "link", "--input", str(src), "--output", str(tmp_path / "o.csv"), "--links", str(tmp_path / "l.csv")]
    for version in ("v1", None):
        assert cli_main(args + (["--rules", version] if version else [])) == 0
        with (tmp_path / "l.csv").open(encoding="utf-8") as fh:
            got = {(r["record_id_a"], r["record_id_b"]): (r["method"], r["rules_version"]) for r in csv.DictReader(fh)}
        want = version or CURRENT.version
        assert got == {("r1", "r2"): ("score", want), ("r3", "r4"): ("resident_id", want)}
        assert f"rules={want}" in capsys.readouterr().err
    assert cli_main(args + ["--rules", "v9"]) == 2


@pytest.mark.usefixtures("rules_v4")
def test_online_registration_records_the_rules_version(db) -> None:  # type: ignore[no-untyped-def]
    CURRENT = online.RULES  # noqa: N806 (v4 here: the pairs below were built on its weights)
    w = world(db)
    first = register(db, w.d_town, "孙浩然")
    second = register(db, w.d_county, "孫 浩然")
    assert second.patient.id == first.patient.id
    rec = db.scalar(select(PatientRecord).where(PatientRecord.institution_id == w.county.id))
    assert rec.link_method == "score" and rec.rules_version == CURRENT.version
    # a rare name + birth date with nothing else in common: queued for review, not linked
    a = register(db, w.d_town, "欧阳翊宸", birth=date(1979, 4, 17), phone="13900000001", address="北京市朝阳区建国路1号")
    c = register(db, w.d_county, "欧阳翊宸", birth=date(1979, 4, 17), phone="13611112222",
                 address="河北省廊坊市霸州市胜芳镇西街8号")
    assert c.patient.id != a.patient.id
    [cand] = [x for x in open_candidates(db) if x.rules_version == CURRENT.version]
    assert cand.score < RULES_V2.auto_link and cand.explanation.get("total") == cand.score


# the B6 online run's false link under v2: a rare name, birth dates one digit apart, no phone, and two
# addresses in the same town (a long shared county + town prefix reaches v2's address Jaccard 0.45)
SAME_TOWN = ["t1,甲院,罗明轩,男,1947-03-29,,,河北省廊坊市大厂回族自治县蒋辛屯镇东村117号",
             "t2,乙院,罗明轩,男,1947-03-20,,,河北省廊坊市大厂回族自治县蒋辛屯镇前屯25号"]


def test_v3_a_differing_birth_date_with_only_a_same_town_address_goes_to_review(tmp_path: Path) -> None:
    v2, _ = link(tmp_path, SAME_TOWN, RULES_V2)
    assert v2["t1"] == v2["t2"]  # what v2 did
    v3, review = link(tmp_path, SAME_TOWN, RULES_V3)
    assert v3["t1"] != v3["t2"]
    [pair] = review
    assert RULES_V3.review <= float(pair["score"]) < RULES_V3.auto_link


@pytest.mark.parametrize("rows", [
    # the same phone supports a birth-date typo, as in v2
    ["t1,甲院,罗明轩,男,1947-03-29,,13900000001,河北省廊坊市大厂回族自治县蒋辛屯镇东村117号",
     "t2,乙院,罗明轩,男,1947-03-20,,13900000001,河北省廊坊市大厂回族自治县蒋辛屯镇前屯25号"],
    # nearly the same address supports a birth-date typo
    ["t1,甲院,罗明轩,男,1947-03-29,,,河北省廊坊市大厂回族自治县蒋辛屯镇东村117号",
     "t2,乙院,罗明轩,男,1947-03-20,,,河北省廊坊市大厂回族自治县蒋辛屯镇东村117号"],
    # the same birth date: a same-town address still supports, as in v2
    ["t1,甲院,罗明轩,男,1947-03-29,,,河北省廊坊市大厂回族自治县蒋辛屯镇东村117号",
     "t2,乙院,罗明轩,男,1947-03-29,,,河北省廊坊市大厂回族自治县蒋辛屯镇前屯25号"],
])
def test_v3_still_links_with_a_phone_a_near_identical_address_or_the_same_birth_date(
        tmp_path: Path, rows: list[str]) -> None:
    v3, _ = link(tmp_path, rows, RULES_V3)
    assert v3["t1"] == v3["t2"]
