"""Paging: the parameters every list route takes (bounded so a database never sees an overflow), the page's body."""
from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

T = TypeVar("T")

# SQLite and PostgreSQL both take a signed 64-bit OFFSET/LIMIT; a larger one is a 400, not a 500.
INT64_MAX = 2**63 - 1

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="At most this many items.")]
OffsetQuery = Annotated[int, Query(ge=0, le=INT64_MAX, description="Skip this many items.")]


def page_example(item: dict, total: int = 1) -> dict:
    return {"items": [item], "total": total}


class Page(BaseModel, Generic[T]):
    items: list[T] = Field(description="This page's items, newest first.")
    total: int = Field(description="How many there are in all (page with limit and offset).")
