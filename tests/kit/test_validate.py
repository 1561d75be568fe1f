"""Resident ID, mobile and name validation (property-based where it helps)."""

from __future__ import annotations

from datetime import date

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
