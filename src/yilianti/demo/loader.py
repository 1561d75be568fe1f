"""Demo data set: the real alliances of alliances.yaml plus synthetic staff, accounts and patients.

The alliances, institutions and memberships are facts from public news articles (see the
YAML header). Everything else — departments, practitioners, accounts, patients — is
synthetic and deterministic (`random.Random(SEED)`), shaped after what the articles
describe (experts sitting one day a week at a community centre, a county expert team
visiting a township every Friday, Beijing experts running departments in Baoding ...).

`dataset.load_demo(db)` (this module's base data, then each domain's: demo/dataset.py)
flushes but never commits (the caller owns the transaction). It is idempotent: once the
marker audit event (action "demo_load") is present it creates nothing and returns the same
account list as `demo_accounts()`. Typical use::

    with session_factory() as db:
        accounts = load_demo(db)
        db.commit()
    for a in accounts:
        print(f"demo account: username={a.username} password={a.password} role={a.role} "
              f"institution={a.institution_name}")

`TWINS` and `NAMESAKES` give the resident IDs of the deliberate hard negatives for the
identity matching (twins; two men called 王伟 born in 1985).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.authz.subject import Subject
from yilianti.kit import validate
from yilianti.models.alliance import (
    GRASSROOTS_KINDS,
    Alliance,
    AllianceModel,
    Department,
    Institution,
    InstitutionKind,
    MemberRole,
    Membership,
)
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import Role, User
from yilianti.models.outbox import OutboxMessage
from yilianti.models.workforce import PracticeSite, Practitioner, Title
from yilianti.patients import service as patient_service

__all__ = [
    "CHRONIC_ACCOUNTS", "DEMO_PASSWORD", "NAMESAKES", "RECOGNITION_ACCOUNTS", "REFERRAL_ACCOUNTS", "SCHEDULING_ACCOUNTS", "TWINS", "DemoAccount", "alliances_data", "demo_accounts",
    "is_loaded", "resident_id_for",
]

SEED = 2026
DEMO_VERSION = "1"
DEMO_PASSWORD = "Demo2026!"
MARKER_ACTION = "demo_load"
MARKER_RESOURCE = "demo_data"
PLATFORM = "全平台"  # institution shown for the system administrator, who holds no institution
ANCHOR = date(2026, 1, 1)  # generated birth and licence dates lie before this day

LEAD = "天津市儿童医院"
COMMUNITY = "河西区桃园街社区卫生服务中心"
SECONDARY = "东丽医院"
COUNTY = "香河县人民医院"
TOWNSHIP = "渠口镇卫生院"
TIANJIN_ALLIANCE = "tianjin-pediatric"
XIANGHE_ALLIANCE = "xianghe-county"
CY_LEAD = "首都儿科研究所"
CY_COMMUNITY = "太阳宫社区卫生服务中心"
CHAOYANG_ALLIANCE = "chaoyang-pediatric"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    institution_name: str


# --------------------------------------------------------------------------- accounts

@dataclass(frozen=True)
class _AccountSpec:
    username: str
    role: str
    institution: str | None  # None = platform-wide (system_admin)
    display_name: str
    staff: str | None = None  # key of _KEY_STAFF, linked as the user's practitioner
    also_at: tuple[str, ...] = ()  # same role at these institutions too (multi-site practice)
    alliance: str | None = None  # alliance key for alliance_admin


_ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec("admin", Role.system_admin, None, "平台管理员"),
    _AccountSpec("tj-alliance-admin", Role.alliance_admin, LEAD, "天津市儿科医联体办公室", alliance=TIANJIN_ALLIANCE),
    _AccountSpec("tj-lead-admin", Role.institution_admin, LEAD, "天津市儿童医院信息科"),
    _AccountSpec("tj-lead-doctor", Role.doctor, LEAD, "张文博", staff="tj-lead-doctor", also_at=(COMMUNITY,)),
    _AccountSpec("tj-lead-coordinator", Role.coordinator, LEAD, "天津市儿童医院转诊中心"),
    _AccountSpec("tj-lead-reader", Role.reader, LEAD, "刘静怡", staff="tj-lead-reader"),
    _AccountSpec("tj-auditor", Role.auditor, LEAD, "天津市儿童医院审计员"),
    _AccountSpec("dongli-admin", Role.institution_admin, SECONDARY, "东丽医院信息科"),
    _AccountSpec("dongli-doctor", Role.doctor, SECONDARY, "周建军", staff="dongli-doctor"),
    _AccountSpec("dongli-nurse", Role.nurse, SECONDARY, "吴晓红", staff="dongli-nurse"),
    _AccountSpec("tj-community-admin", Role.institution_admin, COMMUNITY, "桃园街社区卫生服务中心办公室"),
    _AccountSpec("tj-community-doctor", Role.doctor, COMMUNITY, "赵海燕", staff="tj-community-doctor"),
    _AccountSpec("tj-community-nurse", Role.nurse, COMMUNITY, "孙丽萍", staff="tj-community-nurse"),
    _AccountSpec("xianghe-doctor", Role.doctor, COUNTY, "高志刚", staff="xianghe-doctor", also_at=(TOWNSHIP,)),
    _AccountSpec("xianghe-reader", Role.reader, COUNTY, "马文静", staff="xianghe-reader"),
    _AccountSpec("qukou-doctor", Role.doctor, TOWNSHIP, "李春生", staff="qukou-doctor"),
)

# Added with the booking data (demo/scheduling.py creates them, behind its own marker, so that a
# demo database loaded before gets them too). `staff` here names (department, head) of the
# institution: the account is linked to that department's head.
SCHEDULING_ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec("chaoyang-community-doctor", Role.doctor, CY_COMMUNITY, "", staff="全科"),
    _AccountSpec("chaoyang-lead-coordinator", Role.coordinator, CY_LEAD, "首都儿科研究所转诊预约中心"),
    _AccountSpec("chaoyang-lead-doctor", Role.doctor, CY_LEAD, "", staff="儿童呼吸科"),
)


# Added with the referral and critical-transfer data (demo/referrals.py creates them behind its own
# marker). `staff` names a department of the institution: the account is linked to its head.
REFERRAL_ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec("guangyang-doctor", Role.doctor, "广阳区人民医院", "", staff="神经内科"),
    _AccountSpec("yinhe-doctor", Role.doctor, "银河北路办事处社区卫生服务中心", "", staff="全科"),
    _AccountSpec("jiefang-doctor", Role.doctor, "解放道办事处社区卫生服务中心", "", staff="全科"),
    _AccountSpec("baoding-doctor", Role.doctor, "北京儿童医院保定医院(保定市儿童医院)", "", staff="儿内科"),
    _AccountSpec("bch-doctor", Role.doctor, "首都医科大学附属北京儿童医院", "", staff="儿内科"),
    _AccountSpec("lfch-doctor", Role.doctor, "廊坊市儿童医院", "", staff="新生儿科"),
    _AccountSpec("jinglang-doctor", Role.doctor, "首都儿科研究所附属儿童医院", "", staff="新生儿科"),
    _AccountSpec("langfang-lead-doctor", Role.doctor, "廊坊市人民医院", "", staff="心内科"),
    _AccountSpec("lf120-doctor", Role.doctor, "廊坊市120卫生急救中心", "", staff="院前急救科"),
)

# Added with the recognition data (demo/recognition.py creates them behind its own marker): the
# Beijing doctor who receives 香河's referral and decides on recognising its thyroid panel.
RECOGNITION_ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec("bjcy-doctor", Role.doctor, "北京朝阳医院", "", staff="内分泌科"),
)

# Added with the diagnostics data (demo/diagnostics.py creates it behind its own marker): a 渠口镇卫生院
# doctor in training (进修) at 香河县人民医院, reading there after switching the acting institution to the
# county; the reports need 马文静's second signature.
DIAGNOSTICS_ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec("xianghe-trainee", Role.reader, TOWNSHIP, "", also_at=(COUNTY,)),
)


# Added with chronic care (demo/chronic.py creates them behind its own marker): the family-doctor team of
# 沙县区总医院高桥分院 — its general practitioner (the team lead), nurse and public-health worker — and the
# endocrinologist of 沙县区总医院 who is the team's specialist. `staff` names the 全科 / specialist department.
CHRONIC_ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec("gaoqiao-doctor", Role.doctor, "沙县区总医院高桥分院", "", staff="全科"),
    _AccountSpec("gaoqiao-nurse", Role.nurse, "沙县区总医院高桥分院", "", staff="全科"),
    _AccountSpec("gaoqiao-phw", Role.nurse, "沙县区总医院高桥分院", "", staff="预防保健科"),
    _AccountSpec("shaxian-doctor", Role.doctor, "沙县区总医院", "", staff="内分泌科"),
)

# Added with the cockpit (demo/cockpit.py creates the authority and the account behind its own marker).
COCKPIT_ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec("langfang-commission", Role.health_commission, "廊坊市卫生健康委员会", "廊坊市卫健委医政科"),
)


def demo_accounts() -> list[DemoAccount]:
    """The demo accounts (one line each is printed by `make demo`)."""
    return [DemoAccount(a.username, DEMO_PASSWORD, str(a.role), a.institution or PLATFORM)
            for a in (*_ACCOUNTS, *SCHEDULING_ACCOUNTS, *REFERRAL_ACCOUNTS, *RECOGNITION_ACCOUNTS,
                      *DIAGNOSTICS_ACCOUNTS, *COCKPIT_ACCOUNTS, *CHRONIC_ACCOUNTS)]


@dataclass(frozen=True)
class _Staff:
    institution: str
    department: str
    name: str
    sex: str
    title: str
    licence: date
    head: bool = False


_KEY_STAFF: dict[str, _Staff] = {
    "tj-lead-doctor": _Staff(LEAD, "儿童呼吸科", "张文博", "男", Title.chief, date(2003, 8, 1), head=True),
    "tj-lead-reader": _Staff(LEAD, "影像科", "刘静怡", "女", Title.associate_chief, date(2009, 7, 1)),
    "dongli-doctor": _Staff(SECONDARY, "儿科", "周建军", "男", Title.associate_chief, date(2008, 9, 1), head=True),
    "dongli-nurse": _Staff(SECONDARY, "儿科", "吴晓红", "女", Title.nurse, date(2016, 7, 1)),
    "tj-community-doctor": _Staff(COMMUNITY, "全科", "赵海燕", "女", Title.attending, date(2012, 7, 1), head=True),
    "tj-community-nurse": _Staff(COMMUNITY, "全科", "孙丽萍", "女", Title.nurse_in_charge, date(2011, 7, 1)),
    "xianghe-doctor": _Staff(COUNTY, "心内科", "高志刚", "男", Title.chief, date(2001, 7, 1), head=True),
    "xianghe-reader": _Staff(COUNTY, "影像科", "马文静", "女", Title.attending, date(2013, 7, 1)),
    "qukou-doctor": _Staff(TOWNSHIP, "全科", "李春生", "男", Title.attending, date(2010, 7, 1), head=True),
}

# --------------------------------------------------------------------------- the YAML


@lru_cache(maxsize=1)
def _yaml_text() -> str:
    return resources.files("yilianti.demo").joinpath("alliances.yaml").read_text(encoding="utf-8")


def alliances_data() -> dict[str, Any]:
    """The parsed alliances.yaml (alliances, their members and the reported figures)."""
    data = yaml.safe_load(_yaml_text())
    assert isinstance(data, dict)
    return data


def _as_date(value: object) -> date | None:
    """YAML `joined`: a date, "2016-06" (first of the month) or 2017 (first of the year)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    parts = [int(p) for p in str(value).split("-")]
    return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)


