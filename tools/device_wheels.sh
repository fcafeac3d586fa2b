#!/usr/bin/env bash
# Wheels for `python -m benchmarks.accelerator` on a GPU image that has jax, flax, optax,
# numpy, sympy, ... but not praxis, fiddle or lingvo (and no TensorFlow): praxis and the
# packages it imports that such an image lacks, plus pali_pax itself (its subpackages live
# in top-level folders, so it is imported from its wheel, not from the checkout).
#
#   tools/device_wheels.sh [PYTHON_VERSION] [DIR]     # defaults: 3.12 (the image's), .whl
#
# DIR must be git-ignored (.whl is, in .gitignore) and is carried to the device; the
# command to run there is printed at the end. docs/benchmarks.md, "The GPU run".
set -euo pipefail
py="${1:-3.12}"
dir="${2:-.whl}"
cd "$(dirname "$0")/.."
rm -rf "$dir" && mkdir -p "$dir"
# The project's pins (requirements/pax.txt, lock.txt) where praxis 1.4.0 needs them.
pkgs=(praxis==1.4.0 fiddle==0.3.1 lingvo==0.14.2 clu==0.0.12 optax-shampoo==0.0.6
  jax-bitempered-loss==0.0.2 typeguard==4.6.1 libcst==1.9.0)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$dir" "${pkgs[@]}"
# (setuptools warns at length about the data folder; shown only if the build fails)
.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w "$dir" . 2>"$dir/build.log" ||
  { cat "$dir/build.log"; exit 1; }
rm "$dir/build.log"
du -sh "$dir"
cat <<EOF
On the device (carry: ["$dir"]), from the checkout's root:
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --ignore-requires-python --target /tmp/site $dir/*.whl && export PYTHONPATH=/tmp/site:\$PWD PYTHONUNBUFFERED=1 && cd /tmp && python3 -m benchmarks.accelerator --out \$OUT/accelerator.json --specs small,base --batch 64 2>&1 | tee \$OUT/accelerator.log
EOF
