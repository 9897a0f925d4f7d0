#!/usr/bin/env bash
# A CPU flame graph of wasm-cgi serving the built-in hello example under load.
#
#   bench/flamegraph.sh BIN OUT.svg [SECONDS]
#   bench/flamegraph.sh target/release/wasm-cgi docs/flamegraph-hello.svg 10
#
# Starts `BIN serve --listen 127.0.0.1:PORT` (no --modules: the built-in
# examples), waits until /cgi-bin/wasm-run.cgi/hello.wasm answers, drives it
# with `wrk -t1 -c32 -dSECONDS` (default 10) and, while that runs, records the
# server with `perf record -F 997 -g --call-graph dwarf,16384`. Then
# `perf script | inferno-collapse-perf | inferno-flamegraph` makes OUT.svg,
# and OUT.top.txt (beside it) gets the top self-time symbols
# (`perf report --no-children --sort symbol`) and the wrk summary.
#
# DWARF unwinding is used because the release build has no frame pointers
# (Rust and the Wasmtime-generated code don't keep them by default), so with
# plain `-g` (fp) most stacks stop after one or two frames. The price is a
# big perf.data (~200 MB for 10 s) and a slow `perf script` (2-3 minutes on
# 2 cores). Each sample copies 16 KiB of the user stack: enough for every
# frame from the leaf up through hyper's connection task, but the deepest
# async stacks lose their outermost frames (tokio's worker loop), which then
# show as an `[unknown]` root; FLAMEGRAPH_STACK_BYTES (up to 65528) copies
# more, at that much more perf.data. FLAMEGRAPH_CALL_GRAPH=fp records with
# frame pointers instead (only useful for a build made with
# -C force-frame-pointers=yes). Guest (JIT) code has its own root: Wasmtime
# runs it on a fiber stack, where unwinding stops.
#
# Tools: wrk and perf from Debian (apt-get install wrk linux-perf) when
# missing; inferno from crates.io (`cargo install --locked inferno`) into
# bench/.tools/inferno when missing (its build goes to /tmp/inferno-build,
# not the project's target dir). Meant to be run by hand, as root or with
# perf_event_paranoid <= 1; not run in CI.
#
# The server's log (one access line per request) goes to a file in the work
# folder, as in bench/run.sh: writing it is part of what is measured.
#
# Knobs: FLAMEGRAPH_PORT (18099), FLAMEGRAPH_CONNS (32), FLAMEGRAPH_CALL_GRAPH
# (dwarf | fp), FLAMEGRAPH_STACK_BYTES (16384), FLAMEGRAPH_KEEP=1 keeps the
# work folder (perf.data, the collapsed stacks, the server log) and prints
# its path.
set -euo pipefail

# As in production: RUST_BACKTRACE=1 would make every error value capture a
# backtrace, which shows up in the profile as work the server never does.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