_NOTE_LABELS = (
    ("mechanisms", "机制"), ("shares", "共享"), ("green_channels", "绿色通道"), ("member_rights", "成员权益"),
    ("pattern", "模式"), ("management_centers", "管理中心"), ("remote_items_reported", "远程检查检验项目"),
    ("remote_items_count_reported", "远程项目数"), ("billing_rule", "收费"), ("referral_trend", "转诊趋势"),
    ("size_reported", "报道规模(家)"),
)


def _alliance_notes(entry: dict[str, Any]) -> str | None:
    lines = [str(entry["notes"])] if entry.get("notes") else []
    for key, label in _NOTE_LABELS:
        value = entry.get(key)
        if value is None:
            continue
        text = "、".join(str(v) for v in value) if isinstance(value, list) else str(value)
        lines.append(f"{label}：{text}")
    return "\n".join(lines) or None


# Place of institutions where the articles or the names make it plain (no codes invented).
_MUNICIPALITIES = {"北京", "天津", "上海"}
_CITY = {
    "郑州市儿童医院": "郑州", "安徽省立儿童医院": "合肥", "河北省儿童医院": "石家庄", "南京市儿童医院": "南京",
    "青海省妇女儿童医院": "西宁", "武汉市儿童医院": "武汉", "西安市儿童医院": "西安", "山东省聊城市儿童医院": "聊城",
    "乌鲁木齐儿童医院": "乌鲁木齐", "福州儿童医院": "福州", "湖南省儿童医院": "长沙", "株洲市妇幼保健院": "株洲",
    "湘潭市妇幼保健院": "湘潭", "怀化市妇幼保健院": "怀化", "永州市第一人民医院": "永州", "新余市妇幼保健院": "新余",
    "郴州市儿童医院": "郴州", "长沙市妇幼保健院": "长沙", "衡阳市妇幼保健院": "衡阳", "常德市妇幼保健院": "常德",
    "萍乡市妇幼保健院": "萍乡", "普洱市人民医院": "普洱", "娄底市中心医院": "娄底", "喀什第一人民医院": "喀什",
    "阿勒泰地区人民医院": "阿勒泰", "哈密地区中心医院": "哈密", "富蕴县妇幼保健院": "阿勒泰",
    "乌鲁木齐市米东区人民医院": "乌鲁木齐", "布尔津县人民医院": "阿勒泰", "和田塔里木民营医院": "和田",
    "中国医学科学院阜外医院云南医院": "昆明",
}
_COUNTY = {
    "首都医科大学附属北京儿童医院": "西城区", "首都医科大学宣武医院": "西城区", "中国医学科学院阜外医院": "西城区",
    "首都儿科研究所": "朝阳区", "首都儿科研究所附属儿童医院": "朝阳区", "中日友好医院": "朝阳区",
    "北京朝阳医院": "朝阳区", "北京安贞医院": "朝阳区", "北京妇产医院": "朝阳区", "北京地坛医院": "朝阳区",
    "垂杨柳医院": "朝阳区", "朝阳区妇幼保健院": "朝阳区", "高碑店社区卫生服务中心": "朝阳区",
    "十八里店社区卫生服务中心": "朝阳区", "八里庄社区卫生服务中心": "朝阳区", "太阳宫社区卫生服务中心": "朝阳区",
    "金盏社区卫生服务中心": "朝阳区",
    "河西区康复医院(大营门街社区卫生服务中心)": "河西区", COMMUNITY: "河西区", "河西区友谊路街社区卫生服务中心": "河西区",
    "北辰区妇儿保健和计划生育技术服务中心": "北辰区", SECONDARY: "东丽区", "咸水沽医院": "津南区",
    "宝坻区妇产医院": "宝坻区", "上海交通大学医学院附属新华医院": "杨浦区",
    "广阳区人民医院": "广阳区", "解放道办事处社区卫生服务中心": "广阳区", "银河北路办事处社区卫生服务中心": "广阳区",
    COUNTY: "香河县", TOWNSHIP: "香河县", "固安县人民医院": "固安县", "渠沟乡卫生院": "固安县",
    "霸州市第三医院": "霸州市", "煎茶铺镇中心卫生院": "霸州市", "廊坊市第四人民医院": "霸州市",
    "金水区总医院": "金水区", "凤凰台社区卫生服务中心": "金水区", "武汉市中心医院": "江岸区",
    "江岸区劳动街社区卫生服务中心": "江岸区", "沙县区总医院": "沙县区", "沙县区总医院高桥分院": "沙县区",
    "沙县区总医院夏茂分院": "沙县区", "富蕴县妇幼保健院": "富蕴县", "乌鲁木齐市米东区人民医院": "米东区",
    "布尔津县人民医院": "布尔津县",
}

