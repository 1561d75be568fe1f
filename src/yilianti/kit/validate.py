"""Validation of Chinese identity data: resident ID numbers, birth dates, mobile numbers, names.

Each function returns the normalised value or raises `Invalid` with a message that the
error handler turns into a field-level message (Chinese first, English by catalogue). Every form, the
API, the demo loader and the EMPI's normalisation use these (one rule each, in one place).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from stdnum import numdb
from stdnum.cn import ric

from yilianti.kit import clock


class Invalid(ValueError):
    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


def normalise_text(value: str) -> str:
    """Full-width → half-width (NFKC), trimmed."""
    return unicodedata.normalize("NFKC", value).strip()


@dataclass(frozen=True)
class ResidentId:
    number: str
    birth_date: date
    sex: str  # 男 | 女
    region_code: str
    province: str | None
    county: str | None


def _upgrade_15(number: str) -> str:
    """Legacy 15-digit IDs (born 19xx): insert the century and compute the check digit."""
    body = number[:6] + "19" + number[6:]
    return body + ric.calc_check_digit(body + "0")


BIRTH_YEAR_MIN = 1890


def birth_date(value: date, today: date | None = None) -> date:
    """A birth date a living or recently living person has: from 1890, not after today (Beijing). The
    registration form, the birth date inside a resident ID and the EMPI's normalisation all ask this."""
    if value.year < BIRTH_YEAR_MIN or value > (today or clock.today_local()):
        raise Invalid("出生日期不合理")
    return value


def region(code: str, birth_year: int) -> dict[str, str] | None:
    """The place of a resident ID's region code (GB/T 2260), or None when the code cannot be in an ID of a
    person born in `birth_year`.

    The list is python-stdnum's, with each code's years of use (e.g. 131024 香河县 since 1988, 132823 香河县
    until 1988). An ID carries the code in use when it was *issued*, not at birth: someone born in Xianghe in
    1980 and given an ID in 1999 has 131024. So a code is accepted whenever it was still in use in or after
    the birth year (issued at birth or later); only a code abolished before the person was born is refused.
    """
    info: dict[str, str] = {}
    for _part, props in numdb.get("cn/loc").info(code):
        info.update(props)
    if not info or "county" not in info:
        return None
    for county in info["county"].split(","):
        name, until = county, None
        if county.startswith("["):
            years, name = county[1:].split("]", 1)
            until = years.split("-")[1]
        if not until or birth_year <= int(until):
            return {"province": info.get("province", ""), "county": name}
    return None


def resident_id(value: str) -> ResidentId:
    """A resident ID (居民身份证号): 18 digits (a 15-digit one of 1984–2004 is upgraded), its ISO 7064 check
    digit, a birth date that passes `birth_date` and a region code that `region` knows."""
    number = re.sub(r"[\s-]", "", normalise_text(value)).upper()
    if not number:
        raise Invalid("请填写身份证号")
    if len(number) == 15 and number.isdigit():
        number = _upgrade_15(number)
    if len(number) != 18 or not re.fullmatch(r"\d{17}[\dX]", number):
        raise Invalid("身份证号应为18位（最后一位可为X）")
    if number[-1] != ric.calc_check_digit(number):
        raise Invalid("身份证号校验位不正确")
    try:
        birth = ric.get_birth_date(number)
    except ric.ValidationError:
        raise Invalid("身份证号中的出生日期无效") from None
    try:
        birth_date(birth)
    except Invalid:
        raise Invalid("身份证号中的出生日期不合理") from None
    place = region(number[:6], birth.year)
    if place is None:
        raise Invalid("身份证号中的地区码无效")
    return ResidentId(
        number=number,
        birth_date=birth,
        sex="男" if int(number[16]) % 2 == 1 else "女",
        region_code=number[:6],
        province=place.get("province"),
        county=place.get("county"),
    )


MOBILE_RE = re.compile(r"1[3-9]\d{9}")
LANDLINE_RE = re.compile(r"0\d{2,3}\d{7,8}")


def mobile(value: str, allow_landline: bool = False) -> str:
    digits = re.sub(r"[\s()\-]", "", normalise_text(value))
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if MOBILE_RE.fullmatch(digits):
        return digits
    if allow_landline and LANDLINE_RE.fullmatch(digits):
        return digits
    raise Invalid("手机号应为11位，以1开头")


# Han characters: the basic block, Extension A, the compatibility block, and Extensions B–I with the
# compatibility supplement (U+20000–U+323AF): 生僻字 such as 𠮷 or 𪚥 are common in names.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U000323af"
_HAN_RE = re.compile(f"[{HAN}]")
# what people type for the middle dot of a minority name (阿依古丽·买买提): U+00B7 is kept
_DOTS = str.maketrans({ch: "·" for ch in ".•・‧∙⋅･．"})
NAME_RE = re.compile(f"[{HAN}](?:[{HAN}]|·(?=[{HAN}])){{1,29}}|[A-Za-z][A-Za-z .'\\-]{{1,59}}")


def is_han(ch: str) -> bool:
    """One Han character (any block, Extensions B–I included); comparisons, as the EMPI asks it per record."""
    return ("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"
            or "\U00020000" <= ch <= "\U000323af")


def has_han(value: str) -> bool:
    return _HAN_RE.search(value) is not None


def unify_dots(text: str) -> str:
    """Every middle-dot look-alike (• ・ ‧ . ．) as U+00B7 ·."""
    return text.translate(_DOTS)


def person_name(value: str) -> str:
    """Chinese names (spaces removed; '·' between the parts of minority names, typed as any of · • ・ ‧ .) or
    Latin names for foreigners."""
    text = normalise_text(value)
    if has_han(text):
        text = re.sub(r"\s+", "", unify_dots(text))
    if not text:
        raise Invalid("请填写姓名")
    if not NAME_RE.fullmatch(text):
        raise Invalid("姓名只能包含汉字（少数民族姓名可含·）或拉丁字母，至少2个字")
    return text


SEXES = ("男", "女", "未知")


def sex(value: str) -> str:
    text = normalise_text(value)
    mapped = {"M": "男", "F": "女", "MALE": "男", "FEMALE": "女", "1": "男", "2": "女", "U": "未知"}.get(
        text.upper(), text
    )
    if mapped not in SEXES:
        raise Invalid("性别应为 男 / 女 / 未知")
    return mapped


def username(value: str) -> str:
    text = normalise_text(value).lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{2,63}", text):
        raise Invalid("用户名为3–64位小写字母、数字或 . _ -")
    return text
