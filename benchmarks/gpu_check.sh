#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and PyTorch or JAX but maybe no TensorFlow and no network:
# installs only what is missing (Keras and its few dependencies) from the wheels in benchmarks/wheels/
# (made beforehand by benchmarks/gpu_wheels.sh on a machine with a network), then runs benchmarks/gpu_check.py:
# each backend's images/s, and the fast recipe's and seed baseline's time-to-accuracy, with the card's name.
#
#   bash benchmarks/gpu_check.sh DATA [more gpu_check.py options]     (DATA: CIFAR-10, see gpu_check.py)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
data="${1:?usage: bash benchmarks/gpu_check.sh DATA [--quick ...]  (DATA: CIFAR-10 batches folder, tarball or JPEG folder)}"
shift
missing=()
for module in keras fastjsonschema; do
  "$python" -c "import $module" 2>/dev/null || missing+=("$module")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from $here/wheels (no network needed)"
  "$python" -m pip install --quiet --no-index --find-links "$here/wheels" "${missing[@]}"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec "$python" "$here/gpu_check.py" --data "$data" "$@"
