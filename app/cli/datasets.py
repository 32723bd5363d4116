"""`deepclust datasets upload | list | show | delete`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from deepclust.app.datasets.ingest import formats
from deepclust.app.cli.common import (
    API_DEFAULT,
    Api,
    AsJson,
    Key,
    Yes,
    connect,
    emit,
    err,
    fields,
    reports_errors,
    table,
)

app = typer.Typer(help="Upload, list, show and delete datasets.", no_args_is_help=True)

COLUMNS = ("id", "name", "format", "n_samples", ("shape", lambda d: "×".join(map(str, d["sample_shape"]))),
           ("classes", lambda d: d["n_classes"]), "created_at")


@app.command("upload")
@reports_errors
def upload(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=f"{formats.DATA_SUFFIXES}, or an image archive ({', '.join(formats.ARCHIVE_SUFFIXES)})")],
           name: Annotated[Optional[str], typer.Option(help="A name (default: the file's).")] = None,
           labels: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False,
                                                          help="Labels file (.npy or one per line), "
                                                               "used only for metrics.")] = None,
           label_column: Annotated[Optional[str], typer.Option(help=f"A {'/'.join(formats.LABEL_COLUMN_FORMATS)} column "
                                                                    "holding labels (header name or 0-based index).")] = None,
           image_size: Annotated[Optional[str], typer.Option(help="Archives: H,W to resize images to.")] = None,
           color: Annotated[Optional[str], typer.Option(help="Archives: grayscale or rgb.")] = None,
           api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Upload a dataset file (checked and stored once as float32)."""
    with connect(api, key) as client:
        dataset = client.upload_dataset(file, labels=labels, name=name, label_column=label_column,
                                        image_size=image_size, color=color)
    emit(dataset, as_json, lambda: fields(dataset))


@app.command("list")
@reports_errors
def list_(limit: int = 50, offset: int = 0, api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """List your datasets, newest first."""
    with connect(api, key) as client:
        items = client.datasets(limit, offset)
    emit(items, as_json, lambda: table(items, COLUMNS, drop=("created_at", "format", "classes")))


@app.command("show")
@reports_errors
def show(dataset_id: str, api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Show one dataset."""
    with connect(api, key) as client:
        dataset = client.dataset(dataset_id)
    emit(dataset, as_json, lambda: fields(dataset))


@app.command("delete")
@reports_errors
def delete(dataset_id: str, yes: Yes = False, api: Api = API_DEFAULT, key: Key = None) -> None:
    """Delete a dataset with its finished jobs and their models (refused while one of its jobs runs)."""
    if not yes:
        typer.confirm(f"Delete dataset {dataset_id} with its finished jobs and their models?", abort=True,
                      err=True)
    with connect(api, key) as client:
        client.delete_dataset(dataset_id)
    err.print(f"deleted dataset {dataset_id}")
