#!/bin/bash
# Container health check for wasm-cgi: GET a path (default /healthz) on
# 127.0.0.1:$PORT and succeed on HTTP 200. Bash only (its /dev/tcp), so the
# runtime image needs no curl or wget.
#
#   wasm-cgi-healthcheck [PATH]      e.g. wasm-cgi-healthcheck /readyz
#
# Environment: PORT (default 8080), HEALTHCHECK_HOST (default 127.0.0.1),
# HEALTHCHECK_TIMEOUT in whole seconds (default 2).
set -euo pipefail

path="${1:-/healthz}"
host="${HEALTHCHECK_HOST:-127.0.0.1}"
port="${PORT:-8080}"
timeout="${HEALTHCHECK_TIMEOUT:-2}"

if ! { exec 3<>"/dev/tcp/${host}/${port}"; } 2>/dev/null; then
    echo "unhealthy: cannot connect to ${host}:${port}" >&2
    exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wasm-cgi-healthcheck\r\nConnection: close\r\n\r\n' \
    "$path" >&3
status_line=""
if ! IFS= read -r -t "$timeout" status_line <&3; then
    echo "unhealthy: no answer from ${host}:${port}${path} within ${timeout}s" >&2
    exit 1
fi
exec 3<&- 3>&-
status_line="${status_line%$'\r'}"
read -r _version code _reason <<<"$status_line" || true
if [ "${code:-}" != "200" ]; then
    echo "unhealthy: ${host}:${port}${path} answered: ${status_line:-nothing}" >&2
    exit 1
fi
echo "healthy: ${path} ${code}"
