#!/usr/bin/env bash
# Fill benchmarks/wheels/ with what gpu_check.sh installs where it is missing: Keras and its dependencies that a
# PyTorch or JAX machine may lack, for CPython 3.10-3.13 on x86_64 Linux (about 40 MB; git ignores the folder).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pure=(keras absl-py namex rich markdown-it-py mdurl pygments packaging typing-extensions fastjsonschema)
built=(optree h5py ml-dtypes)
pip download --quiet --no-deps --only-binary=:all: --dest "$here/wheels" "${pure[@]}"
for version in 3.10 3.11 3.12 3.13; do
  pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --python-version "$version" --dest "$here/wheels" "${built[@]}"
done
du -sh "$here/wheels"
