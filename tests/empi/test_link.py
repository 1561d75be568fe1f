"""`yilianti empi link` (CONTRACTS.md): normalisation, hard negatives, duplicates, determinism, CLI."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from tests.builders import resident_id
from yilianti.cli import main as cli_main
from yilianti.empi import normalise as norm
from yilianti.empi.batch import run
from yilianti.empi.matching import RULES_V1

HEADER = "record_id,source,name,sex,birth_date,id_number,phone,address"


def write(tmp_path: Path, rows: list[str], bom: bool = False, name: str = "in.csv") -> Path:
    p = tmp_path / name
    p.write_text(("\ufeff" if bom else "") + HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return p


def link(tmp_path: Path, rows: list[str], **kw: object) -> dict[str, str]:
    src = write(tmp_path, rows, **kw)  # type: ignore[arg-type]
    out = tmp_path / "out.csv"
    run(str(src), str(out), str(tmp_path / "review.csv"), log=None)
    with out.open(encoding="utf-8") as fh:
        return {r["record_id"]: r["person_id"] for r in csv.DictReader(fh)}


def review_rows(tmp_path: Path) -> list[dict[str, str]]:
    with (tmp_path / "review.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---- normalisation -------------------------------------------------------------------------

def test_name_normalisation_spaces_traditional_fullwidth() -> None:
    assert norm.name("王 小 明") == "王小明"
    assert norm.name("張偉") == "张伟"
    assert norm.name_pinyin("曾伟") == ("zeng", "wei")  # surname reading, not "ceng"
    assert norm.name_pinyin("欧阳娜娜") == ("ouyang", "nana")


def test_date_phone_id_normalisation() -> None:
    assert norm.birth_date("１９９０年３月５日") == "19900305"
    assert norm.birth_date("1990/03/05") == "19900305"
    assert norm.birth_date("19900305") == "19900305"
    assert norm.birth_date("1990-02-30") is None
    assert norm.birth_date("2999-01-01") is None
    assert norm.phone("+86 138 0013 8000") == "13800138000"
    assert norm.phone("0086-13800138000") == "13800138000"
    assert norm.phone("12345") is None
    rid = resident_id(date(1985, 6, 1), seq=7)
    assert norm.id_number(rid.lower()) == (rid.upper(), None)
    legacy = rid[:6] + rid[8:17]
    assert norm.id_number(legacy) == (rid, None)  # 15-digit IDs upgraded
    bad = rid[:17] + ("0" if rid[17] != "0" else "1")
    assert norm.id_number(bad) == (None, bad)  # weak evidence only
    assert norm.sex("男") == "男" and norm.sex("未知") is None


def test_malformed_values_counted_and_rows_kept(tmp_path: Path) -> None:
    rid = resident_id(date(1985, 6, 1), seq=7)
    rows = [
        f"a1,甲院,李四,男,1985-02-30,{rid[:17]}0,138001380,",
        "a2,乙院,,未知,,,,",
        "a3,乙院,王五,女,1990-01-01,,,",
    ]
    src = write(tmp_path, rows)
    res = run(str(src), str(tmp_path / "o.csv"), log=None)
    assert res.record_ids == ["a1", "a2", "a3"]
    assert len(res.person_ids) == 3
    assert res.malformed["birth_date"] == 1
    assert res.malformed["sex"] == 1
    assert res.malformed["phone"] == 1
    assert res.malformed["id_number"] == (0 if rid.endswith("0") else 1)


# ---- linking ------------------------------------------------------------------------------

def test_same_valid_id_links_despite_other_differences(tmp_path: Path) -> None:
    rid = resident_id(date(1970, 1, 2), seq=11)
    got = link(tmp_path, [f"r1,甲院,张三,男,1970-01-02,{rid},13800000001,香河县渠口镇",
                          f"r2,乙院,張叁,男,,{rid.lower()},,北京市"])
    assert got["r1"] == got["r2"]


def test_typo_duplicates_without_id_are_linked(tmp_path: Path) -> None:
    rid = resident_id(date(1978, 4, 9), seq=12, male=False)
    got = link(tmp_path, [
        f"r1,香河县人民医院,刘静怡,女,1978-04-09,{rid},13912345678,河北省廊坊市香河县渠口镇东街12号",
        "r2,渠口镇卫生院,刘 静怡,女,1978-09-04,,+86 139 1234 5678,香河县渠口镇东街12号",   # swap, space, +86
        "r3,北京儿童医院,刘晶怡,女,１９７８-04-09,,0086-13912345678,河北省廊坊市香河县渠口镇东街12号",  # homophone
    ], bom=True)
    assert got["r1"] == got["r2"] == got["r3"]


def test_twins_not_merged(tmp_path: Path) -> None:
    got = link(tmp_path, [
        "t1,甲院,王子涵,男,2016-05-01,,13700000001,香河县渠口镇东街1号",
        "t2,甲院,王子轩,男,2016-05-01,,13700000001,香河县渠口镇东街1号",
        "t3,乙院,王子涵,男,2016-05-01,,13700000001,香河县渠口镇东街1号",
    ])
    assert got["t1"] == got["t3"]
    assert got["t1"] != got["t2"]


def test_twins_with_different_valid_ids_never_merged(tmp_path: Path) -> None:
    a = resident_id(date(2016, 5, 1), seq=21)
    b = resident_id(date(2016, 5, 1), seq=22)
    got = link(tmp_path, [
        f"t1,甲院,王子涵,男,2016-05-01,{a},13700000001,香河县渠口镇东街1号",
        f"t2,乙院,王子涵,男,2016-05-01,{b},13700000001,香河县渠口镇东街1号",
        "t3,丙院,王子涵,男,2016-05-01,,13700000001,香河县渠口镇东街1号",
    ])
    assert got["t1"] != got["t2"]  # t3 may join one of them, never both


def test_siblings_on_guardian_phone_not_merged(tmp_path: Path) -> None:
    got = link(tmp_path, [
        "s1,甲院,陈一诺,女,2015-03-08,,13600000002,固安县1号",
        "s2,甲院,陈浩然,男,2018-07-20,,13600000002,固安县1号",
    ])
    assert got["s1"] != got["s2"]


def test_many_wang_wei_same_year_not_merged(tmp_path: Path) -> None:
    rows = [f"w{k},甲院,王伟,男,1986-{1 + k % 12:02d}-{1 + k:02d},,1390000{k:04d},北京市朝阳区{k}号"
            for k in range(20)]
    got = link(tmp_path, rows)
    assert len(set(got.values())) == 20


def test_same_name_same_date_different_everything_is_review_not_link(tmp_path: Path) -> None:
    got = link(tmp_path, [
        "x1,甲院,王伟,男,1986-03-03,,13900000001,北京市朝阳区建国路1号",
        "x2,乙院,王伟,男,1986-03-03,,13900000002,河北省廊坊市霸州市胜芳镇",
    ] + [f"f{k},丙院,王伟,男,1987-01-{1 + k:02d},,,," for k in range(20)])
    assert got["x1"] != got["x2"]


def test_output_order_and_determinism(tmp_path: Path) -> None:
    rows = [f"r{k},甲院,赵{'一二三四五'[k % 5]},男,1990-01-0{1 + k % 5},,1380000000{k % 5},," for k in range(10)]
    first = link(tmp_path, rows)
    second = link(tmp_path, rows)
    assert first == second
    assert list(first) == [f"r{k}" for k in range(10)]
    assert first["r0"] == first["r5"] == "P1"


def test_rules_are_versioned() -> None:
    assert RULES_V1.version == "v1"
    assert RULES_V1.review < RULES_V1.auto_link


# ---- CLI ----------------------------------------------------------------------------------

def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write(tmp_path, ["r1,甲院,李娜,女,1990-01-01,,13800000009,",
                           "r2,乙院,李 娜,女,1990-01-01,,13800000009,"])
    out, rev = tmp_path / "o.csv", tmp_path / "r.csv"
    code = cli_main(["empi", "link", "--input", str(src), "--output", str(out), "--review", str(rev)])
    assert code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "record_id,person_id"
    assert lines[1].split(",")[1] == lines[2].split(",")[1]
    assert rev.read_text(encoding="utf-8").splitlines()[0] == "record_id_a,record_id_b,score"
    err = capsys.readouterr().err
    assert "summary: records=2 persons=1 review_pairs=0" in err


def test_cli_unreadable_file_exits_2(tmp_path: Path) -> None:
    assert cli_main(["empi", "link", "--input", str(tmp_path / "nope.csv"), "--output",
                     str(tmp_path / "o.csv")]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    assert cli_main(["empi", "link", "--input", str(bad), "--output", str(tmp_path / "o.csv")]) == 2
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    assert cli_main(["empi", "link", "--input", str(binary), "--output", str(tmp_path / "o.csv")]) == 2


def test_cli_missing_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["empi", "link", "--input", "x.csv"])
    assert exc.value.code == 2
