"""Trained models: the resource (with its job's metrics), an import stored, the per-process model
cache filled from the database, and predict on an uploaded file."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from deepclust.app.core import results
from deepclust.app.core.encoding import EncoderRunner, EncoderSpec, RunnerCache
from deepclust.app.core.results import ModelCard
from deepclust.app.core.settings import Settings
from deepclust.app.core.tables import TrainedModel
from deepclust.app.datasets.ingest.image_inputs import training_image_options
from deepclust.app.datasets.ingest.images import ImageOptions
from deepclust.app.datasets.ingest.reading import Reading, Staging, detect, read_rows
from deepclust.app.errors import not_found
from deepclust.app.http.deps import Database
from deepclust.app.http.paging import Page
from deepclust.app.http.uploads import UploadForm
from deepclust.app.trained_models.predict import ModelCache, answer, check_shape
from deepclust.app.trained_models.schemas import ModelOut
from deepclust.models import DeepClusterer


def model_out(session: Session, row: TrainedModel) -> ModelOut:
    return ModelOut.of(row, results.metrics(session, row.job_id) if row.job_id else None)


def models_page(session: Session, tenant: str, limit: int, offset: int) -> Page[ModelOut]:
    rows, total = results.list_models(session, tenant, limit, offset)
    return Page(items=[model_out(session, r) for r in rows], total=total)


def get_model(session: Session, model_id: str, tenant: str) -> ModelOut:
    row = results.model_row(session, model_id, tenant)
    if row is None:
        raise not_found("model", model_id)
    return model_out(session, row)


def model_card(session: Session, model_id: str, tenant: str) -> ModelCard:
    """Ownership and input shape from a few small columns; 404 when it is not the tenant's."""
    card = results.model_card(session, model_id, tenant)
    if card is None:
        raise not_found("model", model_id)
    return card


def store_import(session: Session, row: TrainedModel, weights: dict, encoder_onnx: bytes | None = None) -> ModelOut:
    """An imported model (already checked by ``bundle.import_model``), stored."""
    results.add_model(session, row, weights, encoder_onnx)
    session.commit()
    return model_out(session, row)


async def cached_model(cache: ModelCache, db: Database, model_id: str) -> DeepClusterer:
    """The model from this process's cache, rebuilt from its inference weights on a miss (the
    weights are read once per process)."""
    model = cache.get(model_id) or await run_in_threadpool(
        cache.load, model_id, partial(db.call, results.inference_weights, model_id))
    if model is None:
        raise not_found("model", model_id)
    return model


async def encoder_runner(cache: RunnerCache, db: Database, card: ModelCard) -> EncoderRunner | None:
    """The encoder a model on pretrained features runs first (built once per process), or None."""
    if card.encoder is None:
        return None

    def build() -> EncoderRunner:
        data = db.call(results.encoder_onnx, card.id)
        if data is None:
            raise not_found("model", card.id)
        return EncoderRunner(EncoderSpec.from_dict(card.encoder), data, "cpu")  # the API stays light: CPU

    return await run_in_threadpool(cache.get, card.id, build)


def predict_file(form: UploadForm, card: ModelCard, model: DeepClusterer, out: Path, staging: Staging,
                 settings: Settings, embeddings: bool, npy: bool, encoder: EncoderRunner | None = None) -> bytes:
    """Predict on the form's file, in any format the format table gives a reader for predict:
    rows (a label column dropped), an image archive or one image (made like the training images).
    A model on an encoder's embeddings takes images made like its dataset's, embedded first."""
    upload = form.files["file"]
    fmt = detect(upload.filename, upload.path, dataset=False)
    if encoder is not None:
        options = partial(ImageOptions.for_sample_shape, list(encoder.spec.image_shape))
    else:
        options = partial(training_image_options, card, model)
    reading = Reading(staging, settings, form.fields, upload.filename, upload.size, image_options=options)
    X = read_rows(upload.path, fmt, out, reading)
    if encoder is not None:
        X = encoder.run(check_shape(X, encoder.spec.image_shape))
    return answer(model, check_shape(X, card.sample_shape), embeddings, npy)
