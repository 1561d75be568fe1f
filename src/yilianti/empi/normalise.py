"""Normalisation of one registration record for matching (CONTRACTS.md `yilianti empi link`).

Values are normalised, never trusted: a malformed value becomes missing (or weak evidence,
for a resident ID failing its check) and is counted per field; a row is never dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

from yilianti.kit.validate import Invalid, has_han, is_han, resident_id, unify_dots
from yilianti.kit.validate import birth_date as valid_birth_date

# Traditional → simplified characters common in names and addresses (NFKC does not do this).
_TRAD = (
    "張张陳陈劉刘黃黄趙赵吳吴鄭郑孫孙楊杨馬马許许羅罗謝谢韓韩馮冯鄧邓蕭萧葉叶蘇苏盧卢蔣蒋賈贾"
    "閆闫龍龙陸陆錢钱湯汤萬万顧顾華华鄒邹歐欧侯侯鍾钟譚谭範范嚴严喬乔曉晓偉伟麗丽強强軍军傑杰"
    "濤涛國国紅红靜静輝辉東东嬌娇鳳凤蘭兰雲云慶庆寶宝鵬鹏飛飞興兴貴贵鑫鑫馨馨婷婷穎颖瑩莹潔洁"
    "儀仪嬋婵豔艳燕燕霞霞鳴鸣聰聪剛刚鋒锋曄晔暉晖書书愛爱萍萍琳琳磊磊勝胜榮荣義义禮礼德德祥祥"
    "亞亚銘铭瑋玮綺绮語语詩诗夢梦鶴鹤園园為为豪豪傳传達达縣县鎮镇區区號号樓楼門门莊庄場场衛卫"
)
TRAD_TO_SIMP = {_TRAD[i]: _TRAD[i + 1] for i in range(0, len(_TRAD), 2) if _TRAD[i] != _TRAD[i + 1]}
_TRAD_TABLE = str.maketrans(TRAD_TO_SIMP)

# Surname readings that differ from the character's everyday reading (ECOSYSTEM.md "pinyin").
SURNAME_PINYIN = {
    "曾": "zeng", "单": "shan", "解": "xie", "仇": "qiu", "区": "ou", "查": "zha", "朴": "piao",
    "盖": "ge", "乐": "yue", "种": "chong", "覃": "qin", "尉": "yu", "缪": "miao", "翟": "zhai",
    "秘": "bi", "繁": "po", "燕": "yan", "任": "ren", "沈": "shen", "葛": "ge", "长": "chang",
    "万": "wan", "尉迟": "yuchi", "单于": "chanyu", "长孙": "zhangsun",
}
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "长孙", "慕容", "令狐",
                     "司徒", "夏侯", "公孙", "宇文", "单于", "端木", "呼延", "独孤", "南宫", "西门")

_SPACE_RE = re.compile(r"\s+")
_DATE_RES = (
    re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"),
    re.compile(r"(\d{4})(\d{2})(\d{2})"),
)
_MOBILE_RE = re.compile(r"1[3-9]\d{9}")
_LANDLINE_RE = re.compile(r"0\d{9,11}")
_ID_SHAPE = re.compile(r"\d{17}[\dX]|\d{15}")


def nfkc(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def _is_cjk(ch: str) -> bool:
    return is_han(ch)


def name(value: str) -> str:
    """NFKC, traditional → simplified, spaces removed inside Chinese names, dots unified (kit.validate)."""
    text = nfkc(value).translate(_TRAD_TABLE)
    if has_han(text):
        return unify_dots(_SPACE_RE.sub("", text))
    return _SPACE_RE.sub(" ", text).lower()


def split_name(text: str) -> tuple[str, str]:
    if not text or not _is_cjk(text[0]):
        parts = text.rsplit(" ", 1)
        return (parts[-1], parts[0]) if len(parts) == 2 else (text, "")
    if len(text) >= 3 and text[:2] in COMPOUND_SURNAMES:
        return text[:2], text[2:]
    return text[:1], text[1:]


@lru_cache(maxsize=200_000)
def _pinyin(text: str) -> str:
    return "".join(lazy_pinyin(text, style=Style.NORMAL, errors="ignore"))


@lru_cache(maxsize=500_000)
def name_pinyin(text: str) -> tuple[str, str]:
    """(surname pinyin, given-name pinyin), toneless; surnames read from the surname table."""
    surname, given = split_name(text)
    if not surname or not _is_cjk(surname[0]):
        return surname, given.replace(" ", "")
    return SURNAME_PINYIN.get(surname) or _pinyin(surname), _pinyin(given)


def name_initials(text: str) -> str | None:
    """拼音首字母 of a name, lower case (张三丰 → "zsf"; 单田芳 → "stf", the surname read as a surname);
    a name in Latin letters gives its words' initials; None when nothing is left."""
    normal = name(text)
    if not normal:
        return None
    if _is_cjk(normal[0]):
        surname, given = split_name(normal)
        read = SURNAME_PINYIN.get(surname)
        sur = ("".join(lazy_pinyin(surname, style=Style.FIRST_LETTER, errors="ignore")) if read is None
               or len(surname) > 1 else read[0])
        out = sur + "".join(lazy_pinyin(given, style=Style.FIRST_LETTER, errors="ignore"))
    else:
        out = "".join(w[0] for w in normal.split() if w)
    return out.lower()[:16] or None