usage() { echo "usage: $0 BIN OUT.svg [SECONDS]" >&2; exit 2; }
[[ $# -ge 2 && $# -le 3 ]] || usage
BIN="$1"
OUT="$2"
SECS="${3:-10}"
[[ "$SECS" =~ ^[0-9]+$ && "$SECS" -gt 0 ]] || usage
[[ -x "$BIN" ]] || { echo "flamegraph: not an executable: $BIN" >&2; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
mkdir -p "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
TOP="${OUT%.svg}.top.txt"

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
INFERNO_ROOT="$BENCH_DIR/.tools/inferno"
PORT="${FLAMEGRAPH_PORT:-18099}"
CONNS="${FLAMEGRAPH_CONNS:-32}"
CALL_GRAPH="${FLAMEGRAPH_CALL_GRAPH:-dwarf}"
STACK_BYTES="${FLAMEGRAPH_STACK_BYTES:-16384}"
for n in "$PORT" "$CONNS" "$STACK_BYTES"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "flamegraph: not a whole number: $n" >&2; exit 2; }
done
URL="http://127.0.0.1:$PORT/cgi-bin/wasm-run.cgi/hello.wasm"
# Over this the SVG is redrawn without frames under 0.1% of the samples.
MAX_SVG_BYTES=$((1536 * 1024))

WORK="$(mktemp -d "${TMPDIR:-/tmp}/wasm-cgi-flamegraph.XXXXXX")"
SERVER_PID=""
WRK_PID=""
PERF_PID=""
cleanup() {
    local pid
    for pid in "$PERF_PID" "$WRK_PID" "$SERVER_PID"; do
        if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; fi
    done
    for pid in "$PERF_PID" "$WRK_PID" "$SERVER_PID"; do
        if [[ -n "$pid" ]]; then wait "$pid" 2>/dev/null || true; fi
    done
    if [[ "${FLAMEGRAPH_KEEP:-0}" == 1 ]]; then
        echo "flamegraph: work files kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
apt_install() { # as bench/run.sh's: Debian packages, as root or through sudo
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || return 1
        sudo="sudo"
    fi
    $sudo apt-get update -qq >"$WORK/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >>"$WORK/apt.log" 2>&1
}
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v perf >/dev/null || missing+=(linux-perf)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    echo "flamegraph: apt-get install -y ${missing[*]}" >&2
    apt_install "${missing[@]}" || { cat "$WORK/apt.log" >&2; exit 1; }
fi
if [[ ! -x "$INFERNO_ROOT/bin/inferno-flamegraph" ]]; then
    echo "flamegraph: cargo install --locked inferno --root $INFERNO_ROOT (a minute or two)" >&2
    CARGO_TARGET_DIR="${TMPDIR:-/tmp}/inferno-build" \
        cargo install --locked inferno --root "$INFERNO_ROOT" >"$WORK/inferno-install.log" 2>&1 ||
        { tail -n 30 "$WORK/inferno-install.log" >&2; exit 1; }
fi
COLLAPSE="$INFERNO_ROOT/bin/inferno-collapse-perf"
FLAMEGRAPH="$INFERNO_ROOT/bin/inferno-flamegraph"

# ---------------------------------------------------------------- server
if curl -s -o /dev/null --max-time 1 "$URL"; then
    echo "flamegraph: something already answers at $URL; set FLAMEGRAPH_PORT" >&2
    exit 1
fi
"$BIN" serve --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for ((i = 0; ; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "flamegraph: the server exited at start-up; its log:" >&2
        tail -n 20 "$WORK/server.log" >&2
        exit 1
    fi
    [[ "$(curl -s --max-time 5 "$URL" || true)" == Hello* ]] && break
    ((i < 300)) || { echo "flamegraph: no Hello from $URL within 30 s" >&2; exit 1; }
    sleep 0.1
done
# A short warm-up so start-up work (the first instantiations, pool set-up)
# stays out of the recording.
wrk -t1 -c"$CONNS" -d1s "$URL" >/dev/null 2>&1 || true

# ---------------------------------------------------------------- record
case "$CALL_GRAPH" in
dwarf) call_graph=(--call-graph "dwarf,$STACK_BYTES") ;;
fp) call_graph=(-g) ;;
*) echo "flamegraph: FLAMEGRAPH_CALL_GRAPH is dwarf or fp, not $CALL_GRAPH" >&2; exit 2 ;;
esac
echo "flamegraph: wrk -t1 -c$CONNS -d${SECS}s $URL, perf record -F 997 ${call_graph[*]} -p $SERVER_PID" >&2
wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$URL" >"$WORK/wrk.txt" 2>&1 &
WRK_PID=$!
# Start recording once the load is on; stop a little before it ends.
sleep 0.5
perf record -F 997 -g "${call_graph[@]}" -p "$SERVER_PID" -o "$WORK/perf.data" \
    >"$WORK/perf-record.log" 2>&1 &
PERF_PID=$!
sleep "$(awk -v s="$SECS" 'BEGIN { printf "%.1f", (s > 1.5 ? s - 1 : 0.5) }')"
kill -INT "$PERF_PID" 2>/dev/null || true
wait "$PERF_PID" || true
PERF_PID=""
wait "$WRK_PID" || true
WRK_PID=""
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
[[ -s "$WORK/perf.data" ]] || { cat "$WORK/perf-record.log" >&2; exit 1; }
grep -E 'Requests/sec|Latency|requests in|Socket errors|Non-2xx' "$WORK/wrk.txt" >&2 || cat "$WORK/wrk.txt" >&2

# ---------------------------------------------------------------- render
echo "flamegraph: perf script | inferno-collapse-perf (slow with DWARF stacks)" >&2
perf script -i "$WORK/perf.data" 2>"$WORK/perf-script.log" | "$COLLAPSE" --all >"$WORK/collapsed.txt"
[[ -s "$WORK/collapsed.txt" ]] || { echo "flamegraph: no stacks recorded" >&2; exit 1; }
version="$("$BIN" --version 2>/dev/null | head -n 1 || true)"
title="wasm-cgi hello: ${version:-$(basename "$BIN")}, wrk -t1 -c$CONNS, ${SECS} s, perf -F 997 ($CALL_GRAPH)"
render() { "$FLAMEGRAPH" --title "$title" --hash "$@" <"$WORK/collapsed.txt" >"$OUT"; }
render
if (($(stat -c %s "$OUT") > MAX_SVG_BYTES)); then
    render --minwidth 0.1
fi

# The first 25 rows of a perf report, without its empty IPC columns (`- -`
# without a PMU); reads to the end, so no SIGPIPE under pipefail.
top25() { awk '/^ +[0-9.]+%/ && n < 25 { sub(/( +-)* *$/, ""); print; n++ }'; }
{
    echo "# $title"
    echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, $(uname -sr)"
    echo "# wrk:"
    sed 's/^/#   /' "$WORK/wrk.txt"
    echo "# top 25 functions by self time (perf report --no-children --sort symbol):"
    perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
        top25
    echo
    echo "# top 25 by self time, shared object and symbol (perf report --no-children --sort dso,symbol):"
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        top25
} >"$TOP"
echo "flamegraph: $OUT ($(stat -c %s "$OUT") bytes), $TOP" >&2
