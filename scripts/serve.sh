#!/usr/bin/env bash
# Runs the server on its built-in example modules, on a fresh machine:
# installs the guest targets, builds in release mode, serves on :8080
# (override with PORT=N or any `wasm-cgi serve` flag given to this script).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip1 wasm32-wasip2
exec cargo run --locked --release -- serve "$@"
