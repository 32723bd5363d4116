"""One way to page through a tenant's rows: newest first, a stable tie-break on the id."""
from __future__ import annotations

from typing import TypeVar

from sqlmodel import Session, SQLModel, func, select

Row = TypeVar("Row", bound=SQLModel)


def paginate(session: Session, table: type[Row], *where, limit: int, offset: int,
             options: tuple = ()) -> tuple[list[Row], int]:
    """The rows of ``table`` matching ``where`` (newest first), ``offset``/``limit``, and their total;
    ``options`` are loader options (e.g. ``defer`` a large column)."""
    rows = session.exec(select(table).options(*options).where(*where).order_by(table.created_at.desc(), table.id)
                        .offset(offset).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(table).where(*where)).one()
    return list(rows), total
