"""The paging parameters every list route takes, bounded so a database never sees an overflow."""
from __future__ import annotations

from typing import Annotated

from fastapi import Query

# SQLite and PostgreSQL both take a signed 64-bit OFFSET/LIMIT; a larger one is a 400, not a 500.
INT64_MAX = 2**63 - 1

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="At most this many items.")]
OffsetQuery = Annotated[int, Query(ge=0, le=INT64_MAX, description="Skip this many items.")]
