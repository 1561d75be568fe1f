"""kit.repository: the one paging helper and get_or_404."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.exceptions import NotFound
from yilianti.kit import repository as kit
from yilianti.models.alliance import Institution


def _stmt(prefix: str):  # type: ignore[no-untyped-def]
    return select(Institution).where(Institution.name.startswith(prefix)).order_by(Institution.name)


def test_page_counts_and_cuts(db: Session) -> None:
    for n in range(7):
        b.institution(db, name=f"分页测试医院{n}")
    db.flush()
    first = kit.page(db, _stmt("分页测试医院"), 1, 3)
    assert [i.name for i in first.items] == ["分页测试医院0", "分页测试医院1", "分页测试医院2"]
    assert (first.total, first.page, first.per_page, first.pages, first.has_next) == (7, 1, 3, 3, True)
    last = kit.page(db, _stmt("分页测试医院"), 3, 3)
    assert [i.name for i in last.items] == ["分页测试医院6"] and not last.has_next
    # out-of-range numbers are clamped, not errors
    assert kit.page(db, _stmt("分页测试医院"), 0, 0).per_page == 1
    assert kit.page(db, _stmt("分页测试医院"), -4, 10_000, max_per_page=5).per_page == 5
    empty = kit.page(db, _stmt("没有这样的医院"), 1, 3)
    assert (empty.items, empty.total, empty.pages, empty.has_next) == ([], 0, 1, False)


def test_page_without_count_peeks_one_row_ahead(db: Session) -> None:
    for n in range(4):
        b.institution(db, name=f"不计数医院{n}")
    db.flush()
    p1 = kit.page(db, _stmt("不计数医院"), 1, 2, count=False)
    assert len(p1.items) == 2 and p1.total is None and p1.has_next
    p2 = kit.page(db, _stmt("不计数医院"), 2, 2, count=False)
    assert len(p2.items) == 2 and not p2.has_next and p2.pages == 2


def test_page_of_rows(db: Session) -> None:
    b.institution(db, name="列分页医院")
    db.flush()
    p = kit.page(db, select(Institution.id, Institution.name).where(Institution.name == "列分页医院"),
                 scalars=False)
    assert p.total == 1 and p.items[0][1] == "列分页医院"


def test_get_or_404(db: Session) -> None:
    inst = b.institution(db, name="存在的医院")
    db.flush()
    assert kit.get_or_404(db, Institution, inst.id) is inst
    assert kit.get(db, Institution, None) is None
    with pytest.raises(NotFound):
        kit.get_or_404(db, Institution, -1)
