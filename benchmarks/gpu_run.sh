#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool): CUDA checks, then benchmarks/sweep.py until a
# deadline. Needs, carried beside the repo: .whl/ (soundfile, soxr, cffi, pycparser wheels) and
# .gpu/data/{ravdess,emovo} (the four-class clips). Writes $OUT/{gpu.txt,cuda_tests.txt,gpu_check.json,sweep.tgz}.
# Usage: bash benchmarks/gpu_run.sh [SECONDS, default 540: everything ends by then]
set -u
T0=$(date +%s); LIMIT=${1:-540}
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -n "${SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 EMOSPEC_DATA=$PWD/.gpu/data OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv; nproc --all;
  python3 -c "import torch, soundfile, soxr, emospec; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"; } 2>&1 | tee "$OUT/gpu.txt"
echo "== CUDA tests ($(left) s left)"
timeout 120 python3 -m pytest -q -p no:cacheprovider -rs tests/test_distributed.py tests/test_predict.py -k "cuda or amp" 2>&1 | tail -8 | tee "$OUT/cuda_tests.txt"
echo "== gpu_check ($(left) s left)"
OMP_NUM_THREADS=4 timeout 150 python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.json" 2>&1 | grep -v "has not fit\|fewer than" | tail -6
echo "== sweep ($(left) s left)"
SW=/dev/shm/sweep; [ "$(df --output=avail -k /dev/shm | tail -1)" -gt 8000000 ] || SW=/tmp/sweep  # checkpoints: RAM disk if big enough
df -h /dev/shm /tmp | tail -2
HARD=$(( $(left) - 15 )); NEW=$(( HARD - 150 ))
timeout -s KILL $HARD python3 benchmarks/sweep.py --out $SW --workers 14 --deadline $NEW 2>&1 \
  | grep -v "has not fit\|fewer than\|Warn" | tail -40
tar czf "$OUT/sweep.tgz" -C $SW --exclude='*.pt' . && ls -la "$OUT"
echo "== done at $(( $(date +%s) - T0 )) s"
