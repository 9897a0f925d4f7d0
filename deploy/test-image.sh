#!/usr/bin/env bash
# Builds the container images and runs them for real, with podman (rootful),
# the way docs/DEPLOYING.md tells users to. CI runs it from scripts/test.sh.
#
#   deploy/test-image.sh        # as root, from any folder
#
# What it does:
#   - installs podman, crun, runc and curl when missing (Debian's packages);
#   - builds the static binary (scripts/build-static.sh) and the example and
#     test guests on the host, then deploy/Dockerfile with its BUILD stage
#     replaced by an image holding that binary: nothing is pulled (no image
#     registry is reachable from CI), and the runtime stage is FROM scratch;
#   - checks the image: size under 40 MB, uid 10001, every file root's and
#     read-only, exactly the binary, the example and /etc/passwd and group;
#   - runs it hardened (--read-only --tmpfs /tmp --cap-drop ALL
#     --security-opt no-new-privileges, port published on 127.0.0.1) and
#     checks: hello.wasm answers `Hello Pinky!` within 1 s of the start, the
#     server runs as uid 10001 with no capabilities, nothing but /tmp can be
#     written, `podman healthcheck run` passes;
#   - with a modules folder mounted read-only at the classic path: its
#     modules are served, a module added while running is served (hot
#     reload), and `podman stop` (SIGTERM) lets a slow request finish and
#     the container exit 0 well within the grace period;
#   - builds deploy/modules-image/Dockerfile (Debian's static busybox in
#     place of the busybox image) and uses it as the Kubernetes init
#     container does: copies its modules into an empty volume, which the
#     server then serves read-only.
# It prints the image size and the start time, and removes every container,
# image and volume it made. If podman cannot run containers on this machine
# it says why in one line and fails: it never skips.
#
# Machine notes (found by trying, see docs/DEPLOYING.md): containers start
# only with lowered limits (--ulimit nofile/nproc, else "setrlimit:
# Operation not permitted"), and crun refuses this machine's hybrid cgroup
# layout, so the first runtime of crun, runc that starts a container is used.
# Environment: WASM_CGI_IMAGE_RUNTIME=crun|runc to force one;
# WASM_CGI_IMAGE_MAX_START_MS (default 1000), the start-time bound.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
started_at="$(date +%s%N)"

say() { echo "test-image.sh: $*" >&2; }
ok() { echo "ok    $*"; }
fail() {
    echo "FAIL  $*" >&2
    exit 1
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

[ "$(id -u)" -eq 0 ] || fail "test-image.sh runs podman rootful and installs packages: run it as root"

# ---------------------------------------------------------------------------
# Tools.

apt_install() {
    say "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$@" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null; } \
        || fail "apt-get install $* failed"
}
missing=()
for tool in podman crun runc curl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/wasm-cgi-image.XXXXXX")"
tag="test-$$"
image="localhost/wasm-cgi:$tag"
modules_image="localhost/wasm-cgi-modules:$tag"
containers=()
images=()
volumes=()
runtime=""

# podman, minus the "unable to get systemd connection" errors it logs on
# every start and removal here (no systemd to run health-check timers; the
# health check is run by hand below).
pm() {
    local flags=()
    [ -z "$runtime" ] || flags=(--runtime "$runtime")
    podman "${flags[@]}" "$@" 2> >(grep -v 'systemd connection' >&2)
}

