# syntax=docker/dockerfile:1.7
# Two targets from one file:
#   api     slim Python, CPU torch (the API never trains; predict runs on CPU here)
#   worker  CUDA runtime, CUDA build of torch; runs `deepclust worker` (one Celery job at a time)
# The package is installed in editable mode from /app so alembic.ini and migrations/ ship beside it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The CUDA runtime image without cuDNN: torch's CUDA wheels bring their own cuDNN and cuBLAS (as
# pip packages), so the image's copy would be a second, unused gigabyte. The image supplies the
# NVIDIA_* variables the container toolkit reads to mount the host's driver.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
ARG TORCH_VERSION=2.13.0

# ---------------------------------------------------------------------------------------------
# The project's files, once, for both targets.
FROM scratch AS source
COPY pyproject.toml README.md alembic.ini /app/
COPY migrations /app/migrations
COPY setup.py /app/
COPY deepclust /app/deepclust
COPY models /app/models
COPY app /app/app
COPY worker /app/worker

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS api
ARG TORCH_VERSION
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEEPCLUST_DATA_DIR=/data DEEPCLUST_HOST=0.0.0.0 DEEPCLUST_PORT=8000
RUN useradd --uid 10001 --create-home deepclust && mkdir -p /data && chown deepclust /data
WORKDIR /app
# torch first, from the CPU index, so resolving the project cannot pull a CUDA build.
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
COPY --from=source /app ./
# The server extra: the web stack, plots (matplotlib) and ONNX export (onnx, onnxruntime).
RUN pip install -e .[server]
USER deepclust
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["deepclust", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS worker
ARG TORCH_VERSION
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 DEEPCLUST_DATA_DIR=/data DEEPCLUST_DEVICE=cuda \
    PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --uid 10001 --create-home deepclust && mkdir -p /data && chown deepclust /data
WORKDIR /app
RUN pip install "torch==${TORCH_VERSION}" --index-url ${TORCH_INDEX}
COPY --from=source /app ./
RUN pip install -e .[worker]
# The encode phase runs encoders through onnxruntime on the job's GPU: its CUDA build replaces the
# CPU one the worker extra brings (both install the module `onnxruntime`, so never both at once).
# `deepclust worker --check` lists the providers it found (CUDAExecutionProvider when it loads).
RUN pip uninstall -y onnxruntime && pip install "onnxruntime-gpu>=1.17"
USER deepclust
# `docker compose run --rm worker deepclust worker --check` prints the GPU, its memory and the
# library versions (JSON) and exits 1 when torch sees no GPU (no `--gpus`/device reservation,
# or a driver older than the wheel's CUDA).
CMD ["deepclust", "worker", "--concurrency", "1"]
