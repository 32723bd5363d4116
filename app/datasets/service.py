"""Datasets: an upload becomes a canonical array in the artifact store plus one row, or nothing."""
from __future__ import annotations

from contextlib import ExitStack

import numpy as np
from sqlmodel import Session

from deepclust.app.core.ids import new_id
from deepclust.app.core.pagination import paginate
from deepclust.app.core.settings import Settings
from deepclust.app.core import storage
from deepclust.app.core.storage import ArtifactStore
from deepclust.app.core.tables import Dataset
from deepclust.app.errors import EMPTY_DATA, LABELS_GIVEN_TWICE, MISSING_FILE
from deepclust.app.datasets.ingest.formats import ARCHIVE, IMAGE_OPTIONS, LABEL_COLUMN
from deepclust.app.datasets.ingest.labels import label_codes, read_labels_file
from deepclust.app.datasets.ingest.reading import Reading, detect, read_dataset
from deepclust.app.http.uploads import UploadForm

FILE_FIELDS = ("file", "labels")
TEXT_FIELDS = ("name", LABEL_COLUMN, *IMAGE_OPTIONS)  # which formats take which: ingest/formats.py


def create_dataset(session: Session, store: ArtifactStore, settings: Settings, tenant: str,
                   form: UploadForm) -> Dataset:
    upload = form.files.get("file")
    if upload is None:
        raise MISSING_FILE("The form has no 'file' part; send the data as multipart field 'file'.")
    if upload.size == 0:
        raise EMPTY_DATA("The uploaded file is empty.")
    label_column = form.fields.get("label_column") or None
    labels_file = form.files.get("labels")
    if label_column and labels_file:
        raise LABELS_GIVEN_TWICE("Give labels either as a 'labels' file or as a 'label_column', not both.")
    fmt = detect(upload.filename, upload.path, dataset=True)
    dataset_id = new_id("ds")
    with ExitStack() as stack:
        x_tmp = stack.enter_context(store.staging_file(".npy"))
        reading = Reading(store.staging_file, settings, form.fields, upload.filename, upload.size)
        canon = read_dataset(upload.path, fmt, x_tmp, reading)
        labels, n_classes = canon.labels, canon.n_classes
        if labels_file is not None:
            if labels is not None:
                where = "labels.csv or its folder names" if fmt.kind == ARCHIVE else "'y'"
                raise LABELS_GIVEN_TWICE(f"The upload already holds labels ({where}); drop the "
                                         "'labels' file.")
            labels, n_classes = label_codes(read_labels_file(labels_file.path, labels_file.filename, canon.shape[0]),
                                            canon.shape[0])
        row = Dataset(id=dataset_id, tenant_id=tenant, name=form.fields.get("name") or upload.filename, format=fmt.name,
                      kind=canon.kind, n_samples=canon.shape[0], n_features=int(np.prod(canon.shape[1:])),
                      sample_shape=canon.sample_shape, source_dtype=canon.source_dtype,
                      has_labels=labels is not None, n_classes=n_classes, sha256=upload.sha256,
                      size_bytes=upload.size, data_key=storage.dataset_key(dataset_id, "x.npy"),
                      labels_key=storage.dataset_key(dataset_id, "y.npy") if labels is not None else None)
        # Files first, then the row: a row never points at missing files, and a failed commit
        # takes the files away again.
        store.publish(x_tmp, row.data_key)
        try:
            if labels is not None:
                y_tmp = stack.enter_context(store.staging_file(".npy"))
                np.save(y_tmp, labels)
                store.publish(y_tmp, row.labels_key)
            session.add(row)
            session.commit()
        except BaseException:
            session.rollback()
            store.delete_prefix(storage.dataset_prefix(dataset_id))
            raise
    return row


def list_datasets(session: Session, tenant: str, limit: int, offset: int) -> tuple[list[Dataset], int]:
    return paginate(session, Dataset, Dataset.tenant_id == tenant, limit=limit, offset=offset)
