"""Which pools a site may use is one clause (scheduling.rules.may_use_reserve): `book` (through pools_for)
and the booking statement (fastpath.BOOK, compiled) run it. Checked here against the rule as DOMAIN.md §3
states it, on a matrix of kinds × roles × settings × membership dates — on PostgreSQL also as compiled text."""

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.kit import clock
from yilianti.kit.sqlcompile import Params, sql
from yilianti.models.alliance import GRASSROOTS_KINDS, Alliance, Membership
from yilianti.scheduling import rules

_P = Params(inst="bigint", alliance="bigint", site="bigint", today="date")
COMPILED = sql(select(rules.may_use_reserve(_P.inst, _P.alliance, _P.site, _P.today)))


def _compiled(db: Session, inst: int, alliance: int, site: int) -> bool:
    text = re.sub(r"\$(\d+)", r"%(p\1)s", COMPILED.replace("%", "%%"))
    values = _P.args(inst=inst, alliance=alliance, site=site, today=clock.today_local())
    return bool(db.connection().exec_driver_sql(text, {f"p{i}": v for i, v in enumerate(values, start=1)}).scalar())


def test_reserve_eligibility_matrix(db: Session) -> None:
    today = clock.today_local()
    site = b.institution(db, "牵头医院")
    dates = {"current": (date(2020, 1, 1), None), "left": (date(2020, 1, 1), today),
             "future": (today + timedelta(days=1), None), "open": (None, None)}
    postgres = db.get_bind().dialect.name == "postgresql"
    for kind, role, reserve_for, when in itertools.product(("general", "community_center", "village"),
                                                           ("lead", "member", "platform"), ("grassroots", "members"),
                                                           dates):
        alliance = b.alliance(db, (site, "lead"))
        db.get(Alliance, alliance.id).reserve_for = reserve_for  # type: ignore[union-attr]
        inst = b.institution(db, kind=kind, level=1)
        joined, left = dates[when]
        db.add(Membership(alliance_id=alliance.id, institution_id=inst.id, role=role, joined_on=joined, left_on=left))
        db.flush()
        expected = (when in ("current", "open") and role != "lead"
                    and (reserve_for == "members" or kind in GRASSROOTS_KINDS))
        case = (kind, role, reserve_for, when)
        assert rules._may_use_reserve(db, inst.id, alliance.id, site.id) is expected, case
        assert rules._may_use_reserve(db, site.id, alliance.id, site.id) is False  # the site's own reserve
        if postgres:
            assert _compiled(db, inst.id, alliance.id, site.id) is expected, case
