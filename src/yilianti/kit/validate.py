"""Validation of Chinese identity data: resident ID numbers, mobile numbers, names.

Each function returns the normalised value or raises `Invalid` with a message that the
error handler turns into a field-level message (Chinese first, English by catalogue).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from stdnum.cn import ric


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


def resident_id(value: str) -> ResidentId:
    number = re.sub(r"[\s-]", "", normalise_text(value)).upper()
    if not number:
        raise Invalid("请填写身份证号")
    if len(number) == 15 and number.isdigit():
        number = _upgrade_15(number)
    if len(number) != 18 or not re.fullmatch(r"\d{17}[\dX]", number):
        raise Invalid("身份证号应为18位（最后一位可为X）")
    try:
        ric.validate(number)
    except ric.InvalidChecksum:
        raise Invalid("身份证号校验位不正确") from None
    except ric.InvalidComponent:
        raise Invalid("身份证号中的出生日期或地区码无效") from None
    except ric.ValidationError:
        raise Invalid("身份证号无效") from None
    birth = ric.get_birth_date(number)
    if birth > date.today():
        raise Invalid("身份证号中的出生日期在未来")
    place = ric.get_birth_place(number) or {}
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


NAME_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff·]{2,30}|[A-Za-z][A-Za-z .'\-]{1,59}")


def person_name(value: str) -> str:
    """Chinese names (spaces removed; '·' for minority names) or Latin names for foreigners."""
    text = normalise_text(value).replace("•", "·").replace(".", "·") if _has_cjk(value) else normalise_text(value)
    if _has_cjk(text):
        text = re.sub(r"\s+", "", text)
    if not text:
        raise Invalid("请填写姓名")
    if not NAME_RE.fullmatch(text) or text.startswith("·") or text.endswith("·"):
        raise Invalid("姓名只能包含汉字（少数民族姓名可含·）或拉丁字母，至少2个字")
    return text


def _has_cjk(value: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in value)


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
