#!/usr/bin/env bash
# Builds the static (musl) release binary that the container image ships,
# stripped, and prints its path:
# target/x86_64-unknown-linux-musl/release/wasm-cgi.stripped.
# Installs what the build needs when it is missing: the musl Rust target
# (rustup) and a musl C compiler (Debian's musl-tools: mimalloc and ring
# build C code). deploy/Dockerfile's builder stage and deploy/test-image.sh
# both run this script, so the image is built the same way everywhere.
#
#   scripts/build-static.sh          # from any folder; progress on stderr
#
# Environment: CARGO_TARGET_DIR as for cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl

say() { echo "build-static.sh: $*" >&2; }

# The guest targets too: the build script compiles the built-in examples.
if ! rustup target list --installed | grep -qx "$target"; then
    say "adding the Rust target $target"
    rustup target add "$target" wasm32-wasip1 wasm32-wasip2 >&2
else
    rustup target add wasm32-wasip1 wasm32-wasip2 >&2 2>/dev/null || true
fi

if ! command -v musl-gcc >/dev/null; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        say "needs musl-gcc (Debian: apt-get install musl-tools) to build mimalloc's and ring's C code"
        exit 1
    fi
    say "installing musl-tools (musl-gcc)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >&2; }
fi

# C code built by dependencies (cc crate) must use musl's headers and libc.
export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
# No debug info in the image's binary (the release profile keeps line
# tables): much smaller.
export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-false}"
export CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-debuginfo}"

say "cargo build --release --locked --target $target"
cargo build --release --locked --target "$target" >&2

binary="${CARGO_TARGET_DIR:-target}/$target/release/wasm-cgi"
if ! file_type="$(LC_ALL=C readelf -d "$binary" 2>&1)" || grep -q NEEDED <<<"$file_type"; then
    say "$binary is not statically linked:"
    grep NEEDED <<<"$file_type" >&2 || true
    exit 1
fi
# Symbols too (9 MB of the 40): the image keeps under its 40 MB budget.
# strip(1) works on the linked file, so this costs no second build; a
# panic's backtrace in the image then gives addresses, not names.
stripped="$binary.stripped"
if command -v strip >/dev/null; then
    strip --strip-all -o "$stripped" "$binary"
else
    say "no strip(1) (Debian: binutils): the image's binary keeps its symbols"
    cp "$binary" "$stripped"
fi
say "$(du -h "$stripped" | cut -f1) $stripped (static)"
echo "$stripped"
