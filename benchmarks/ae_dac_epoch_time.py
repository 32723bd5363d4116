"""Where the time of one two-view AE+DAC joint epoch goes, part by part, against one view.

    OMP_NUM_THREADS=1 python benchmarks/ae_dac_epoch_time.py mnist_test [--data-dir /tmp/dcdata]

Runs the joint phase's work by hand for one epoch of 128-image batches (the default views and
optimiser, a fresh network), timing each part, then the same steps with one view; prints a JSON line.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdata import add_data_dir_argument, load_npz  # noqa: E402
from deepclust.models.methods.ae_dac import AEDACParams, PairwisePhase, dac_batch_loss  # noqa: E402
from deepclust.models.networks.dac import DACAutoencoder, DACModel  # noqa: E402
from deepclust.models.training import predict_soft  # noqa: E402
from deepclust.models.training.augment import auto_augment  # noqa: E402
from deepclust.models.training.data import ArrayData  # noqa: E402
from deepclust.models.preprocessing import Scaler  # noqa: E402
torch.set_num_threads(1)
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("dataset", help="a benchmark dataset with images, e.g. mnist_test, cifar10_jpeg_test")
add_data_dir_argument(ap)
args = ap.parse_args()
d = load_npz(args.dataset, args.data_dir)
X = d["x"].reshape(-1, *d["shape"])
data = ArrayData(X, Scaler.fit(X, "auto"), torch.device("cpu"))
torch.manual_seed(0)
model = DACModel(DACAutoencoder(*X.shape[1:], n_clusters=10)).train()
ae = model.autoencoder
phase = PairwisePhase(AEDACParams())
opt = phase.optimizer(model)
t = {"augment": 0.0, "clean_pass_no_grad": 0.0, "view_forward_loss": 0.0, "backward_step": 0.0, "batch_rows": 0.0}
steps = 79
order = torch.randperm(len(X))
gen = torch.Generator()
for i in range(steps):
    a = time.perf_counter(); x = data.rows(order[i*128:(i+1)*128]); b = time.perf_counter(); t["batch_rows"] += b - a
    gen.manual_seed(i); v = auto_augment(x, gen); c = time.perf_counter(); t["augment"] += c - b
    with torch.no_grad():
        pp = ae.cluster_probs(ae.encode(x))
    d_ = time.perf_counter(); t["clean_pass_no_grad"] += d_ - c
    z = ae.encode(v); terms = dac_batch_loss(ae.cluster_probs(z), ae.decode(z), v, 0.1, pair_probs=pp)
    e = time.perf_counter(); t["view_forward_loss"] += e - d_
    opt.zero_grad(); terms["loss"].backward(); opt.step()
    f = time.perf_counter(); t["backward_step"] += f - e
a = time.perf_counter(); predict_soft(model, data); t["end_of_epoch_predict_all"] = time.perf_counter() - a
model.train()
# single view for comparison: one forward with grad on the clean batch
s = time.perf_counter()
for i in range(steps):
    x = data.rows(order[i*128:(i+1)*128]); z = ae.encode(x)
    terms = dac_batch_loss(ae.cluster_probs(z), ae.decode(z), x, 0.1)
    opt.zero_grad(); terms["loss"].backward(); opt.step()
t["single_view_steps_total"] = time.perf_counter() - s
t["two_view_steps_total"] = sum(v for k, v in t.items() if k in ("batch_rows", "augment", "clean_pass_no_grad", "view_forward_loss", "backward_step"))
print(json.dumps({"dataset": args.dataset, "steps_per_epoch": steps, **{k: round(v, 2) for k, v in t.items()}}))
