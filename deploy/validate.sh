#!/usr/bin/env bash
# Validates the deployment files without Docker or a cluster: the
# Dockerfiles (parsed; non-root USER 10001, EXPOSE 8080, HEALTHCHECK, every
# COPY source present in the repo and not .dockerignored), every Kubernetes
# manifest against the Kubernetes schemas (strict), the kustomization, the
# Deployment's probes/security/shutdown settings, the wasm-cgi TOML config
# in the ConfigMap (parses, known keys only, folders and modules present),
# the systemd unit, and the deploy/ paths named in docs/DEPLOYING.md.
#
#   deploy/validate.sh                 # from any folder; CI runs this
#   deploy/validate.sh --root DIR      # check another copy of the repo
#
# Needs python3 >= 3.11 with pip (venv preferred; falls back to
# `pip install --target` where python3-venv is missing) and PyPI. The
# dependencies go to a cached folder under ${TMPDIR:-/tmp}, reused by later
# runs; set WASM_CGI_VALIDATE_DEPS=DIR to choose it. Optional tools used when
# present: kubectl (kustomize render), systemd-analyze (unit checks).
#
# Prints one line per check and exits non-zero if any failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "validate.sh: needs Python >= 3.11 (tomllib) as '$python'; set PYTHON=..." >&2
    exit 2
fi

# Pinned, so a new release can't change the verdict under CI.
requirements=(
    "kubernetes-validate==1.37.0"
    "dockerfile-parse==2.0.1"
    "PyYAML>=6,<7"
)
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$(printf '%s\n' "$pyver" "${requirements[@]}" | cksum | cut -d' ' -f1)"
deps="${WASM_CGI_VALIDATE_DEPS:-${TMPDIR:-/tmp}/wasm-cgi-validate-$(id -u)-$key}"

# A cached folder is only trusted if we made it: ours, not writable by others.
usable() {
    [ -f "$1/.complete" ] && [ -O "$1" ] && [ -z "$(find "$1" -maxdepth 0 -perm /022 2>/dev/null)" ]
}

install_deps() {
    local target="$1"
    local pip_flags=(--quiet --disable-pip-version-check --no-input)
    echo "validate.sh: installing ${requirements[*]} into $target" >&2
    mkdir -p "$target"
    chmod 0755 "$target"
    if "$python" -m venv "$target/venv" >/dev/null 2>&1 \
        && "$target/venv/bin/python" -m pip install "${pip_flags[@]}" "${requirements[@]}" >&2; then
        echo venv >"$target/kind"
    else
        # No venv module (Debian without python3-venv): a plain target folder.
        rm -rf "$target/venv"
        "$python" -m pip install "${pip_flags[@]}" --target "$target/site" "${requirements[@]}" >&2
        echo site >"$target/kind"
    fi
    touch "$target/.complete"
}

if ! usable "$deps"; then
    if [ -e "$deps" ] && [ -z "${WASM_CGI_VALIDATE_DEPS:-}" ]; then
        # Someone else's or half-made: use a private folder for this run.
        deps="$(mktemp -d "${TMPDIR:-/tmp}/wasm-cgi-validate.XXXXXX")"
        trap 'rm -rf "$deps"' EXIT
        install_deps "$deps"
    else
        staging="$(mktemp -d "${TMPDIR:-/tmp}/wasm-cgi-validate-staging.XXXXXX")"
        install_deps "$staging"
        # Atomic publish; if another run won the race, use its folder.
        if ! mv -T "$staging" "$deps" 2>/dev/null; then
            rm -rf "$staging"
            usable "$deps" || { echo "validate.sh: cannot use $deps" >&2; exit 2; }
        fi
    fi
fi

if [ "$(cat "$deps/kind")" = venv ]; then
    exec "$deps/venv/bin/python" "$here/validate.py" "$@"
else
    PYTHONPATH="$deps/site${PYTHONPATH:+:$PYTHONPATH}" exec "$python" "$here/validate.py" "$@"
fi
