"""`deepclust encoders upload | list | delete`: pretrained image encoders (ONNX) for jobs on images."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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

app = typer.Typer(help="Pretrained image encoders (ONNX): upload, list, delete. A job on an image dataset "
                       "names one with `deepclust jobs start --encoder`.", no_args_is_help=True)

COLUMNS = ("id", "name", ("input", lambda e: "×".join(map(str, e["input_shape"]))), ("D", lambda e: e["output_dim"]),
           ("bytes", lambda e: e["size_bytes"]), "created_at")


@app.command("upload")
@reports_errors
def upload(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The ONNX model: one input "
                                                "N×C×H×W float32, one output N×D, every tensor inside the file.")],
           input_size: Annotated[str, typer.Option(metavar="H,W", help="The size it takes, e.g. 224,224.")],
           color: Annotated[str, typer.Option(metavar="rgb|grayscale", help="rgb (C=3) or grayscale (C=1).")],
           mean: Annotated[Optional[str], typer.Option(metavar="M1,M2,M3", help="Per channel, after scaling "
                                                       "pixels to [0,1], e.g. 0.485,0.456,0.406.")] = None,
           std: Annotated[Optional[str], typer.Option(metavar="S1,S2,S3", help="Per channel, e.g. "
                                                      "0.229,0.224,0.225.")] = None,
           name: Annotated[Optional[str], typer.Option(help="A name (default: the file's name).")] = None,
           input_name: Annotated[Optional[str], typer.Option(help="The input to feed, if named.")] = None,
           output_name: Annotated[Optional[str], typer.Option(help="The N×D output (when it has several).")] = None,
           api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Upload an ONNX image encoder; it is checked on a probe batch before it is stored."""
    with connect(api, key) as client:
        encoder = client.upload_encoder(file, input_size, color, name=name, mean=mean, std=std,
                                        input_name=input_name, output_name=output_name)
    emit(encoder, as_json, lambda: fields(encoder))


@app.command("list")
@reports_errors
def list_(limit: int = 50, offset: int = 0, api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """List your encoders, newest first."""
    with connect(api, key) as client:
        items = client.list_encoders(limit, offset)
    emit(items, as_json, lambda: table(items, COLUMNS, drop=("created_at", "bytes")))


@app.command("delete")
@reports_errors
def delete(encoder_id: str, yes: Yes = False, api: Api = API_DEFAULT, key: Key = None) -> None:
    """Delete an encoder and the embeddings made with it (refused while a job using it runs)."""
    if not yes:
        typer.confirm(f"Delete encoder {encoder_id}?", abort=True, err=True)
    with connect(api, key) as client:
        client.delete_encoder(encoder_id)
    err.print(f"deleted encoder {encoder_id}")