# --------------------------------------------------------------------------- departments

_SPECIALTY = {
    "儿内科": "pediatrics", "新生儿科": "neonatology", "小儿外科": "pediatric_surgery",
    "儿童呼吸科": "pediatric_respiratory", "影像科": "radiology", "检验科": "laboratory",
    "心内科": "cardiology", "神经内科": "neurology", "呼吸内科": "respiratory", "内分泌科": "endocrinology",
    "普外科": "general_surgery", "儿科": "pediatrics", "急诊科": "emergency", "心电图室": "ecg",
    "全科": "general_practice", "预防保健科": "preventive_care", "中医科": "tcm", "儿保科": "child_health",
    "妇产科": "obstetrics_gynecology", "院前急救科": "prehospital_emergency", "心外科": "cardiac_surgery",
    "感染科": "infectious_disease", "肝病科": "hepatology", "康复医学科": "rehabilitation",
    "内科": "internal_medicine", "外科": "surgery",
}
_PEDIATRIC = ["儿内科", "新生儿科", "小儿外科", "儿童呼吸科", "影像科", "检验科"]
_GENERAL = ["心内科", "神经内科", "呼吸内科", "内分泌科", "普外科", "儿科", "急诊科", "影像科", "检验科", "心电图室"]
_GRASSROOTS = ["全科", "预防保健科", "中医科"]
_TECH_DEPTS = {"影像科", "检验科", "心电图室"}


