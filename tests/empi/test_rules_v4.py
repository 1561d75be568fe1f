"""Rules v4: a supporting address is compared below the county (issue 5, B6 online false link of 2026-12-06)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tests.empi.helpers import open_candidates, register, world
from tests.empi.test_rules_v2 import link
from yilianti.empi import online
from yilianti.empi.matching import RULES_V3, RULES_V4
from yilianti.empi.normalise import address, address_local

# the B6 online run's false link under v3: a common name born the same day, a phone on one side only, and
# two addresses in different towns of one county (their shared "河北省廊坊市大厂回族自治县" reached 0.45)
SAME_COUNTY = ["c1,甲院,王芳,女,1985-01-25,,16064902576,河北省廊坊市大厂回族自治县钳屯镇后屯129号",
               "c2,乙院,王芳,女,1985-01-25,,,河北省廊坊市大厂回族自治县蒋辛屯镇后街179号"]

# built on rules v4's weights and thresholds (v5 has its own: test_rules_v5.py)
pytestmark = pytest.mark.usefixtures("rules_v4")


@pytest.mark.parametrize(("raw", "local"), [
    ("河北省廊坊市大厂回族自治县钳屯镇后屯129号", "钳屯镇后屯129号"),
    ("北京市丰台区蒋辛屯镇南村6号", "蒋辛屯镇南村6号"),
    ("香河县安平镇前庄58号", "安平镇前庄58号"),
    ("内蒙古自治区呼和浩特市新城区海拉尔东路1号", "海拉尔东路1号"),
    ("河北省保定市涿州市范阳路5号", "范阳路5号"),
    ("延边朝鲜族自治州延吉市人民路1号", "人民路1号"),
    ("安平镇幸福小区3号楼", "安平镇幸福小区3号楼"),  # no county prefix: a 小区 is not a 区
    ("幸福路5号", "幸福路5号"),
    ("北京市朝阳区", ""),
])
def test_address_below_the_county(raw: str, local: str) -> None:
    assert address_local(address(raw)) == local


def test_two_towns_of_one_county_no_longer_support_a_common_name(tmp_path: Path) -> None:
    v3, _ = link(tmp_path, SAME_COUNTY, RULES_V3)
    assert v3["c1"] == v3["c2"]  # what v3 did
    v4, review = link(tmp_path, SAME_COUNTY, RULES_V4)
    assert v4["c1"] != v4["c2"]
    [pair] = review  # an identical name and birth date stay worth a look
    assert RULES_V4.review <= float(pair["score"]) < RULES_V4.auto_link


@pytest.mark.parametrize("second", [
    "c2,乙院,王芳,女,1985-01-25,,,香河县钳屯镇后屯129号",                   # the same address, another prefix
    "c2,乙院,王芳,女,1985-01-25,,,河北省廊坊市大厂回族自治县钳屯镇后屯129号",  # the same address
    "c2,乙院,王芳,女,1985-01-25,,16064902576,",                              # the same phone
])
def test_v4_still_links_the_same_address_or_phone(tmp_path: Path, second: str) -> None:
    persons, _ = link(tmp_path, [SAME_COUNTY[0], second], RULES_V4)
    assert persons["c1"] == persons["c2"]


def test_online_registration_in_another_town_goes_to_review(db) -> None:  # type: ignore[no-untyped-def]
    w = world(db)
    first = register(db, w.d_town, "王芳", sex="女", birth=date(1985, 1, 25), phone="16064902576",
                     address="河北省廊坊市大厂回族自治县钳屯镇后屯129号")
    other = register(db, w.d_county, "王芳", sex="女", birth=date(1985, 1, 25), phone=None,
                     address="河北省廊坊市大厂回族自治县蒋辛屯镇后街179号")
    assert other.patient.id != first.patient.id
    assert online.RULES is RULES_V4  # this module matches online by v4 (pytestmark)
    assert [c.rules_version for c in open_candidates(db)] == ["v4"]
