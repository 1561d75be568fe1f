"""Resident ID, mobile and name validation (property-based where it helps)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import resident_id
from yilianti.kit import validate as v


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)), st.integers(0, 499), st.booleans())
def test_generated_ids_validate_and_one_changed_digit_fails(birth, seq, male):  # type: ignore[no-untyped-def]
    number = resident_id(birth, "120103", seq % 500, male)
    parsed = v.resident_id(number)
    assert parsed.birth_date == birth and parsed.sex == ("男" if male else "女")
    broken = number[:10] + str((int(number[10]) + 1) % 10) + number[11:]
    with pytest.raises(v.Invalid):
        v.resident_id(broken)


@pytest.mark.parametrize("raw,expected", [("+86 138 0013 8000", "13800138000"), ("0086-13800138000", "13800138000"),
                                          ("１３８００１３８０００", "13800138000")])
def test_mobile_normalised(raw, expected):  # type: ignore[no-untyped-def]
    assert v.mobile(raw) == expected


@pytest.mark.parametrize("bad", ["12800138000", "1380013800", "abc", "23800138000"])
def test_bad_mobiles(bad):  # type: ignore[no-untyped-def]
    with pytest.raises(v.Invalid):
        v.mobile(bad)


def test_names():  # type: ignore[no-untyped-def]
    assert v.person_name(" 王 伟 ") == "王伟"
    assert v.person_name("阿依古丽•买买提") == "阿依古丽·买买提"
    for bad in ["王", "王1", "·王伟"]:
        with pytest.raises(v.Invalid):
            v.person_name(bad)


def test_a_region_code_is_the_one_in_use_when_the_id_was_issued_not_at_birth():  # type: ignore[no-untyped-def]
    """131024 香河县 is in use since 1988: someone born there in 1980 and given an ID later carries it."""
    for born in (date(1955, 2, 1), date(1980, 5, 6), date(2001, 9, 30)):
        parsed = v.resident_id(resident_id(born, "131024"))
        assert parsed.county == "香河县" and parsed.province == "河北省" and parsed.birth_date == born
    assert v.resident_id(resident_id(date(1980, 5, 6), "132823")).county == "香河县"  # its code until 1988
    with pytest.raises(v.Invalid) as e:  # abolished in 1988: no one born in 1990 was given it
        v.resident_id(resident_id(date(1990, 5, 6), "132823"))
    assert e.value.message == "身份证号中的地区码无效"
    with pytest.raises(v.Invalid):
        v.resident_id(resident_id(date(1990, 5, 6), "999999"))


def test_impossible_birth_years_are_refused_in_the_id_as_in_the_birth_date_field():  # type: ignore[no-untyped-def]
    for born in (date(1800, 1, 1), date(1889, 12, 31), date.today() + timedelta(days=400)):
        with pytest.raises(v.Invalid) as e:
            v.resident_id(resident_id(born, "110105"))
        assert e.value.message == "身份证号中的出生日期不合理"
        with pytest.raises(v.Invalid) as e:
            v.birth_date(born)
        assert e.value.message == "出生日期不合理"
    assert v.resident_id(resident_id(date(1890, 1, 1), "110105")).birth_date == v.birth_date(date(1890, 1, 1))


@pytest.mark.parametrize("typed,stored", [
    ("𠮷田", "𠮷田"), ("吴𪚥", "吴𪚥"), ("王𰻞", "王𰻞"),  # Extensions B, B and G
    ("阿依古丽·买买提", "阿依古丽·买买提"), ("阿依古丽•买买提", "阿依古丽·买买提"), ("阿依古丽・买买提", "阿依古丽·买买提"),
    ("阿依古丽\u00b7买买提", "阿依古丽·买买提"), ("阿依古丽.买买提", "阿依古丽·买买提"), ("阿依古丽‧买买提", "阿依古丽·买买提"),
    ("阿依古丽 · 买买提", "阿依古丽·买买提"), ("Mary-Jane O'Neil", "Mary-Jane O'Neil"),
])
def test_names_with_rare_characters_and_the_middle_dot(typed, stored):  # type: ignore[no-untyped-def]
    assert v.person_name(typed) == stored


@pytest.mark.parametrize("bad", ["𠮷", "·王伟", "王伟·", "王··伟", "王1", "王\U0001F600"])
def test_names_refused(bad):  # type: ignore[no-untyped-def]
    with pytest.raises(v.Invalid):
        v.person_name(bad)
