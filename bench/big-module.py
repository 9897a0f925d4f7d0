#!/usr/bin/env python3
"""Writes the synthetic "2 MB module" of the start-up benchmarks.

    python3 bench/big-module.py OUT.wasm [FUNCTIONS]

A WASI command of FUNCTIONS small functions (default 60,000: about 2 MB of
wasm, and a lot of code for a compiler) whose _start calls every 1000th and
prints "big". Made from text with wat2wasm from the `wasmtime` package on
PyPI. Without that package, the script makes a venv of its own for it
(${TMPDIR:-/tmp}/wasm-cgi-bench-venv, `pip install wasmtime`, once) and runs
itself again from there. Used by bench/startup.sh and bench/run.sh.
"""

import os
import subprocess
import sys
import tempfile

VENV = os.path.join(os.environ.get("TMPDIR") or tempfile.gettempdir(), "wasm-cgi-bench-venv")


def module_text(n):
    funcs = "\n".join(
        f"(func $f{i} (param i32) (result i32) local.get 0 i32.const {i} i32.add i32.const 7 i32.mul i32.const 3 i32.xor local.get 0 i32.const {i*3} i32.sub i32.mul i32.const 11 i32.rotl)"
        for i in range(n)
    )
    calls = " ".join(f"i32.const {i} call $f{i} drop" for i in range(0, n, 1000))
    return f"""(module
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 16) "big\\n")
 {funcs}
 (func (export "_start")
   (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 4))
   {calls}
   (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


def load_wasmtime():
    """The `wasmtime` package: this Python's, else the venv's (made and
    filled here if need be, and then this script runs again from it)."""
    try:
        import wasmtime

        return wasmtime
    except ImportError:
        pass
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "wasmtime"], check=True)
        import wasmtime

        return wasmtime
    python = os.path.join(VENV, "bin", "python")
    if not os.access(python, os.X_OK):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and not sys.argv[2].isdigit()):
        sys.exit(f"usage: {sys.argv[0]} OUT.wasm [FUNCTIONS]")
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) == 3 else 60000
    wasmtime = load_wasmtime()
    wasm = wasmtime.wat2wasm(module_text(n))
    # Written whole under another name first: a folder being watched never
    # sees half a module.
    partial = out + ".partial"
    with open(partial, "wb") as f:
        f.write(wasm)
    os.replace(partial, out)


if __name__ == "__main__":
    main()
