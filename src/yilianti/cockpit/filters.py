"""The cockpit's filters as they come in a URL: the period (months YYYY-MM, the last 12 by default) and the
member and department (only a member of the alliance, only a department of that member — anything else filters
nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from yilianti.alliance.repository import current_memberships, departments_of, institution_names
from yilianti.exceptions import InvalidInput
from yilianti.kit import clock
from yilianti.models.alliance import Alliance
from yilianti.web.forms import opt_int


def month_start(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value + "-01") if value else None
    except ValueError:
        return None


def period(start: str, end: str) -> tuple[date, date]:
    """From the first day of the start month to the last day of the end month (default: the last 12 months)."""
    today = clock.today_local()
    e = month_start(end) or today.replace(day=1)
    s = month_start(start) or date(e.year - 1, e.month, 1)
    if s > e:
        raise InvalidInput(fields={"start": "开始月份不能晚于结束月份"})
    nxt = date(e.year + (e.month == 12), e.month % 12 + 1, 1)
    return s, date.fromordinal(nxt.toordinal() - 1)


@dataclass(frozen=True)
class Focus:
    """The member and department filters: only a member of the alliance, only a department of that member."""

    members: dict[int, str]
    member: int | None
    departments: dict[int, str]
    department: int | None

    def query(self) -> str:
        return "".join(f"&{k}={v}" for k, v in (("member", self.member), ("department", self.department)) if v)


def focus_of(db: Any, alliance: Alliance | None, member: str, department: str) -> Focus:
    if alliance is None:
        return Focus({}, None, {}, None)
    ids = {m.institution_id for m in current_memberships(db, alliance.id, clock.today_local())}
    names = institution_names(db, ids)
    members = dict(sorted(names.items(), key=lambda kv: kv[1]))
    chosen = opt_int(member) if opt_int(member) in members else None
    departments = {d.id: d.name for d in departments_of(db, chosen)} if chosen else {}
    dep = opt_int(department) if opt_int(department) in departments else None
    return Focus(members, chosen, departments, dep)
