"""The `encode` phase against onnxruntime called directly on the same batches (issue #24, "Benchmarks").

    python benchmarks/encode.py                      # 20000 32×32 rgb images, a ResNet-ish conv encoder at 64×64
    python benchmarks/encode.py --n 512 --tiny       # a dry run in seconds
    python benchmarks/encode.py --device cuda        # the CUDA provider (onnxruntime-gpu on the machine)

Both sides run the same ONNX encoder with the same session options and batch size, --repeats times
each, interleaved (the medians are compared):
- floor: the user's own loop, ``session.run`` per batch on the dataset's images prepared beforehand
  in memory at the encoder's size and normalised (without a resize only);
- hot floor: the same loop sending one prepared batch over and over, cache-hot: the cheapest input
  there is (the first runs' only floor);
- deepclust: ``worker.encode.encode`` as a job runs it, from the dataset's canonical uint8-valued
  float32 images on disk (the preprocessing graph composed in front: colour, resize, /255,
  mean/std), writing the N×D embeddings to the artifact store, with progress and cancel checks.
It prints one JSON line: images/s of each, the ratios (goal >= 0.9 against the floor, which does
the same work; with a resize the deepclust side does more), and the peak RSS above the start
(VmHWM) against the dataset's bytes.
Quality on real pretrained weights cannot be measured here (no weights can be downloaded).
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux: 5 to clear_refs), so the peak that follows is
    the encode phase's and not the floor's prepared copy of the dataset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def encoder_onnx(size: int, width: int) -> bytes:
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers, c = [], 3
    for out in (width, width * 2, width * 4):
        layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        c = out
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 128)).eval()
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(net, (torch.zeros(2, 3, size, size),), buffer, input_names=["images"],
                          output_names=["features"], dynamic_axes={"images": {0: "n"}, "features": {0: "n"}},
                          opset_version=17, dynamo=False)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--image", type=int, default=32, help="side of the dataset's images")
    parser.add_argument("--size", type=int, default=64, help="the encoder's input side")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="a narrow encoder: a dry run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, interleaved (medians compared)")
    args = parser.parse_args()

    import onnxruntime as ort

    from deepclust.app.core.encoding import EncoderSpec, providers
    from deepclust.app.core.settings import Settings
    from deepclust.app.core.storage import store_for
    from deepclust.worker.encode import encode

    data = encoder_onnx(args.size, 8 if args.tiny else 32)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.n, 3, args.image, args.image)).astype(np.float32)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    with tempfile.TemporaryDirectory() as tmp:
        store = store_for(Path(tmp))
        np.save(store.local_path("x.npy"), images)
        (store.root / "encoders").mkdir()
        store.local_path("encoders/e.onnx").write_bytes(data)
        row = SimpleNamespace(id="enc_bench", name="bench", input_shape=[3, args.size, args.size], output_dim=128,
                              color="rgb", input_name="images", output_name="features", mean=mean, std=std,
                              sha256="", file_key="encoders/e.onnx")
        dataset = SimpleNamespace(id="ds_bench", sample_shape=[3, args.image, args.image], n_samples=args.n,
                                  data_key="x.npy")

        # The floors: session.run on batches at the encoder's size, already normalised. "floor" walks
        # the dataset's own images, prepared in memory beforehand as a user's loop would have them
        # (only without a resize: a numpy resize is not what anyone would time); "hot floor" sends
        # one batch over and over (cache-hot: the cheapest input there is, the figure of the first
        # runs). Each side runs --repeats times, interleaved, and the medians are compared.
        session = ort.InferenceSession(data, providers=providers(args.device))
        session.run(["features"], {"images": rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)})  # warm-up
        prepared = None
        if args.image == args.size:
            prepared = ((images / 255.0 - np.array(mean, np.float32)[:, None, None])
                        / np.array(std, np.float32)[:, None, None]).astype(np.float32)
        hot = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)

        def floor(source) -> float:
            started = time.perf_counter()
            for start in range(0, args.n, args.batch):
                size = min(args.batch, args.n - start)
                session.run(["features"], {"images": hot[:size] if source is None else source[start:start + size]})
            return time.perf_counter() - started

        class Reporter:
            progress: dict = {}

            def enter_phase(self, phase, epochs=1):
                pass

            def flush(self, force=False):
                pass

            def should_stop(self):
                return False

        import deepclust.worker.encode as module

        class FakeSession:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def get(self, table, id_):
                return row

            def expunge(self, row):
                pass

        module.new_session = lambda engine: FakeSession()  # no database: the row is given
        settings = Settings(data_dir=Path(tmp), encode_batch_size=args.batch, progress_interval_seconds=0.5)
        job = SimpleNamespace(id="job_bench", encoder_id=row.id)
        reset_peak()
        before = rss_kib("VmRSS")
        times: dict[str, list[float]] = {"floor": [], "hot floor": [], "encode": []}
        for _ in range(args.repeats):
            if prepared is not None:
                times["floor"].append(floor(prepared))
            times["hot floor"].append(floor(None))
            store.delete_prefix("datasets")  # encode again: not the kept embeddings
            started = time.perf_counter()
            out = encode(job, dataset, None, store, Reporter(), settings, args.device)
            times["encode"].append(time.perf_counter() - started)
            assert out.X.shape == (args.n, 128)
        peak = rss_kib("VmHWM")
        spec = EncoderSpec.of(row, dataset.sample_shape)
    median = {k: statistics.median(v) for k, v in times.items() if v}
    print(json.dumps({"n": args.n, "image": args.image, "encoder_input": args.size, "batch": args.batch,
                      "repeats": args.repeats,
                      "provider": providers(args.device)[0] if isinstance(providers(args.device)[0], str)
                      else providers(args.device)[0][0],
                      "images_per_s": {k: round(args.n / v, 1) for k, v in median.items()},
                      "ratio": round(median["floor"] / median["encode"], 3) if "floor" in median else None,
                      "ratio_to_hot_floor": round(median["hot floor"] / median["encode"], 3),
                      "peak_rss_above_start_mb": round((peak - before) / 1024, 1),
                      "dataset_mb": round(images.nbytes / 2**20, 1), "resize": spec.image_shape[1:] != spec.input_shape[1:]}))

if __name__ == "__main__":
    main()
