#!/usr/bin/env bash
# Issues #26 and #27 part 2 in one call on a lent GPU (benchmarks/device_kit.py packs the kit and
# prints the call): gpu.py's measurements, then as many reproduction-table cells as the rest of
# the call allows. Everything lands under $OUT as it is measured, so a cut call keeps it.
#
#   bash benchmarks/on_device.sh [GPU_BUDGET_S] [TABLE_BUDGET_S]      (defaults 250 and 270; 0 skips)
#
# TABLE_ARGS adds options to table.py (a second call: TABLE_ARGS="--cells decs:usps:*").
#
# With the defaults the call ends within ~560 s: the install and the import check take ~20 s,
# each script stops starting work at its budget and then finishes what runs. A session has 15
# minutes of device time, the machine's start included, and one command runs 10 minutes at most.
# A dry run on a CPU: OUT=/tmp/od DEVICE=cpu TINY=1 bash benchmarks/on_device.sh 60 60
set -uo pipefail
gpu_budget=${1:-250}
table_budget=${2:-270}
device=${DEVICE:-cuda}
tiny=${TINY:+--tiny}
: "${OUT:?OUT names the folder whose files come back}"
repo=$PWD

# The kit's wheels: what the device image lacks (device_kit.WHEELS). WHEELS_DIR=none: a Python
# that has them already (tests/test_device_kit.py).
wheels=${WHEELS_DIR:-.whl}
if [ -d "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# deepclust from the checkout, uninstalled: setup.py maps app/, models/ and worker/ to
# deepclust.app, .models and .worker; links make the same tree, and a subprocess (deepclust
# serve, table.py's cell workers) finds it through PYTHONPATH.
src=$(mktemp -d)
mkdir -p "$src/deepclust"
ln -s "$repo/deepclust/__init__.py" "$src/deepclust/__init__.py"
for folder in app models worker; do ln -s "$repo/$folder" "$src/deepclust/$folder"; done
export PYTHONPATH=$src:$PYTHONPATH PYTHONUNBUFFERED=1 DEEPCLUST_DATASETS=$repo/.data

# Everything both scripts import, before any device time goes to them: a missing wheel shows
# here in a second, not minutes into the run (-P: not the checkout's bare deepclust/ folder).
{
  date -u; nvidia-smi 2>&1 | head -20
  python3 -P -c "import deepclust.app.main, deepclust.worker.run, deepclust.models.k_estimation, torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} > "$OUT/device.txt" 2>&1 || { cat "$OUT/device.txt"; exit 1; }
cat "$OUT/device.txt"

# #26: the service job first (its figure is the goal), the speed settings last.
if [ "$gpu_budget" -gt 0 ]; then
  timeout -k 10 $((gpu_budget + 90)) python3 benchmarks/gpu.py --device "$device" $tiny --budget-s "$gpu_budget" \
    --sections env,ratio,service,kmeans,predict,accel --out "$OUT"
  echo "gpu.py exit $?"
fi

# #27: the table, continuing the committed file's cells if there is one.
[ "$table_budget" -gt 0 ] || exit 0
cp benchmarks/results/table_gpu.jsonl "$OUT/" 2>/dev/null
timeout -k 10 $((table_budget + 60)) python3 benchmarks/table.py --device "$device" $tiny --budget-s "$table_budget" \
  --data-dir "$repo/.data" --resume --out "$OUT/table_gpu.jsonl" ${TABLE_ARGS:-}
echo "table.py exit $?"
python3 benchmarks/table.py --summarize --out "$OUT/table_gpu.jsonl"