def _departments_for(inst: Institution) -> list[str]:
    kind, name = inst.kind, inst.name
    if kind in (InstitutionKind.community_center, InstitutionKind.township):
        return list(_GRASSROOTS)
    if kind == InstitutionKind.community_station:
        return ["全科", "预防保健科"]
    if kind == InstitutionKind.village:
        return ["全科"]
    if kind == InstitutionKind.emergency:
        return ["院前急救科"]
    if kind == InstitutionKind.general:
        return list(_GENERAL)
    if kind == InstitutionKind.private:
        return ["内科", "外科", "儿科", "检验科"]
    if kind == InstitutionKind.maternal_child or "妇儿保健" in name:
        return ["儿保科", "妇产科"] + (["儿内科", "新生儿科"] if "儿童" in name else [])
    if "康复" in name:
        return ["康复医学科", "全科", "预防保健科"]
    if "妇产" in name:
        return ["妇产科", "新生儿科", "影像科", "检验科"]
    if "儿" in name:
        return list(_PEDIATRIC)
    if "阜外" in name:
        return ["心内科", "心外科", "心电图室", "影像科", "检验科"]
    if "地坛" in name:
        return ["感染科", "肝病科", "影像科", "检验科"]
    return ["内科", "外科", "影像科", "检验科"]


# --------------------------------------------------------------------------- names

_SURNAMES = (
    "王王王李李李张张张刘刘陈陈杨杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶"
    "程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤"
)
def _words(text: str) -> list[str]:
    return text.split()


_GIVEN = {
    ("男", "old"): _words("建国 国强 志强 建华 建军 国庆 德福 振华 文明 立新 学军 海军 永利 长林 庆林 玉林 福生 金山"),
    ("女", "old"): _words("秀英 桂兰 淑珍 玉兰 秀兰 凤英 桂英 淑兰 玉珍 秀珍 素梅 丽华 春梅 桂芳 玉梅 凤兰"),
    ("男", "mid"): _words("勇 军 磊 涛 斌 强 鹏 杰 明 超 刚 辉 志刚 海涛 建平 晓东 文博 俊杰 立伟 永明 国栋 宏伟"),
    ("女", "mid"): _words("丽 静 敏 燕 艳 娟 霞 芳 婷 玲 丽娜 晓燕 海燕 秀梅 雪梅 春燕 晓丽 文静 慧敏 红梅"),
    ("男", "young"): _words("浩然 宇轩 子轩 俊熙 浩宇 一鸣 博文 子墨 宇航 皓轩 梓睿 奕辰 铭泽 思远 天佑 沐阳 嘉豪"),
    ("女", "young"): _words("欣怡 梓涵 一诺 子涵 雨桐 诗涵 可馨 思彤 语嫣 若汐 梦琪 佳怡 雨萱 依诺 沐晴 芷若"),
}


def _generation(birth_year: int) -> str:
    return "old" if birth_year < 1965 else "mid" if birth_year < 2000 else "young"


def _name(r: random.Random, sex: str, birth_year: int, surname: str | None = None) -> str:
    while True:
        name = (surname or r.choice(_SURNAMES)) + r.choice(_GIVEN[(sex, _generation(birth_year))])
        if name != "王伟":  # the two deliberate namesakes stay the only ones
            return name


def _mobile(r: random.Random) -> str:
    prefix = r.choice(["130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155",
                       "158", "159", "176", "177", "180", "182", "185", "186", "187", "189", "199"])
    return prefix + f"{r.randrange(10**8):08d}"


# --------------------------------------------------------------------------- practitioners

def _physician_titles(r: random.Random, grassroots: bool, n: int) -> list[str]:
    if grassroots:
        pool = [Title.associate_chief] + [Title.attending] * 4 + [Title.resident] * 4 + [Title.assistant]
    else:
        pool = [Title.chief] * 3 + [Title.associate_chief] * 5 + [Title.attending] * 7 + [Title.resident] * 5
    return [r.choice(pool) for _ in range(n)]


_YEARS = {  # years of independent practice by title (min, max)
    Title.chief: (18, 32), Title.associate_chief: (10, 20), Title.attending: (5, 12), Title.resident: (0, 6),
    Title.assistant: (2, 20), Title.chief_technician: (18, 30), Title.associate_chief_technician: (10, 20),
    Title.technician_in_charge: (5, 12), Title.technician: (1, 6), Title.chief_nurse: (18, 30),
    Title.associate_chief_nurse: (10, 20), Title.nurse_in_charge: (5, 15), Title.nurse: (1, 8),
    Title.village_doctor: (5, 30),
}


def _licence_date(r: random.Random, title: str) -> date:
    low, high = _YEARS.get(Title(title), (1, 10))
    days = r.randint(int(low * 365.25) + 30, int(high * 365.25) + 300)
    return (ANCHOR - timedelta(days=days)).replace(day=1)


def _licence_no(r: random.Random) -> str:
    return f"1{r.choice('12')}0{r.randint(11, 65)}{r.randrange(10**10):010d}"