def birth_date(value: str, today: date | None = None) -> str | None:
    """'YYYYMMDD' or None when impossible (a bad calendar date, or one kit.validate.birth_date refuses)."""
    text = nfkc(value)
    for rx in _DATE_RES:
        m = rx.fullmatch(text) or (rx.match(text) if rx is _DATE_RES[0] else None)
        if m:
            try:
                d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                return None
            try:
                return valid_birth_date(d, today).strftime("%Y%m%d")
            except Invalid:
                return None
    return None


def sex(value: str) -> str | None:
    text = nfkc(value)
    return {"男": "男", "女": "女", "男性": "男", "女性": "女"}.get(text)


def phone(value: str) -> str | None:
    digits = re.sub(r"[\s()\-]", "", nfkc(value))
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if _MOBILE_RE.fullmatch(digits) or _LANDLINE_RE.fullmatch(digits):
        return digits
    return None


def id_number(value: str) -> tuple[str | None, str | None]:
    """(valid 18-digit ID, None) or (None, weak shape-only value) or (None, None)."""
    text = re.sub(r"[\s-]", "", nfkc(value)).upper()
    if not text:
        return None, None
    try:
        return resident_id(text).number, None
    except Invalid:
        return None, (text if _ID_SHAPE.fullmatch(text) else None)


def address(value: str) -> str:
    return _SPACE_RE.sub("", nfkc(value).translate(_TRAD_TABLE))


# the administrative prefix of a Chinese address: province / autonomous region, prefecture-level city (or
# autonomous prefecture, league, region), county-level unit. Parts may be missing; none may hold a town,
# street, road, village or house-number character, so "幸福小区3号楼" or "超市" are never taken for one.
_NOT_ADMIN = "省市县区旗盟镇乡街路村屯号组弄巷栋楼单元室0-9"
_ADMIN_PREFIX = re.compile(
    rf"^(?:[^{_NOT_ADMIN}]{{2,8}}?(?:省|自治区))?"
    rf"(?:[^{_NOT_ADMIN}]{{2,8}}?(?:市|自治州|州|盟|地区))?"
    rf"(?:[^{_NOT_ADMIN}]{{1,10}}?(?:自治县|自治旗|县|区|旗|市))?")


def address_local(normalised: str) -> str:
    """The address below the county: what two neighbours in one county do not share (河北省廊坊市大厂回族自治县
    钳屯镇后屯129号 → 钳屯镇后屯129号). A long common prefix makes two addresses of one county look alike."""
    return normalised[_ADMIN_PREFIX.match(normalised).end():]  # type: ignore[union-attr]


def address_bigrams(raw: str) -> tuple[frozenset[str], frozenset[str]]:
    """Record.addr and Record.addr_local of a raw address: bigrams of the whole and of the part below the county."""
    if not raw.strip():
        return frozenset(), frozenset()
    normalised = address(raw)
    return bigrams(normalised), bigrams(address_local(normalised))


def bigrams(text: str) -> frozenset[str]:
    if len(text) < 2:
        return frozenset((text,)) if text else frozenset()
    return frozenset(text[i:i + 2] for i in range(len(text) - 1))


@dataclass
class Malformed:
    """Malformed values per field (the value was present but unusable)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, fieldname: str) -> None:
        self.counts[fieldname] += 1


@dataclass(slots=True)
class Record:
    name: str          # normalised name ('' = missing)
    surname_py: str
    given_py: str
    birth: str         # YYYYMMDD or ''
    sex: str           # 男 | 女 | ''
    rid: str           # valid resident ID or ''
    rid_weak: str      # ID-shaped value failing validation, or ''
    phone: str
    addr: frozenset[str]
    addr_local: frozenset[str] = frozenset()  # bigrams of address_local (rules v4's supporting address)


def record(row: dict[str, str], malformed: Malformed) -> Record:
    raw_name = row.get("name") or ""
    nm = name(raw_name) if raw_name.strip() else ""
    sur_py, given_py = name_pinyin(nm) if nm else ("", "")

    raw_birth = (row.get("birth_date") or "").strip()
    birth = birth_date(raw_birth) if raw_birth else None
    if raw_birth and birth is None:
        malformed.add("birth_date")

    raw_sex = (row.get("sex") or "").strip()
    sx = sex(raw_sex) if raw_sex else None
    if raw_sex and sx is None:
        malformed.add("sex")

    raw_id = (row.get("id_number") or "").strip()
    rid, weak = id_number(raw_id) if raw_id else (None, None)
    if raw_id and rid is None:
        malformed.add("id_number")
    if rid:  # the ID carries birth date and sex: fill what the row is missing
        if birth is None:
            birth = rid[6:14]
        if sx is None:
            sx = "男" if int(rid[16]) % 2 == 1 else "女"

    raw_phone = (row.get("phone") or "").strip()
    ph = phone(raw_phone) if raw_phone else None
    if raw_phone and ph is None:
        malformed.add("phone")

    return Record(nm, sur_py, given_py, birth or "", sx or "", rid or "", weak or "", ph or "",
                  *address_bigrams(row.get("address") or ""))
