#!/usr/bin/env bash
# Start-up, reload and memory of wasm-cgi (the issue's non-throughput targets):
#   - start-up to the "listening" line with 10 modules, cold and warm cache
#   - idle RSS with 10 modules loaded
#   - a 2 MB module dropped into the folder: time until it first answers 200
#   - RSS after a 5 s warm-up load and after a further 60 s of load
# Needs target/release/wasm-cgi (bench/run.sh builds it), wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/wasm-cgi
PORT=${BENCH_STARTUP_PORT:-18095}
work=$(mktemp -d)
trap 'kill "${SRV_PID:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
[ -x "$BIN" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }

# Ten modules: the bench guests and the built-in examples, taken in turn
# until there are ten (a module twice is still a module to load and link).
mkdir -p "$work/modules"
i=0
for _ in 1 2; do
  for wasm in bench/target/wasm32-wasip1/release/*.wasm target/release/build/wasm-cgi-*/out/guest-target/wasm32-wasip1/release/*.wasm; do
    [ -f "$wasm" ] && [ "$i" -lt 10 ] || continue
    cp "$wasm" "$work/modules/m$i-$(basename "$wasm")"; i=$((i + 1))
  done
done
[ "$i" -ge 10 ] || { echo "need 10 modules: run bench/run.sh first" >&2; exit 1; }

# A 2 MB module: 60,000 small functions (bench/big-module.py: wat2wasm from
# the `wasmtime` package on PyPI, in a venv of its own).
python3 bench/big-module.py "$work/big.wasm"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
rss() { awk '/VmRSS/ {print $2}' "/proc/$SRV_PID/status"; }
start() {
  local t0; t0=$(now_ms)
  coproc SRV { exec "$BIN" serve --listen "127.0.0.1:$PORT" --modules "$work/modules" --cache-dir "$work/cache" 2>/dev/null; }
  read -r _ <&"${SRV[0]}"
  START_MS=$(( $(now_ms) - t0 ))
}
stop() { kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; }

start; echo "start-up, 10 modules, empty cache: $START_MS ms"; stop
for _ in 1 2 3; do start; echo "start-up, 10 modules, warm cache:  $START_MS ms"; stop; done
start; sleep 1
echo "idle RSS, 10 modules: $(rss) KiB"
echo "2 MB module: $(stat -c %s "$work/big.wasm") bytes"
t0=$(now_ms)
cp "$work/big.wasm" "$work/modules/big.wasm.part" && mv "$work/modules/big.wasm.part" "$work/modules/big.wasm"
until [ "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$PORT/cgi-bin/wasm-run.cgi/big.wasm")" = 200 ]; do sleep 0.01; done
echo "2 MB module dropped in -> first 200: $(( $(now_ms) - t0 )) ms"
url="http://127.0.0.1:$PORT/cgi-bin/wasm-run.cgi/$(ls "$work/modules" | grep hello | head -1)"
wrk -t1 -c32 -d5s "$url" > /dev/null
echo "RSS after a 5 s warm-up load: $(rss) KiB"
wrk -t1 -c32 -d60s "$url" | grep Requests/sec
echo "RSS after a further 60 s load: $(rss) KiB"
stop