class _Workforce:
    """Generated practitioners, indexed by (institution name, department name)."""

    def __init__(self, db: Session, r: random.Random, institutions: dict[str, Institution],
                 departments: dict[tuple[int, str], Department], leads: set[int]) -> None:
        self.db, self.r = db, r
        self.institutions, self.departments, self.leads = institutions, departments, leads
        self.physicians: dict[tuple[str, str], list[Practitioner]] = {}
        self.key: dict[str, Practitioner] = {}

    def _new(self, inst: Institution, dept: Department | None, name: str, sex: str, title: str,
             licence: date, head: bool = False, trainee: bool = False) -> Practitioner:
        p = Practitioner(name=name, sex=sex, title=title, specialty=dept.specialty if dept else None,
                         licence_no=_licence_no(self.r), licence_date=licence, is_department_head=head,
                         is_trainee=trainee, home_institution_id=inst.id, department_id=dept.id if dept else None,
                         phone=_mobile(self.r))
        self.db.add(p)
        return p

    def _random_person(self) -> tuple[str, str]:
        sex = self.r.choice("男女")
        return _name(self.r, sex, self.r.randint(1965, 1998)), sex

    def generate(self) -> None:
        r = self.r
        key_by_dept: dict[tuple[str, str], list[tuple[str, _Staff]]] = {}
        for key, staff in _KEY_STAFF.items():
            key_by_dept.setdefault((staff.institution, staff.department), []).append((key, staff))
        by_inst: dict[int, list[tuple[str, Department]]] = {}
        for (inst_id, dept_name), dept in sorted(self.departments.items(), key=lambda kv: kv[1].id):
            by_inst.setdefault(inst_id, []).append((dept_name, dept))
        for inst in sorted(self.institutions.values(), key=lambda i: i.id):
            grassroots = inst.kind in GRASSROOTS_KINDS
            big = inst.id in self.leads or inst.level == 3
            for dept_name, dept in by_inst.get(inst.id, []):
                keyed = key_by_dept.get((inst.name, dept_name), [])
                physicians: list[Practitioner] = []
                has_head = False
                for key, s in keyed:
                    p = self._new(inst, dept, s.name, s.sex, s.title, s.licence, head=s.head)
                    self.key[key] = p
                    has_head = has_head or s.head
                    if s.title not in _NURSE_TITLES:
                        physicians.append(p)
                if inst.kind == InstitutionKind.village:
                    count = 2
                elif grassroots:
                    count = 3 if dept_name == "全科" else 1
                elif dept_name in _TECH_DEPTS:
                    count = 2 if dept_name != "心电图室" else 1
                else:
                    count = 3 if big else 2
                count = max(count - len(physicians), 0)
                if dept_name == "检验科":
                    pool = [Title.chief_technician, Title.associate_chief_technician, Title.technician_in_charge,
                            Title.technician, Title.technician]
                    titles: list[str] = [r.choice(pool) for _ in range(count)]
                elif inst.kind == InstitutionKind.village:
                    titles = [Title.village_doctor] * count
                else:
                    titles = _physician_titles(r, grassroots, count)
                if titles and not has_head and not grassroots:
                    titles[0] = Title.chief if big else Title.associate_chief
                for i, title in enumerate(titles):
                    name, sex = self._random_person()
                    head = i == 0 and not has_head
                    physicians.append(self._new(inst, dept, name, sex, title, _licence_date(r, title), head=head))
                self.physicians[(inst.name, dept_name)] = physicians
                if dept_name not in _TECH_DEPTS and inst.kind != InstitutionKind.village:
                    nurses = (2 if dept_name == "全科" else 0) if grassroots else 1
                    nurses -= sum(1 for _, s in keyed if s.title in _NURSE_TITLES)
                    for _ in range(max(nurses, 0)):
                        name = _name(r, "女", r.randint(1970, 1998))
                        title = r.choice([Title.nurse, Title.nurse, Title.nurse_in_charge, Title.associate_chief_nurse])
                        self._new(inst, dept, name, "女", title, _licence_date(r, title))
        self.db.flush()

    def pick(self, inst: str, dept: str, index: int = 0) -> Practitioner:
        staff = self.physicians[(inst, dept)]
        return staff[index % len(staff)]


_NURSE_TITLES = {Title.chief_nurse, Title.associate_chief_nurse, Title.nurse_in_charge, Title.nurse}


# Multi-site practice as the articles describe it:
# (home institution, [home departments], site, site department or None = same name, weekday, period, note)
_SITES: tuple[tuple[str, list[str], str, str | None, list[int | None], str, str], ...] = (
    ("武汉市中心医院", ["内分泌科", "心内科", "呼吸内科", "神经内科", "普外科"], "江岸区劳动街社区卫生服务中心", "全科",
     [1, 2, 3, 4, 5], "all", "每周到社区坐诊一天（紧密型医联体）"),
    (COUNTY, ["心内科", "内分泌科", "呼吸内科", "普外科"], TOWNSHIP, "全科", [5], "all",
     "县医院专家医疗队每周五到乡镇卫生院查房、坐诊、授课"),
    ("中日友好医院", ["呼吸内科"], "太阳宫社区卫生服务中心", "全科", [3], "am", "呼吸专家在社区接诊"),
    ("首都医科大学附属北京儿童医院", ["小儿外科", "新生儿科", "儿内科", "儿童呼吸科"], "北京儿童医院保定医院(保定市儿童医院)",
     None, [None], "all", "北京专家派驻保定医院（托管），任科室主任"),
    ("固安县人民医院", ["普外科", "心内科"], "渠沟乡卫生院", "全科", [None], "all", "县医院专家出任渠沟卫生院业务副院长"),
    ("广阳区人民医院", ["心内科"], "解放道办事处社区卫生服务中心", "全科", [4], "am", "专家社区坐诊"),
    ("霸州市第三医院", ["普外科", "急诊科"], "煎茶铺镇中心卫生院", "全科", [None], "all", "医共体派驻医护人员"),
)

# 进修 (further training) of township doctors at their lead hospital: (township, lead, lead department)
_TRAINEES = (
    (TOWNSHIP, COUNTY, "心内科"), (TOWNSHIP, COUNTY, "影像科"),
    ("煎茶铺镇中心卫生院", "霸州市第三医院", "急诊科"), ("煎茶铺镇中心卫生院", "霸州市第三医院", "普外科"),
    ("沙县区总医院高桥分院", "沙县区总医院", "内分泌科"),
)

