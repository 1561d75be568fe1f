"""A glucose meter's CSV is uploaded: each row is checked on its own (per-row errors with the row number), good
readings are stored once, and a high glucose raises an alarm that the doctor acknowledges and turns into an
urgent up-referral whose form arrives prefilled (issue 20's Done-when)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from urllib.parse import parse_qs, urlparse

from sqlalchemy import func, select

from tests import builders as b
from tests.chronic.test_chronic import _at
from yilianti.chronic import service
from yilianti.kit import clock
from yilianti.models.chronic import ChronicAlarm, ChronicReading

D = date(2026, 3, 2)


def test_a_glucose_meter_upload_raises_an_alarm_the_doctor_turns_into_a_referral(db, client) -> None:  # type: ignore[no-untyped-def]
    centre = b.institution(db, "沙县区总医院高桥分院", kind="community", level=1)
    other = b.institution(db, "三明市第一医院", level=3)
    doctor = b.user(db, centre, "doctor", username="gqdoctor")
    db.flush()
    sub = b.subject_for(db, doctor)
    elsewhere = b.subject_for(db, b.user(db, other, "doctor", username="smdoctor"))
    with clock.frozen(_at(D)):
        rid = b.resident_id(date(1960, 5, 1), region="350427")
        wang = b.patient(db, sub, "王辉煌", birth=date(1960, 5, 1), resident_id=rid)
        li_rid = b.resident_id(date(1955, 8, 9), region="350427", male=False)
        b.patient(db, sub, "李秀英", birth=date(1955, 8, 9), resident_id=li_rid)  # here, not under chronic care
        stranger_rid = b.resident_id(date(1958, 1, 1), region="350403")
        b.patient(db, elsewhere, "赵大海", birth=date(1958, 1, 1), resident_id=stranger_rid)
        team = service.create_team(db, sub, "高桥家庭医生一队", "高桥村", [(doctor.id, "gp")])
        service.enrol(db, sub, wang.id, "diabetes_t2", team_id=team.id)
    day = D + timedelta(days=3)
    rows = ["身份证号,测量时间,收缩压,舒张压,血糖,设备",
            f"{rid},2026-03-05 07:10,,,17.8,鱼跃 GM-550",  # 2: high glucose → alarm
            f"{rid},2026-03-05 07:30,142,88,,鱼跃 YE-680",  # 3: BP, stored
            f"{rid.lower()},2026-03-05 07:10,,,17.8,鱼跃 GM-550",  # 4: the same reading again (lower-case x)
            "110105199001011234,2026-03-05 08:00,,,6.0,",  # 5: nobody here
            f"{stranger_rid},2026-03-05 08:00,,,6.0,",  # 6: another institution's patient
            f"{rid},2026-13-05 08:00,,,6.0,",  # 7: bad time
            f"{rid},2026-03-05 08:10,150,,,",  # 8: BP half
            f"{rid},2026-03-05 08:20,,,abc,",  # 9: not a number
            f"{rid},2026-03-05 08:30,,,,",  # 10: nothing measured
            f"{rid},2026-03-09 08:30,,,6.1,",  # 11: in the future
            f"{li_rid},2026-03-05 09:00,135,85,,"]  # 12: known here, but not under chronic care
    with clock.frozen(_at(day)):
        csrf = b.login(client, "gqdoctor")
        r = client.post("/chronic/readings", data={"csrf_token": csrf},
                        files={"file": ("glucose.csv", "\n".join(rows).encode("gb18030"), "text/csv")})
        assert r.status_code == 200, r.text
        assert re.search(r"已导入 2 条，重复 1 条，产生预警 1 条，错误 8 行", r.text)
        errors = dict(re.findall(r'<td data-label="行号">(\d+)</td><td data-label="问题">(.*?)</td>', r.text))
        assert errors == {"5": "未找到该居民，或您无权查看", "6": "未找到该居民，或您无权查看",
                          "7": "测量时间应为 YYYY-MM-DD HH:MM，且不晚于现在",
                          "8": "血压须同时填写收缩压和舒张压，且舒张压低于收缩压", "9": "血糖：请填写数字",
                          "10": "没有测量值", "11": "测量时间应为 YYYY-MM-DD HH:MM，且不晚于现在",
                          "12": "该居民不在本机构的慢病管理中"}
        assert db.scalar(select(func.count()).select_from(ChronicReading)) == 2
        again = client.post("/chronic/readings", data={"csrf_token": csrf},
                            files={"file": ("glucose.csv", "\n".join(rows[:3]).encode("utf-8-sig"), "text/csv")})
        assert re.search(r"已导入 0 条，重复 2 条", again.text)
        bad = client.post("/chronic/readings", data={"csrf_token": csrf},
                          files={"file": ("x.csv", "姓名,血糖\n王辉煌,6".encode(), "text/csv")})
        assert bad.status_code == 422 and "第一行须包含列" in bad.text
        # the alarm: on the list, acknowledged into the prefilled urgent up-referral
        alarm = db.scalar(select(ChronicAlarm).where(ChronicAlarm.source == "device"))
        assert (alarm.kind, alarm.value_text) == ("glucose_high", "鱼跃 GM-550 血糖 17.8 mmol/L")
        page = client.get("/chronic/alarms?status=open").text
        assert "家用设备" in page and "鱼跃 GM-550 血糖 17.8 mmol/L" in page
        r = client.post(f"/chronic/alarms/{alarm.id}/acknowledge", data={"csrf_token": csrf, "refer": "1"},
                        follow_redirects=False)
        prefill = parse_qs(urlparse(r.headers["location"]).query)
        assert prefill["priority"] == ["urgent"] and "血糖 17.8 mmol/L" in prefill["reason"][0]
        assert "2026-03-05 07:10 鱼跃 GM-550 血糖 17.8 mmol/L" in prefill["key_results"][0]
        listed = client.get("/chronic/readings?status=bp").text
        assert "142/88 mmHg" in listed and "17.8 mmol/L" not in listed
