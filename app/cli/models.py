"""`deepclust models list | show | download | import | delete`, `deepclust predict` (`--async`: a batch
prediction, app/cli/predictions.py) and `deepclust methods`."""
from __future__ import annotations

import io
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from deepclust.app.datasets.ingest import formats
from deepclust.app.cli import predictions
from deepclust.app.cli.common import (
    API_DEFAULT,
    Api,
    AsJson,
    Key,
    Yes,
    cell,
    connect,
    emit,
    err,
    fields,
    out,
    reports_errors,
    table,
)

app = typer.Typer(help="Trained models: list, show, download (zip or ONNX), import, delete.", no_args_is_help=True)

COLUMNS = ("id", "method", ("K", lambda m: m["n_clusters"]),
           ("shape", lambda m: "×".join(map(str, m["sample_shape"]))), "job_id", "dataset_id", "created_at")


@app.command("list")
@reports_errors
def list_(limit: int = 50, offset: int = 0, api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """List your models, newest first."""
    with connect(api, key) as client:
        items = client.models(limit, offset)
    emit(items, as_json, lambda: table(items, COLUMNS, drop=("created_at", "dataset_id", "job_id")))


@app.command("show")
@reports_errors
def show(model_id: str, api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Show one model: method, params, input shape, metrics, source job."""
    with connect(api, key) as client:
        model = client.model(model_id)
    emit(model, as_json, lambda: fields(model))


class ModelFormat(str, Enum):
    zip = "zip"
    onnx = "onnx"


@app.command("download")
@reports_errors
def download(model_id: str,
             output: Annotated[Optional[Path], typer.Option("--output", "-o", dir_okay=False,
                                                            help="Where to write (default: MODEL_ID.zip/.onnx).")] = None,
             format: Annotated[ModelFormat, typer.Option(help="zip: model.safetensors + manifest.json, for "
                                                              "DeepClusterer.load once unzipped; onnx: the "
                                                              "inference path, preprocessing included.")] = ModelFormat.zip,
             api: Api = API_DEFAULT, key: Key = None) -> None:
    """Download a model."""
    path = output or Path(f"{model_id}.{format.value}")
    with connect(api, key) as client:
        client.download_model(model_id, path, format.value)
    err.print(f"wrote model {model_id} to {path}")


@app.command("import")
@reports_errors
def import_(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                                 help="A zip of model.safetensors + manifest.json.")],
            api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Import a model trained elsewhere with the library (or downloaded from another server)."""
    with connect(api, key) as client:
        model = client.import_model(file)
    emit(model, as_json, lambda: fields(model))


@app.command("delete")
@reports_errors
def delete(model_id: str, yes: Yes = False, api: Api = API_DEFAULT, key: Key = None) -> None:
    """Delete a model."""
    if not yes:
        typer.confirm(f"Delete model {model_id}?", abort=True, err=True)
    with connect(api, key) as client:
        client.delete_model(model_id)
    err.print(f"deleted model {model_id}")


@reports_errors
def predict(model_id: Annotated[str, typer.Argument(help="A model (deepclust models list, or a job's model_id).")],
            file: Annotated[Path, typer.Argument(dir_okay=False,
                                                 help=f"Rows in any dataset format ({formats.DATA_SUFFIXES}), an "
                                                      "image archive or one image, shaped like the training samples; "
                                                      "with --async also a stored dataset's id.")],
            label_column: Annotated[Optional[str], typer.Option(help=f"A {'/'.join(formats.LABEL_COLUMN_FORMATS)} column to drop, "
                                                                     "e.g. the training file's labels.")] = None,
            output: Annotated[Optional[Path], typer.Option("--output", "-o", dir_okay=False,
                                                           help="Write index,label,confidence as .csv "
                                                                "(or labels as .npy).")] = None,
            run_async: Annotated[bool, typer.Option("--async", help="Predict in the server's workers, for data of "
                                                                    "any size: FILE is uploaded as a dataset (or "
                                                                    "is a dataset id), a batch prediction starts "
                                                                    "on it and its id is printed "
                                                                    "(deepclust predictions ...).")] = False,
            wait: Annotated[bool, typer.Option("--wait", "-w", help="With --async: follow it with a progress bar "
                                                                    "until it ends (Ctrl-C offers to cancel "
                                                                    "it).")] = False,
            api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """The cluster of each row of FILE, with its confidence (--async: a batch prediction in the workers)."""
    if run_async:
        if output is not None:
            raise typer.BadParameter("--output is for a prediction answered at once; with --async fetch the labels "
                                     "with: deepclust predictions labels PREDICTION_ID -o FILE", param_hint="--output")
        with connect(api, key) as client:
            predictions.start(client, model_id, str(file), label_column, wait, as_json)
        return
    if wait:
        raise typer.BadParameter("--wait follows a batch prediction: add --async", param_hint="--wait")
    if not file.is_file():
        raise typer.BadParameter(f"File '{file}' does not exist.", param_hint="'FILE'")
    with connect(api, key) as client:
        result = client._predict(model_id, file, label_column, embeddings=False)
    labels, probabilities = np.asarray(result["labels"]), np.asarray(result["probabilities"])
    confidence = probabilities.max(1)
    if output is not None:
        if output.suffix.lower() == ".npy":
            buffer = io.BytesIO()
            np.save(buffer, labels.astype(np.int64))
            output.write_bytes(buffer.getvalue())
        else:
            output.write_text("index,label,confidence\n" + "".join(
                f"{i},{label},{conf:.6g}\n" for i, (label, conf) in enumerate(zip(labels, confidence))))
        err.print(f"wrote {len(labels)} predictions to {output}")
        return
    rows = [{"index": i, "label": int(label), "confidence": float(c)} for i, (label, c) in enumerate(zip(labels, confidence))]
    emit(result, as_json, lambda: table(rows, ("index", "label", "confidence")))


@reports_errors
def methods(name: Annotated[Optional[str], typer.Argument(help="Show this method's params in detail.")] = None,
            api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """The methods, their params (with the papers' defaults) and pretraining settings."""
    with connect(api, key) as client:
        items = client.methods()
    if name is not None:
        chosen = [m for m in items if m["name"] == name]
        if not chosen:
            err.print(f"[red]error:[/] no method {name!r}; the methods are: {', '.join(m['name'] for m in items)}")
            raise typer.Exit(1)
        emit(chosen[0], as_json, lambda: _method_detail(chosen[0]))
        return

    def defaults(values: dict | None) -> str:
        return ", ".join(f"{k}={'none' if v is None else cell(v)}" for k, v in (values or {}).items())

    def overview() -> Table:
        t = Table(show_edge=False, header_style="bold", show_lines=True)
        t.add_column("method", no_wrap=True)
        t.add_column("inputs")
        t.add_column("what it does; params and pretraining settings with their defaults")
        for m in items:
            text = f"{m['summary']}\n[bold]params[/]: {defaults(m['defaults'])}"
            if m.get("pretrain_defaults"):
                text += f"\n[bold]pretrain[/]: {defaults(m['pretrain_defaults'])}"
            t.add_row(m["name"], ", ".join(m["input_kinds"]), text)
        return t

    emit(items, as_json, overview)


def _method_detail(method: dict) -> None:
    out.print(f"[bold]{method['name']}[/]: {method['summary']}\ninputs: {', '.join(method['input_kinds'])}")
    sections = [("params", method.get("params_schema") or {}, method.get("defaults") or {}),
                ("pretrain", method.get("pretrain_schema") or {}, method.get("pretrain_defaults") or {})]
    for title, schema, defaults in sections:
        properties = schema.get("properties") or {}
        if not properties:
            continue
        t = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
        for header in ("name", "default", "range / choices", "description"):
            t.add_column(header)
        for key, prop in properties.items():
            t.add_row(key, cell(defaults.get(key, prop.get("default"))), _range(prop), prop.get("description", ""))
        out.print(t)


def _range(prop: dict) -> str:
    if "enum" in prop:
        return " | ".join(map(str, prop["enum"]))
    bounds = []
    for key, symbol in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in prop:
            bounds.append(f"{symbol} {prop[key]}")
    return ", ".join(bounds) or prop.get("type", "")