# --------------------------------------------------------------------------- patients

_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def resident_id_for(region: str, birth: date, order: int) -> str:
    """An 18-digit resident ID (order: 3-digit sequence, odd = male) with its check digit."""
    body = f"{region}{birth:%Y%m%d}{order:03d}"
    total = sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


# region code → (address prefix, streets or villages, rural)
_REGIONS: dict[str, tuple[str, list[str], bool]] = {
    "120103": ("天津市河西区", ["围堤道", "吴家窑大街", "南京路", "友谊路", "解放南路", "大沽南路", "黑牛城道"], False),
    "120104": ("天津市南开区", ["鞍山西道", "南马路", "复康路", "白堤路", "红旗路"], False),
    "120113": ("天津市北辰区", ["北辰道", "京津公路", "龙岩道"], False),
    "120110": ("天津市东丽区", ["津塘公路", "先锋路", "跃进路", "东丽大道", "成林道"], False),
    "131024": ("河北省廊坊市香河县", ["新华大街", "秀水街", "香安路", "运河大街", "交通路"], False),
    "131024-v": ("河北省廊坊市香河县渠口镇", ["渠口村", "东营村", "西营村", "南庄村", "北辛庄村"], True),
    "130602": ("河北省保定市竞秀区", ["东风中路", "朝阳北大街", "七一西路", "复兴中路", "天威西路"], False),
    "110105": ("北京市朝阳区", ["太阳宫中路", "太阳宫北街", "西坝河南路", "曙光西里", "芍药居北里", "夏家园"], False),
    "350427-v": ("福建省三明市沙县区高桥镇", ["高桥村", "上坪村", "新桥村", "官庄村", "上洋村"], True),
}


@dataclass(frozen=True)
class _Plan:
    institution: str
    count: int
    child_share: float
    regions: tuple[str, ...]
    alliance: str


_PLANS = (
    _Plan(COMMUNITY, 79, 0.3, ("120103", "120103", "120103", "120104"), TIANJIN_ALLIANCE),
    _Plan(LEAD, 68, 1.0, ("120103", "120104", "120113", "120110"), TIANJIN_ALLIANCE),
    _Plan(TOWNSHIP, 60, 0.15, ("131024-v",), XIANGHE_ALLIANCE),
    _Plan(COUNTY, 60, 0.2, ("131024", "131024", "131024-v"), XIANGHE_ALLIANCE),
    _Plan(SECONDARY, 29, 0.4, ("120110",), TIANJIN_ALLIANCE),
)  # + the twins (LEAD) and the two 王伟 (COMMUNITY, SECONDARY): 300 patients

TWINS = (  # same birth date, address and guardian phone; different names and IDs
    {"name": "刘浩宇", "resident_id": resident_id_for("120103", date(2019, 4, 17), 35)},
    {"name": "刘浩然", "resident_id": resident_id_for("120103", date(2019, 4, 17), 37)},
)
NAMESAKES = (  # two different people named 王伟, born the same year
    {"name": "王伟", "resident_id": resident_id_for("120103", date(1985, 3, 12), 51)},
    {"name": "王伟", "resident_id": resident_id_for("120110", date(1985, 9, 27), 73)},
)


# Codes valid before a county got its present one (stdnum checks the code against the birth year):
# 香河县 was 132823 under 廊坊地区 until 1988.
_EARLIER_CODES = {"131024": ("132823",)}


def _region_code(code: str, birth: date) -> str:
    for candidate in (code, *_EARLIER_CODES.get(code, ())):
        try:
            validate.resident_id(resident_id_for(candidate, birth, 1))
        except validate.Invalid:
            continue
        return candidate
    raise ValueError(f"no region code for {code} in {birth.year}")


def _address(r: random.Random, region: str) -> str:
    prefix, streets, rural = _REGIONS[region]
    if rural:
        return f"{prefix}{r.choice(streets)}{r.randint(1, 280)}号"
    return (f"{prefix}{r.choice(streets)}{r.randint(1, 400)}号{r.randint(1, 24)}号楼"
            f"{r.randint(1, 4)}门{r.randint(1, 18)}0{r.randint(1, 4)}")


def _birth(r: random.Random, child: bool) -> date:
    if child:
        start, end = date(2012, 1, 1), date(2025, 12, 31)
    else:  # adults, weighted towards the chronically ill elderly of a grassroots practice
        start = date(r.choice([1938, 1945, 1950, 1955, 1960, 1970, 1980]), 1, 1)
        end = date(2007, 12, 31)
    return start + timedelta(days=r.randrange((end - start).days))


class _People:
    def __init__(self, r: random.Random) -> None:
        self.r = r
        self.used = {t["resident_id"] for t in (*TWINS, *NAMESAKES)}

    def resident_id(self, region: str, birth: date, male: bool) -> str:
        while True:
            k = self.r.randint(1, 499)
            order = 2 * k - 1 if male else 2 * k  # odd = male (1..997), even = female (2..998)
            number = resident_id_for(_region_code(region[:6], birth), birth, order)
            if number not in self.used:
                self.used.add(number)
                return number

    def person(self, plan: _Plan) -> dict[str, Any]:
        r = self.r
        child = r.random() < plan.child_share
        region = r.choice(plan.regions)
        birth = _birth(r, child)
        sex = r.choice("男女")
        data: dict[str, Any] = {"sex": sex, "birth_date": birth.isoformat(), "address": _address(r, region)}
        data["resident_id"] = self.resident_id(region, birth, sex == "男")
        if child:
            relation = r.choice(["父亲", "母亲", "母亲", "父亲", "祖母", "外祖母", "祖父"])
            surname = r.choice(_SURNAMES)
            data["name"] = _name(r, sex, birth.year, surname)
            g_sex = "男" if relation in ("父亲", "祖父") else "女"
            g_year = birth.year - (r.randint(24, 38) if relation in ("父亲", "母亲") else r.randint(48, 62))
            g_surname = surname if relation in ("父亲", "祖父") else None
            data.update(guardian_name=_name(r, g_sex, g_year, g_surname), guardian_relation=relation,
                        guardian_phone=_mobile(r))
        else:
            data["name"] = _name(r, sex, birth.year)
            data["phone"] = _mobile(r)
        return data


