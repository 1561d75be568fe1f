"""Builders for scheduling tests: an alliance with a lead expert session open for booking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta

from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.authz.subject import Subject
from yilianti.kit import clock
from yilianti.models.alliance import Alliance, Institution
from yilianti.models.scheduling import ClinicSession, Schedule
from yilianti.scheduling import repository as sched_repo
from yilianti.scheduling import schedules
from yilianti.scheduling.schemas import ScheduleIn, TemplateIn


@dataclass
class World:
    alliance: Alliance
    lead: Institution
    second: Institution
    community: Institution
    outsider: Institution
    lead_coord: Subject
    comm_doc: Subject
    comm_doc2: Subject
    second_doc: Subject
    lead_doc: Subject
    out_doc: Subject
    schedule: Schedule
    session: ClinicSession
    day: date


def world(db: Session, capacity: int = 30, days_ahead: int = 3, reserve_for: str = "grassroots",
          tag: str = "") -> World:
    lead = b.institution(db, "首都儿科研究所" + tag, kind="specialty", level=3)
    second = b.institution(db, "朝阳区妇幼保健院" + tag, kind="maternal_child", level=2)
    community = b.institution(db, "太阳宫社区卫生服务中心" + tag, kind="community_center", level=1)
    outsider = b.institution(db, "联盟外社区卫生服务中心" + tag, kind="community_center", level=1)
    alliance = b.alliance(db, (lead, "lead"), (second, "member"), (community, "member"),
                          name="北京朝阳区儿童医联体" + tag)
    alliance.reserve_for = reserve_for
    b.alliance(db, (outsider, "member"), name="另一个医联体" + tag)
    expert = b.practitioner(db, lead, "张儿科", "主任医师")
    s = lambda inst, *roles: b.subject_for(db, b.user(db, inst, *roles))  # noqa: E731
    w_lead_coord = s(lead, "coordinator")
    schedule = schedules.create_schedule(db, w_lead_coord, ScheduleIn(
        institution_id=lead.id, kind="practitioner", name="张儿科 专家门诊", practitioner_id=expert.id,
        specialty="儿童呼吸", location="门诊楼3层 儿科专家诊区", instructions="请携带身份证和既往检查结果，提前30分钟取号",
        reserve_alliance_id=alliance.id))
    day = clock.today_local() + timedelta(days=days_ahead)
    schedules.add_template(db, w_lead_coord, schedule.id, TemplateIn(
        weekday=day.isoweekday(), start_time=time(8, 0), end_time=time(11, 30), capacity=capacity))
    assert schedules.generate_sessions(db, w_lead_coord, schedule.id, day, day) == 1
    session = sched_repo.upcoming_sessions(db, schedule_id=schedule.id, start=day, days=1)[0][0]
    return World(alliance, lead, second, community, outsider, w_lead_coord, s(community, "doctor"),
                 s(community, "doctor"), s(second, "doctor"), s(lead, "doctor"), s(outsider, "doctor"),
                 schedule, session, day)
