"""Rows a tenant may see: anything else answers 404, exactly like an id that does not exist."""
from __future__ import annotations

from typing import TypeVar

from sqlmodel import Session

from deepclust.app.core.tables import Dataset, Encoder, Job, Prediction, TrainedModel
from deepclust.app.errors import not_found

Row = TypeVar("Row", Dataset, Encoder, Job, Prediction, TrainedModel)
_KINDS = {Dataset: "dataset", Encoder: "encoder", Job: "job", Prediction: "prediction", TrainedModel: "model"}


def owned(session: Session, table: type[Row], id_: str, tenant: str) -> Row:
    row = session.get(table, id_)
    if row is None or row.tenant_id != tenant:
        raise not_found(_KINDS[table], id_)
    return row