def _special_people() -> list[tuple[str, dict[str, Any]]]:
    twin_common = {"sex": "男", "birth_date": "2019-04-17", "address": "天津市河西区围堤道88号3号楼1门502",
                   "guardian_name": "刘建华", "guardian_relation": "父亲", "guardian_phone": "13920461735"}
    return [
        (LEAD, {**twin_common, **TWINS[0]}),
        (LEAD, {**twin_common, **TWINS[1]}),
        (COMMUNITY, {**NAMESAKES[0], "sex": "男", "birth_date": "1985-03-12", "phone": "13502218846",
                     "address": "天津市河西区吴家窑大街126号7号楼2门601"}),
        (SECONDARY, {**NAMESAKES[1], "sex": "男", "birth_date": "1985-09-27", "phone": "15822370419",
                     "address": "天津市东丽区先锋路39号4号楼3门202"}),
    ]


# --------------------------------------------------------------------------- loading

@contextmanager
def history_kept_in_app(db: Session, keep: Callable[[Any], bool] = lambda message: False) -> Iterator[None]:
    """Demo history happens "weeks ago": its notifications stay in-app, and the `notify` outbox
    messages queued inside the block are dropped (except those `keep` accepts), so no other
    channel (SMS) sends weeks-old alerts as new."""
    last = db.scalar(select(func.max(OutboxMessage.id))) or 0
    yield
    stale = [m.id for m in db.scalars(select(OutboxMessage).where(OutboxMessage.id > last,
                                                                   OutboxMessage.topic == "notify"))
             if not keep(m)]
    if stale:
        db.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(stale)))


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == MARKER_RESOURCE).limit(1)) is not None


def load_base(db: Session) -> None:
    """The base data set (alliances, departments, staff, sites, accounts, patients) and its marker."""
    r = random.Random(SEED)
    alliances, institutions, leads = _load_alliances(db)
    departments = _load_departments(db, institutions.values())
    workforce = _Workforce(db, r, institutions, departments, leads)
    workforce.generate()
    _load_sites(db, r, workforce, institutions, departments)
    users = _load_accounts(db, workforce, institutions, alliances)
    patients = _load_patients(db, r, users, institutions, alliances)
    audit.record(db, None, MARKER_ACTION, MARKER_RESOURCE, DEMO_VERSION, channel="cli",
                 detail={"alliances": len(alliances), "institutions": len(institutions),
                         "accounts": len(users), "patients": patients})
    db.flush()


def _load_alliances(db: Session) -> tuple[dict[str, Alliance], dict[str, Institution], set[int]]:
    data = alliances_data()
    alliances = {a.key: a for a in db.scalars(select(Alliance))}
    institutions = {i.name: i for i in db.scalars(select(Institution))}
    wanted: list[tuple[Alliance, str, str, dict[str, Any]]] = []  # alliance, institution name, role, entry

    def institution(entry: dict[str, Any]) -> Institution:
        name = str(entry["name"])
        inst = institutions.get(name)
        province = str(entry.get("province") or "北京")
        if inst is None:
            inst = Institution(name=name, kind=str(entry.get("kind") or InstitutionKind.general), province=province)
            db.add(inst)
            institutions[name] = inst
        # the first mention wins; later mentions only fill what is still unknown
        if inst.short_name is None and entry.get("short"):
            inst.short_name = str(entry["short"])
        if inst.level is None and entry.get("level") is not None:
            inst.level = int(entry["level"])
        if inst.city is None:
            inst.city = (str(entry["city"]) if entry.get("city") else None) or (
                province if province in _MUNICIPALITIES else _CITY.get(name))
        if inst.county is None:
            inst.county = _COUNTY.get(name)
        return inst

    for entry in data["alliances"]:
        key = str(entry["key"])
        alliance = alliances.get(key)
        if alliance is None:
            model = AllianceModel(entry["model"])
            alliance = Alliance(
                key=key, name=str(entry["name"]), name_en=entry.get("name_en"), model=model,
                specialty=entry.get("specialty"), tight=bool(entry.get("tight", False)),
                cross_province=bool(entry.get("cross_province", False)),
                founded=None if entry.get("founded") is None else str(entry["founded"]),
                notes=_alliance_notes(entry),
                # a specialty alliance (e.g. a pediatric one of secondary hospitals) shares its reserved
                # pool with every member; the others with their grassroots members only (DOMAIN.md §3)
                reserve_for="members" if entry.get("specialty") else "grassroots",
            )
            db.add(alliance)
            alliances[key] = alliance
        for member in entry.get("institutions") or []:
            wanted.append((alliance, str(member["name"]), MemberRole(member["role"]), member))
            institution(member)
        for lead_name in entry.get("leads") or []:
            inst = institutions.get(lead_name) or institution({"name": lead_name, "province": "北京",
                                                               "kind": InstitutionKind.general})
            wanted.append((alliance, inst.name, MemberRole.lead, {}))
    db.flush()
    have = {(m.alliance_id, m.institution_id, m.role) for m in db.scalars(select(Membership))}
    leads: set[int] = set()
    for alliance, name, role, member in wanted:
        inst = institutions[name]
        if role == MemberRole.lead:
            leads.add(inst.id)
        if (alliance.id, inst.id, role) in have:
            continue
        have.add((alliance.id, inst.id, role))
        db.add(Membership(alliance_id=alliance.id, institution_id=inst.id, role=role,
                          joined_on=_as_date(member.get("joined")), notes=member.get("notes")))
    db.flush()
    return alliances, institutions, leads