cleanup() {
    local status=$?
    set +e
    for c in "${containers[@]}"; do pm rm -f -t 0 "$c" >/dev/null 2>&1; done
    for v in "${volumes[@]}"; do pm volume rm -f "$v" >/dev/null 2>&1; done
    for i in "${images[@]}"; do
        pm image unmount "$i" >/dev/null 2>&1
        pm rmi -f "$i" >/dev/null 2>&1
    done
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT

# The flags every container runs with: the hardened run from
# docs/DEPLOYING.md, plus the limits this machine insists on.
machine_flags=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
hardened=(--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges)

# ---------------------------------------------------------------------------
# Build on the host what the Dockerfiles' builder stages would.

say "building the static binary"
binary="$(scripts/build-static.sh)"
say "building the example and test guests (wasm32-wasip1)"
cargo build --quiet --manifest-path guests/Cargo.toml --release --locked \
    --target wasm32-wasip1 -p wasm-cgi-examples -p wasm-cgi-test-programs
wasm="guests/target/wasm32-wasip1/release"

say "fetching Debian's static busybox (for the modules image)"
mkdir -p "$tmp/deb" && chmod 0755 "$tmp" "$tmp/deb"
(cd "$tmp/deb" && apt-get download -qq busybox-static >/dev/null 2>&1) \
    || { apt-get update -qq >/dev/null && (cd "$tmp/deb" && apt-get download -qq busybox-static >/dev/null 2>&1); } \
    || fail "apt-get download busybox-static failed"
dpkg-deb -x "$tmp"/deb/busybox-static_*.deb "$tmp/deb/x"

# build_from NAME FILE:DEST...: an image FROM scratch holding FILEs.
build_from() {
    local name="$1" context="$tmp/ctx-${1##*/}"
    shift
    mkdir -p "$context"
    echo "FROM scratch" >"$context/Containerfile"
    for pair in "$@"; do
        local file="${pair%%:*}" dest="${pair#*:}"
        mkdir -p "$context/files$(dirname "$dest")"
        cp "$file" "$context/files$dest"
    done
    echo "COPY files/ /" >>"$context/Containerfile"
    images+=("$name")
    pm build --quiet --layers=false --pull=never -f "$context/Containerfile" -t "$name" "$context" >/dev/null
}
build_from "localhost/wasm-cgi-build:$tag" \
    "$binary:/out/wasm-cgi" "$wasm/hello.wasm:/out/modules/hello.wasm"
build_from "localhost/wasm-cgi-modules-build:$tag" \
    "$wasm/hello.wasm:/modules/hello.wasm" "$wasm/log-analyzer.wasm:/modules/log-analyzer.wasm"
build_from "localhost/wasm-cgi-busybox:$tag" "$tmp/deb/x/bin/busybox:/bin/busybox"

# ---------------------------------------------------------------------------
# The image.

say "podman build -f deploy/Dockerfile (BUILD=localhost/wasm-cgi-build:$tag)"
images+=("$image")
build_started="$(date +%s%N)"
# --format docker: the OCI format has no HEALTHCHECK.
pm build --quiet --layers=false --format docker --pull=never \
    --ignorefile deploy/Dockerfile.dockerignore \
    --build-arg "BUILD=localhost/wasm-cgi-build:$tag" \
    -f deploy/Dockerfile -t "$image" . >/dev/null
ok "deploy/Dockerfile builds with podman, pulling nothing ($(ms_since "$build_started") ms)"

# The first runtime that starts a container here.
reasons=()
for candidate in ${WASM_CGI_IMAGE_RUNTIME:-crun runc}; do
    runtime="$candidate"
    if answer="$(pm run --rm "${machine_flags[@]}" "$image" --version 2>&1)"; then
        break
    fi
    reasons+=("$candidate: $(tail -n 1 <<<"$answer")")
    runtime=""
done
[ -n "$runtime" ] || fail "podman cannot run containers on this machine: ${reasons[*]}"
[ "${#reasons[@]}" -eq 0 ] || say "using $runtime (${reasons[*]})"
version="$(pm run --rm "${machine_flags[@]}" "$image" --version)"
ok "podman --runtime $runtime runs the image: $version"

size="$(pm image inspect --format '{{.Size}}' "$image")"
size_mb="$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1e6 }')"
[ "$size" -lt 40000000 ] || fail "the image is $size_mb MB uncompressed; it must stay under 40 MB"
ok "image size: $size_mb MB uncompressed ($size bytes; binary $(du -h "$binary" | cut -f1))"

config="$(pm image inspect --format '{{.Config.User}} | {{.Config.Entrypoint}} | {{.Config.Cmd}} | {{.Config.StopSignal}}' "$image")"
[ "$config" = "10001:10001 | [/usr/local/bin/wasm-cgi] | [serve] | SIGTERM" ] \
    || fail "image config: $config; want 10001:10001 | [/usr/local/bin/wasm-cgi] | [serve] | SIGTERM"
health="$(pm image inspect --format '{{.HealthCheck.Test}}' "$image")"
[[ "$health" == "[CMD /usr/local/bin/wasm-cgi probe "*"/healthz]" ]] \
    || fail "image HEALTHCHECK: $health; want [CMD /usr/local/bin/wasm-cgi probe ... /healthz]"
ok "image config: USER 10001:10001, ENTRYPOINT the binary, STOPSIGNAL SIGTERM, HEALTHCHECK $health"

# Its files: exactly these, all root's, none writable but by root, no setuid.
root_fs="$(pm image mount "$image")"
listing="$(cd "$root_fs" && find . -mindepth 1 -printf '%U:%G %m %p\n' | sort -k3)"
paths="$(awk '{ print $3 }' <<<"$listing" | tr '\n' ' ')"
want="./etc ./etc/group ./etc/passwd ./opt ./opt/wasm-cgi ./opt/wasm-cgi/www ./opt/wasm-cgi/www/cgi-bin ./opt/wasm-cgi/www/cgi-bin/modules ./opt/wasm-cgi/www/cgi-bin/modules/hello.wasm ./usr ./usr/local ./usr/local/bin ./usr/local/bin/wasm-cgi "
[ "$paths" = "$want" ] || fail "the image holds: $paths; want: $want"
bad="$(cd "$root_fs" && find . -mindepth 1 \( ! -uid 0 -o ! -gid 0 -o -perm /7022 \) -printf '%U:%G %m %p, ')"
pm image unmount "$image" >/dev/null
[ -z "$bad" ] || fail "in the image, not root's, writable by others or setuid: $bad"
ok "image files: $(wc -l <<<"$listing") entries, all 0:0, none group/other-writable or setuid; no shell"

# ---------------------------------------------------------------------------
# The hardened run, as docs/DEPLOYING.md gives it.

# get URL: the body, or fails with curl's reason; code URL: the status.
get() { curl -sS --max-time 10 --fail-with-body "$1"; }
code() { curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$1" || true; }

# start NAME FLAGS...: creates and starts a container of $image, sets
# $address (127.0.0.1:PORT, published; podman picks the port at the start),
# waits until hello.wasm answers and sets $start_ms: from `podman start` to
# that first answer.
start() {
    local name="$1"
    shift
    containers+=("$name")
    pm create --name "$name" -p 127.0.0.1::8080 "${hardened[@]}" "${machine_flags[@]}" \
        --stop-timeout 40 "$@" "$image" >/dev/null
    local began answer=""
    began="$(date +%s%N)"
    pm start "$name" >/dev/null
    address="$(pm port "$name" 8080)"
    for _ in $(seq 500); do
        answer="$(curl -s --max-time 1 "http://$address/cgi-bin/wasm-run.cgi/hello.wasm" || true)"
        [ "$answer" != "Hello Pinky!" ] || break
        sleep 0.01
    done
    start_ms="$(ms_since "$began")"
    if [ "$answer" != "Hello Pinky!" ]; then
        pm logs "$name" >&2 || true
        fail "$name: hello.wasm did not answer 'Hello Pinky!' within 5 s of the start (got: ${answer:-nothing})"
    fi
}

start wasm-cgi-test-$$
c1="wasm-cgi-test-$$"
first_start_ms="$start_ms"
max_start_ms="${WASM_CGI_IMAGE_MAX_START_MS:-1000}"
[ "$start_ms" -lt "$max_start_ms" ] \
    || fail "start to first answer took $start_ms ms; it must be under $max_start_ms ms"
ok "hello.wasm answers 'Hello Pinky!' on http://$address, $start_ms ms after podman start"
[ "$(code "http://$address/healthz")" = 200 ] || fail "GET /healthz did not answer 200"
[ "$(code "http://$address/readyz")" = 200 ] || fail "GET /readyz did not answer 200"

pid="$(pm inspect --format '{{.State.Pid}}' "$c1")"
exe="$(readlink "/proc/$pid/exe")"
ids="$(awk '/^Uid:|^Gid:/ { printf "%s %s %s %s ", $2, $3, $4, $5 }' "/proc/$pid/status")"
caps="$(awk '/^CapEff:|^CapPrm:|^CapBnd:/ { printf "%s ", $2 }' "/proc/$pid/status")"
nnp="$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$pid/status")"
[ "$exe" = /usr/local/bin/wasm-cgi ] || fail "the container's process is $exe, not /usr/local/bin/wasm-cgi"
[ "$ids" = "10001 10001 10001 10001 10001 10001 10001 10001 " ] || fail "the server runs as uid/gid $ids, want 10001"
[ "$caps" = "0000000000000000 0000000000000000 0000000000000000 " ] || fail "the server has capabilities: $caps"
[ "$nnp" = 1 ] || fail "no_new_privs is not set"
ok "the server is PID 1 /usr/local/bin/wasm-cgi, uid and gid 10001, no capabilities, no_new_privs"

root_mount="$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo")"
[[ "$root_mount" == ro* ]] || fail "the container's root is mounted $root_mount, not read-only"
modules=/opt/wasm-cgi/www/cgi-bin/modules
for dir in / /etc /usr/local/bin "$modules"; do
    if answer="$(pm exec "$c1" /usr/local/bin/wasm-cgi compile -o "$dir" "$modules/hello.wasm" 2>&1)"; then
        fail "uid 10001 could write $dir/hello.cwasm in the container"
    fi
    grep -q "Read-only file system" <<<"$answer" || fail "writing into $dir failed, but not as read-only: $answer"
done
pm exec "$c1" /usr/local/bin/wasm-cgi compile -o /tmp/cwasm "$modules/hello.wasm" >/dev/null \
    || fail "uid 10001 cannot write into the /tmp tmpfs"
ok "root filesystem read-only ($root_mount): writing into /, /etc, /usr/local/bin, the modules folder fails; /tmp is writable"

pm healthcheck run "$c1" >/dev/null || fail "podman healthcheck run $c1: unhealthy"
status="$(pm inspect --format '{{.State.Health.Status}}' "$c1")"
[ "$status" = healthy ] || fail "after podman healthcheck run, the health status is $status"
if answer="$(pm exec "$c1" /usr/local/bin/wasm-cgi probe /no-such-page 2>&1)"; then
    fail "wasm-cgi probe /no-such-page succeeded in the container"
fi
ok "podman healthcheck run: $status; wasm-cgi probe of a 404 fails: $answer"
pm rm -f -t 0 "$c1" >/dev/null

# ---------------------------------------------------------------------------
# A modules folder from the host, read-only at the classic path.

folder="$tmp/modules"
mkdir -p "$folder"
cp "$wasm/hello.wasm" "$wasm/sleep.wasm" "$folder/"
chmod 0755 "$folder" && chmod 0644 "$folder"/*.wasm
c2="wasm-cgi-test-folder-$$"
start "$c2" -v "$folder:$modules:ro"
[ "$(get "http://$address/cgi-bin/wasm-run.cgi/sleep.wasm?0")" = awake ] \
    || fail "sleep.wasm from the mounted folder did not answer"
ok "a modules folder mounted read-only at $modules is served (sleep.wasm, hello.wasm)"

added="$(date +%s%N)"
cp "$wasm/hello.wasm" "$folder/.added.tmp" && chmod 0644 "$folder/.added.tmp"
mv "$folder/.added.tmp" "$folder/added.wasm"
answer=""
for _ in $(seq 100); do
    answer="$(curl -s --max-time 1 "http://$address/cgi-bin/wasm-run.cgi/added.wasm" || true)"
    [ "$answer" != "Hello Pinky!" ] || break
    sleep 0.1
done
[ "$answer" = "Hello Pinky!" ] || fail "added.wasm, copied into the folder while running, was not served within 10 s"
ok "hot reload: a module added to the host folder answers $(ms_since "$added") ms later"

# A request that takes 3 s, in flight when SIGTERM arrives.
curl -sS --max-time 20 -o "$tmp/slow.body" -w '%{http_code}' \
    "http://$address/cgi-bin/wasm-run.cgi/sleep.wasm?3000" >"$tmp/slow.code" 2>"$tmp/slow.err" &
slow=$!
sleep 1
stop_began="$(date +%s%N)"
pm stop "$c2" >/dev/null
stop_ms="$(ms_since "$stop_began")"
wait "$slow" || fail "the slow request failed during the shutdown: $(cat "$tmp/slow.err")"
[ "$(cat "$tmp/slow.code")" = 200 ] && [ "$(cat "$tmp/slow.body")" = awake ] \
    || fail "the slow request got $(cat "$tmp/slow.code") $(cat "$tmp/slow.body"), want 200 awake"
exit_code="$(pm inspect --format '{{.State.ExitCode}}' "$c2")"
logs="$(pm logs "$c2" 2>&1)"
[ "$exit_code" = 0 ] || fail "after podman stop the container exited $exit_code, want 0; its log: $logs"
[ "$stop_ms" -lt 30000 ] || fail "podman stop took $stop_ms ms, past the 30 s shutdown grace"
grep -q "draining requests in flight" <<<"$logs" || fail "the server did not log its drain: $logs"
ok "podman stop (SIGTERM): the request in flight finished (200 awake), exit code 0 after $stop_ms ms"
pm rm -f -t 0 "$c2" >/dev/null

# ---------------------------------------------------------------------------
# The modules image, as the Kubernetes init container uses it.

say "podman build -f deploy/modules-image/Dockerfile (MODULES and BUSYBOX from the host)"
images+=("$modules_image")
pm build --quiet --layers=false --format docker --pull=never \
    --ignorefile deploy/modules-image/Dockerfile.dockerignore \
    --build-arg "MODULES=localhost/wasm-cgi-modules-build:$tag" \
    --build-arg "BUSYBOX=localhost/wasm-cgi-busybox:$tag" \
    -f deploy/modules-image/Dockerfile -t "$modules_image" . >/dev/null
user="$(pm image inspect --format '{{.Config.User}}' "$modules_image")"
[ "$user" = 10001:10001 ] || fail "the modules image runs as $user, want 10001:10001"

volume="wasm-cgi-test-modules-$$"
volumes+=("$volume")
pm volume create "$volume" >/dev/null
# :U gives the empty volume to the container's user, as fsGroup does in the pod.
copied="$(pm run --rm "${hardened[@]}" "${machine_flags[@]}" -v "$volume:/target:U" "$modules_image")" \
    || fail "the modules image's init command failed"
for name in hello.wasm log-analyzer.wasm; do
    grep -q " $name\$" <<<"$copied" || fail "the init container did not copy $name: $copied"
done
ok "the modules image (USER $user) copies hello.wasm and log-analyzer.wasm into an empty volume"

c3="wasm-cgi-test-volume-$$"
start "$c3" -v "$volume:$modules:ro"
[ "$(code "http://$address/cgi-bin/wasm-run.cgi/sleep.wasm")" = 404 ] \
    || fail "sleep.wasm is served, but it is not in the modules image"
report="$(code "http://$address/cgi-bin/wasm-run.cgi/log-analyzer.wasm")"
logs="$(pm logs "$c3" 2>&1)"
grep -q "cannot open /data/logs.json" <<<"$logs" \
    || fail "log-analyzer.wasm from the volume did not run (status $report): $logs"
ok "the server serves the volume's modules: hello.wasm answers, log-analyzer.wasm runs (no /data here: $report)"
pm rm -f -t 0 "$c3" >/dev/null

echo "test-image.sh: image $size_mb MB, start to first answer $first_start_ms ms, runtime $runtime; all checks passed in $(($(ms_since "$started_at") / 1000)) s"
