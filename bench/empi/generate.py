"""Realistic registration records with known truth for B6 (EMPI batch linkage).

    .venv/bin/python bench/empi/generate.py --persons 50000 --out /tmp/empi  # → records.csv, truth.csv

Each person is registered at 1–4 member institutions with realistic errors (missing or
mistyped ID, homophone names, spaces, traditional characters, full-width digits, +86,
day/month swaps, one-digit date typos, changed phones, shortened addresses), plus hard
negatives: twins (same birth date, address, guardian phone; different names and IDs,
usually no ID at registration), siblings on a guardian's phone, and many people called
王伟/张伟/王芳/李娜 born in the same few years.

Issue 17 added: surnames and given names at realistic frequencies (王 7 %, … rare and compound
surnames; top given names Zipf-like, most two-character given names rare); registrations of a
person who moved (another phone or none, another address, only the county, or none — with an ID
at one member and none at another that leaves only name, sex and birth date in common); IDs with
two adjacent digits swapped or the year's digits misplaced; a given-name character dropped or
added; more homophones (思琪/思齐); birth dates a day off or the year off by one.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
from datetime import date, timedelta

from stdnum.cn import ric

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = [
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰",
    "霞", "平", "刚", "桂英", "建华", "文", "华", "玉兰", "红", "建国", "志强", "子涵", "子轩", "浩然", "一诺", "欣怡", "梓涵",
    "宇轩", "雨桐", "俊杰", "思远", "佳怡", "晨曦", "诗琪", "梦瑶", "博文", "天佑", "嘉怡", "雅婷", "紫萱", "皓轩", "家豪", "明轩",
    "若曦", "思彤", "文博", "雨欣", "梓萱", "宇航", "鑫", "婷", "玲", "斌", "鹏", "辉", "晶", "萍", "凤英", "海燕", "春梅", "国强",
    "建军", "永刚", "晓东", "丹", "宁"
]
# homophones (same toneless pinyin, different characters): registration clerks' usual error
HOMOPHONE = {"伟": "玮", "芳": "方", "娜": "纳", "静": "晶", "丽": "莉", "强": "墙", "磊": "蕾", "军": "君",
             "洋": "阳", "勇": "涌", "杰": "洁", "涛": "韬", "明": "铭", "超": "潮", "霞": "侠", "华": "桦",
             "红": "虹", "文": "雯", "婷": "亭", "玲": "林", "鹏": "朋", "辉": "晖", "萍": "平", "宁": "凝",
             "轩": "萱", "涵": "寒", "怡": "仪", "宇": "雨", "浩": "昊", "欣": "心", "佳": "家", "俊": "峻"}
TRAD = {"张": "張", "陈": "陳", "刘": "劉", "黄": "黃", "赵": "趙", "伟": "偉", "丽": "麗", "强": "強", "军": "軍",
        "国": "國", "华": "華", "东": "東", "杰": "傑", "涛": "濤", "红": "紅", "静": "靜"}
SIMILAR = {"王": "汪", "李": "季", "刘": "浏", "明": "朋", "伟": "佛", "晓": "烧", "玉": "王", "建": "健"}
TWIN_SUFFIX = [("大", "二"), ("一", "二"), ("涵", "轩"), ("欣", "悦"), ("博", "文"), ("明", "亮")]
COMMON = ["王伟", "张伟", "王芳", "李娜", "张敏", "李静", "王静", "刘伟"]
# realistic frequencies (issue 17): surnames by their share of the population (public statistics, per cent;
# the rest of SURNAMES share what is left, rare and compound surnames at the tail)
SURNAME_SHARE = {"王": 7.1, "李": 7.0, "张": 6.7, "刘": 5.4, "陈": 4.6, "杨": 3.1, "黄": 2.2, "赵": 2.0, "吴": 2.0,
                 "周": 1.9, "徐": 1.5, "孙": 1.5, "马": 1.4, "朱": 1.3, "胡": 1.2, "郭": 1.1, "何": 1.1, "高": 1.0,
                 "林": 1.0, "罗": 0.9}
RARE_SURNAMES = ["欧阳", "司马", "诸葛", "上官", "皇甫", "慕容", "令狐", "东方", "宇文", "闻", "宓", "蔺", "綦", "谯",
                 "隗", "郗", "苑", "濮", "甘", "佘"]
# characters of given names; two of them make the many rare given names (most people's given name is not in a
# top list); single-character names are common (伟, 芳, 敏 …)
GIVEN_CHARS = ("子浩宇轩涵梓欣怡思雨嘉俊博文佳明晨一诺雅婷紫萱皓若曦彤航鑫玲斌鹏辉晶萍凤海燕春梅国强建军永刚晓东丹宁"
               "志华玉兰红秀英桂德福祥瑞安康乐天逸飞鸿昊泽睿翔杰涛磊勇超霞丽娟静敏芳伟洋艳琳颖慧琪琦楠柏桐诗韵凯锦")
# more homophones (思琪/思齐 …)
HOMOPHONE_MORE = {"琪": "齐", "琦": "奇", "诗": "师", "梦": "孟", "晨": "辰", "睿": "瑞", "泽": "则", "琳": "霖",
                  "颖": "影", "慧": "惠", "凯": "楷", "鸿": "宏", "逸": "义", "翔": "祥", "彤": "童", "韵": "运"}
# region code → county (codes checked against python-stdnum's table)
COUNTIES = {"131024": "河北省廊坊市香河县", "131022": "河北省廊坊市固安县", "131025": "河北省廊坊市大城县",
            "131026": "河北省廊坊市文安县", "131023": "河北省廊坊市永清县", "131028": "河北省廊坊市大厂回族自治县",
            "131081": "河北省廊坊市霸州市", "131002": "河北省廊坊市安次区", "110105": "北京市朝阳区",
            "110108": "北京市海淀区", "110106": "北京市丰台区", "120104": "天津市南开区"}
TOWNS = ["渠口镇", "淑阳镇", "蒋辛屯镇", "安平镇", "五百户镇", "钱旺乡", "刘宋镇", "钳屯镇"]
SOURCES = ["香河县人民医院", "香河县中医医院", "渠口镇卫生院", "淑阳镇卫生院", "蒋辛屯镇卫生院",
           "北京儿童医院", "北京朝阳医院", "安平镇卫生院"]
_REST = [c for c in SURNAMES if c not in SURNAME_SHARE]
_REST_W = [1 / (k + 8) for k in range(len(_REST))]  # Zipf-like below the top 20
_GIVEN_W = [1 / (k + 5) for k in range(len(GIVEN))]
_OLD_REGION = {"120104": "120104", "110106": "110106", "110108": "110108"}
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def check_digit(body: str) -> str:
    return "10X98765432"[sum(int(c) * w for c, w in zip(body, _W, strict=True)) % 11]


class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.seq = 0
        self.used: set[str] = set()

    def rid(self, region: str, birth: date, male: bool) -> str:
        """A valid, unique resident ID (real IDs are unique: a collision would be a false truth)."""
        if not self._region_ok(region, birth):
            region = _OLD_REGION.get(region, "110105")  # region codes change (廊坊 was 1326xx before 1989)
        for _ in range(500):
            self.seq += 1
            order = (self.seq * 7919 % 499) * 2 + (1 if male else 0)
            body = f"{region}{birth:%Y%m%d}{order:03d}"
            number = body + check_digit(body)
            if number not in self.used:
                self.used.add(number)
                return number
        raise RuntimeError("resident ID sequence exhausted")

    @staticmethod
    def _region_ok(region: str, birth: date) -> bool:
        body = f"{region}{birth:%Y%m%d}001"
        return ric.is_valid(body + check_digit(body))

    def phone(self) -> str:
        return f"1{self.r.choice('3456789')}{self.r.randrange(10**9):09d}"

    def address(self, region: str) -> str:
        r = self.r
        return f"{COUNTIES[region]}{r.choice(TOWNS)}{r.choice('东西南北前后')}{r.choice('街村庄屯')}{r.randrange(1, 300)}号"

    def birth(self, lo: int = 1940, hi: int = 2024) -> date:
        return date(lo, 1, 1) + timedelta(days=self.r.randrange((date(hi, 12, 31) - date(lo, 1, 1)).days))

    def surname(self) -> str:
        r = self.r
        x = r.random() * 100
        for sn, share in SURNAME_SHARE.items():
            x -= share
            if x < 0:
                return sn
        if x < 2.0:
            return r.choice(RARE_SURNAMES)
        return r.choices(_REST, _REST_W)[0]

    def given(self) -> str:
        r = self.r
        x = r.random()
        if x < 0.35:  # a top given name (GIVEN in rank order), Zipf-like
            return r.choices(GIVEN, _GIVEN_W)[0]
        if x < 0.45:
            return r.choice(GIVEN_CHARS)
        return r.choice(GIVEN_CHARS) + r.choice(GIVEN_CHARS)

    def person(self, **kw: object) -> dict:  # type: ignore[type-arg]
        r = self.r
        region = kw.get("region") or r.choice(list(COUNTIES))
        birth = kw.get("birth") or self.birth()
        male = kw.get("male", r.random() < 0.5)
        name = kw.get("name") or (self.surname() + self.given())
        return {"name": name, "birth": birth, "male": male, "region": region,
                "rid": self.rid(str(region), birth, bool(male)),  # type: ignore[arg-type]
                "phone": kw.get("phone") or self.phone(), "address": kw.get("address") or self.address(str(region))}

    # ---- errors -------------------------------------------------------------------------
    def record(self, p: dict, source: str) -> dict:  # type: ignore[type-arg]
        r = self.r
        child = p["birth"].year >= 2010
        name = p["name"]
        x = r.random()
        if x < 0.06:
            name = name[0] + "".join(HOMOPHONE.get(c, HOMOPHONE_MORE.get(c, c)) for c in name[1:])
        elif x < 0.09:
            name = "".join(TRAD.get(c, c) for c in name)
        elif x < 0.13:
            name = " ".join(name) if r.random() < 0.5 else name[0] + " " + name[1:]
        elif x < 0.145:
            name = "".join(SIMILAR.get(c, c) for c in name)  # a non-homophone typo: review at best
        elif x < 0.165 and len(name) >= 3:
            k = r.randrange(1 if len(name) == 3 else 2, len(name))
            name = name[:k] + name[k + 1:]  # a given-name character dropped (王思琪 → 王思)
        elif x < 0.175:
            name = name + r.choice(GIVEN_CHARS) if len(name) <= 3 else name  # one added
        birth = p["birth"].strftime("%Y-%m-%d")
        x = r.random()
        if x < 0.03 and p["birth"].day <= 12 and p["birth"].day != p["birth"].month:
            birth = f"{p['birth'].year}-{p['birth'].day:02d}-{p['birth'].month:02d}"
        elif x < 0.06:
            digits = list(birth)
            k = r.choice([3, 6, 9])
            digits[k] = str((int(digits[k]) + 1) % 10)
            birth = "".join(digits)
        elif x < 0.08:
            birth = ""
        elif x < 0.10:
            birth = p["birth"].strftime(r.choice(["%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日"]))
        elif x < 0.105:
            birth = f"{p['birth'].year}-02-30"
        elif x < 0.12:  # a day off (midnight births, a clerk's off-by-one)
            birth = (p["birth"] + timedelta(days=r.choice([-1, 1]))).strftime("%Y-%m-%d")
        elif x < 0.13 and not (p["birth"].month == 2 and p["birth"].day == 29):  # the year off by one
            birth = p["birth"].replace(year=p["birth"].year + r.choice([-1, 1])).strftime("%Y-%m-%d")
        sex = "男" if p["male"] else "女"
        x = r.random()
        if x < 0.03:
            sex = ""
        elif x < 0.04:
            sex = r.choice(["未知", "M", "1"])
        rid = p["rid"] if r.random() > (0.55 if child else 0.25) else ""
        x = r.random()
        if rid and x < 0.03:
            k = r.randrange(17)
            rid = rid[:k] + str((int(rid[k]) + 1) % 10) + rid[k + 1:]  # fails the check digit
        elif rid and x < 0.035:
            k = r.randrange(16)  # two adjacent digits swapped (fails the check unless they were equal)
            rid = rid[:k] + rid[k + 1] + rid[k] + rid[k + 2:]
        elif rid and x < 0.04:
            rid = rid[:8] + rid[9] + rid[8] + rid[10:]  # the year's last two digits misplaced (1986 → 1968)
        elif rid and x < 0.06:
            rid = rid.lower()
        elif rid and x < 0.08:
            rid = rid[:6] + rid[8:17] if p["birth"].year < 2000 else rid  # legacy 15-digit
        phone = p["phone"]
        moved = r.random() < 0.12  # registered elsewhere in life: another phone, another or no address
        x = r.random()
        if x < 0.15:
            phone = self.phone()
        elif x < 0.25:
            phone = ""
        elif x < 0.30:
            phone = "+86" + phone
        elif x < 0.33:
            phone = "0086 " + phone
        address = p["address"]
        x = r.random()
        if x < 0.25:
            address = address.replace(COUNTIES[p["region"]], COUNTIES[p["region"]][3:])
        elif x < 0.35:
            address = ""
        elif x < 0.45:
            address = self.address(p["region"])
        if moved:
            phone = r.choice([self.phone(), self.phone(), ""])  # changed number, a guardian's, none
            address = r.choice([self.address(r.choice(list(COUNTIES))), COUNTIES[p["region"]], ""])
        if r.random() < 0.05:
            trans = str.maketrans("0123456789", "０１２３４５６７８９")
            rid, phone, birth = rid.translate(trans), phone.translate(trans), birth.translate(trans)
        return {"source": source, "name": name, "sex": sex, "birth_date": birth, "id_number": rid,
                "phone": phone, "address": address}

    def persons(self, n: int) -> list[dict]:  # type: ignore[type-arg]
        r = self.r
        out: list[dict] = []  # type: ignore[type-arg]
        while len(out) < n:
            x = r.random()
            if x < 0.03:  # twins
                p = self.person(birth=self.birth(2005, 2024))
                a, b = r.choice(TWIN_SUFFIX)
                base = p["name"][:2] if len(p["name"]) > 2 else p["name"][:1] + r.choice("子小梓")
                p["name"] = base + a
                out.append(p)
                out.append(self.person(name=base + b, birth=p["birth"], region=p["region"],
                                       phone=p["phone"], address=p["address"], male=r.random() < 0.5))
            elif x < 0.06:  # siblings on a guardian's phone
                p = self.person(birth=self.birth(2008, 2024))
                out.append(p)
                sib_birth = p["birth"] + timedelta(days=r.randrange(400, 3000))
                if sib_birth > date(2024, 12, 31):
                    sib_birth = p["birth"] - timedelta(days=r.randrange(400, 3000))
                out.append(self.person(name=p["name"][0] + r.choice(GIVEN), birth=sib_birth,
                                       region=p["region"], phone=p["phone"], address=p["address"]))
            elif x < 0.10:  # the thousands of 王伟 born in the same years
                out.append(self.person(name=r.choice(COMMON), birth=self.birth(1985, 1988)))
            else:
                out.append(self.person())
        return out[:n]


def generate(n_persons: int, out_dir: str, seed: int = 6) -> tuple[str, str, int]:
    g = Gen(seed)
    persons = g.persons(n_persons)
    rows: list[tuple[str, int, dict]] = []  # type: ignore[type-arg]
    for pi, p in enumerate(persons):
        k = g.r.choices([1, 2, 3, 4], weights=[40, 35, 17, 8])[0]
        for src in g.r.sample(SOURCES, k):
            rows.append(("", pi, g.record(p, src)))
    g.r.shuffle(rows)
    os.makedirs(out_dir, exist_ok=True)
    rec_path, truth_path = os.path.join(out_dir, "records.csv"), os.path.join(out_dir, "truth.csv")
    with open(rec_path, "w", encoding="utf-8-sig", newline="") as fr, \
            open(truth_path, "w", encoding="utf-8", newline="") as ft:
        wr, wt = csv.writer(fr), csv.writer(ft)
        wr.writerow(["record_id", "source", "name", "sex", "birth_date", "id_number", "phone", "address"])
        wt.writerow(["record_id", "person"])
        for k, (_, pi, rec) in enumerate(rows):
            rid = f"R{k + 1:08d}"
            wr.writerow([rid, rec["source"], rec["name"], rec["sex"], rec["birth_date"], rec["id_number"],
                         rec["phone"], rec["address"]])
            wt.writerow([rid, pi])
    return rec_path, truth_path, len(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=10_000)
    ap.add_argument("--out", default="/tmp/empi")
    ap.add_argument("--seed", type=int, default=6)
    a = ap.parse_args()
    rec, truth, n = generate(a.persons, a.out, a.seed)
    print(f"{n} records of {a.persons} persons → {rec} (truth {truth})")