def _load_departments(db: Session, institutions: Iterable[Institution]) -> dict[tuple[int, str], Department]:
    existing = {(d.institution_id, d.name): d for d in db.scalars(select(Department))}
    for inst in sorted(institutions, key=lambda i: i.id):
        for name in _departments_for(inst):
            if (inst.id, name) not in existing:
                dept = Department(institution_id=inst.id, name=name, specialty=_SPECIALTY.get(name))
                db.add(dept)
                existing[(inst.id, name)] = dept
    db.flush()
    return existing


def _load_sites(db: Session, r: random.Random, workforce: _Workforce, institutions: dict[str, Institution],
                departments: dict[tuple[int, str], Department]) -> None:
    for home, depts, site_name, site_dept, weekdays, period, note in _SITES:
        site = institutions[site_name]
        for i, dept_name in enumerate(depts):
            if home == COUNTY and dept_name == "心内科":
                doctor = workforce.key["xianghe-doctor"]
            else:
                doctor = workforce.pick(home, dept_name)
            dept = departments.get((site.id, site_dept or dept_name))
            db.add(PracticeSite(practitioner_id=doctor.id, institution_id=site.id,
                                department_id=dept.id if dept else None, weekday=weekdays[i % len(weekdays)],
                                period=period, note=note))
    # the Tianjin Children's Hospital expert holds a weekly clinic at the community centre
    community = institutions[COMMUNITY]
    db.add(PracticeSite(practitioner_id=workforce.key["tj-lead-doctor"].id, institution_id=community.id,
                        department_id=departments[(community.id, "全科")].id, weekday=2, period="am",
                        starts_on=date(2016, 6, 1), note="儿童医院专科专家号在家门口（每周二上午）"))
    for township_name, lead_name, dept_name in _TRAINEES:
        township, lead = institutions[township_name], institutions[lead_name]
        sex = r.choice("男女")
        title = r.choice([Title.resident, Title.attending])
        trainee = Practitioner(
            name=_name(r, sex, r.randint(1985, 1996)), sex=sex, title=title, specialty="general_practice",
            licence_no=_licence_no(r), licence_date=_licence_date(r, title), is_trainee=True,
            home_institution_id=township.id, department_id=departments[(township.id, "全科")].id, phone=_mobile(r))
        db.add(trainee)
        db.flush()
        db.add(PracticeSite(practitioner_id=trainee.id, institution_id=lead.id,
                            department_id=departments[(lead.id, dept_name)].id, weekday=None, period="all",
                            starts_on=date(2026, 9, 1), ends_on=date(2027, 2, 28), note="进修（免费接收乡镇医生进修）"))
    db.flush()


def _load_accounts(db: Session, workforce: _Workforce, institutions: dict[str, Institution],
                   alliances: dict[str, Alliance]) -> dict[str, User]:
    users: dict[str, User] = {}
    existing = {u.username: u for u in db.scalars(select(User).where(
        User.username.in_([a.username for a in _ACCOUNTS])))}
    for spec in _ACCOUNTS:
        if spec.username in existing:
            users[spec.username] = existing[spec.username]
            continue
        inst_id = institutions[spec.institution].id if spec.institution else None
        alliance_id = alliances[spec.alliance].id if spec.alliance else None
        roles: list[tuple[str, int | None, int | None]] = [(str(spec.role), inst_id, alliance_id)]
        roles += [(str(spec.role), institutions[other].id, None) for other in spec.also_at]
        practitioner = workforce.key[spec.staff] if spec.staff else None
        users[spec.username] = auth_service.create_user(
            db, None, spec.username, DEMO_PASSWORD, spec.display_name, roles,
            practitioner_id=practitioner.id if practitioner else None)
    return users


_REGISTRARS = {LEAD: "tj-lead-doctor", COMMUNITY: "tj-community-doctor", SECONDARY: "dongli-doctor",
               COUNTY: "xianghe-doctor", TOWNSHIP: "qukou-doctor"}


def _load_patients(db: Session, r: random.Random, users: dict[str, User], institutions: dict[str, Institution],
                   alliances: dict[str, Alliance]) -> int:
    subjects: dict[str, Subject] = {
        inst: auth_service.build_subject(db, users[username], institutions[inst].id)
        for inst, username in _REGISTRARS.items()
    }
    mrn_seq = dict.fromkeys(_REGISTRARS, 0)
    alliance_of = {p.institution: alliances[p.alliance].id for p in _PLANS}

    def register(inst: str, data: dict[str, Any], consent: bool = True) -> None:
        mrn_seq[inst] += 1
        payload = {**data, "mrn": f"MZ2026{mrn_seq[inst]:06d}"}
        roll = r.random()
        if not consent or roll < 0.15:
            payload["consent_scope"] = "none"
        elif roll < 0.6:
            payload.update(consent_scope="alliance", consent_alliance_id=alliance_of[inst])
        else:
            payload["consent_scope"] = "all"
        rid = validate.resident_id(str(data["resident_id"]))
        assert rid.birth_date.isoformat() == data["birth_date"] and rid.sex == data["sex"], data
        patient_service.register(db, subjects[inst], patient_service.RegistrationIn.model_validate(payload))

    people = _People(r)
    registered: dict[str, list[dict[str, Any]]] = {}
    count = 0
    for plan in _PLANS:
        for _ in range(plan.count):
            data = people.person(plan)
            register(plan.institution, data)
            registered.setdefault(plan.institution, []).append(data)
            count += 1
    for inst, data in _special_people():
        register(inst, data)
        count += 1
    # some are also registered at a second member: children sent up from the community centre to
    # the children's hospital, villagers of 渠口镇 seen at the county hospital (same resident ID → same person)
    for data in [d for d in registered[COMMUNITY] if d.get("guardian_name")][:10]:
        register(LEAD, data, consent=False)
    for data in registered[TOWNSHIP][:15]:
        register(COUNTY, data, consent=False)
    db.flush()
    return count
