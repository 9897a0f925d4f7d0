"""Checks the deployment files under deploy/ without Docker or a cluster.

Run through deploy/validate.sh, which installs the dependencies
(kubernetes-validate, dockerfile-parse, PyYAML) into a venv first:

    deploy/validate.sh                # from any folder
    deploy/validate.sh --root DIR     # check a copy of the repo at DIR

Prints one line per check (`ok`, `FAIL` or `skip`), then a closing
`validate: N passed, N failed, N skipped` line; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from dockerfile_parse import DockerfileParser
from kubernetes_validate import utils as kube

# The Kubernetes versions whose schemas every manifest must pass (strict:
# unknown fields are errors). Override with KUBERNETES_VERSIONS="1.34 1.37".
DEFAULT_KUBERNETES_VERSIONS = ["1.33.0", "1.37.0"]

# What the image and the manifests must agree on.
APP_UID = 10001
APP_PORT = 8080
# The only program in the image (FROM scratch): every exec in the pod's
# wasm-cgi container must run it.
IMAGE_BINARY = "/usr/local/bin/wasm-cgi"
INSTALL_DIR = "/opt/wasm-cgi"
MODULES_DIR = f"{INSTALL_DIR}/www/cgi-bin/modules"
WWW_DIR = f"{INSTALL_DIR}/www"
DEFAULT_SHUTDOWN_GRACE = 30.0  # seconds, wasm-cgi's --shutdown-grace default

# The config file's schema (src/config/mod.rs, src/limits.rs): every table's
# known keys. Anything else makes `wasm-cgi serve` refuse to start.
TOP_KEYS = {"listen", "modules", "www", "mode", "limits", "route"}
LIMIT_KEYS = {
    "timeout",
    "max_memory",
    "fuel",
    "max_body",
    "max_output",
    "max_concurrency",
    "queue_timeout",
}
ROUTE_KEYS = {
    "path",
    "module",
    "mode",
    "entrypoint",
    "args",
    "env",
    "dirs",
    "limits",
    "pass_authorization",
    "unverified_remote_user",
    "query_args",
    "allowed_hosts",
}
DIR_KEYS = {"host", "guest", "read_only"}
MODES = {"simple", "cgi"}
DURATION_KEYS = {"timeout", "queue_timeout"}
SIZE_KEYS = {"max_memory", "max_body", "max_output"}
COUNT_KEYS = {"fuel", "max_concurrency"}

# humantime durations as wasm-cgi reads them ("500ms", "30s", "1m 30s").
DURATION_UNITS = {
    "ns": 1e-9, "nsec": 1e-9, "us": 1e-6, "usec": 1e-6, "µs": 1e-6,
    "ms": 1e-3, "msec": 1e-3, "millis": 1e-3,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
SIZE_RE = re.compile(r"^\d+(\.\d+)?\s*([kmgtpe]i?b?|b)?$", re.IGNORECASE)


def parse_duration(text: str) -> float | None:
    """Seconds in a humantime duration, or None if it is not one."""
    parts = re.findall(r"(\d+)\s*([a-zµ]+)", text.strip())
    if not parts or re.sub(r"\s+", "", text) != "".join(n + u for n, u in parts):
        return None
    total = 0.0
    for number, unit in parts:
        if unit not in DURATION_UNITS:
            return None
        total += int(number) * DURATION_UNITS[unit]
    return total


# ---------------------------------------------------------------------------
# Reporting


@dataclass
class Report:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    def ok(self, name: str, detail: str = "") -> None:
        self.passed += 1
        print(f"ok    {name}" + (f": {detail}" if detail else ""), flush=True)

    def fail(self, name: str, detail: str) -> None:
        self.failed += 1
        self.failures.append(name)
        print(f"FAIL  {name}: {detail}", flush=True)

    def skip(self, name: str, why: str) -> None:
        self.skipped += 1
        print(f"skip  {name}: {why}", flush=True)

    def check(self, name: str, problems: list[str], detail: str = "") -> bool:
        """ok if `problems` is empty, else one FAIL naming them all."""
        if problems:
            self.fail(name, "; ".join(problems))
            return False
        self.ok(name, detail)
        return True


class Context:
    def __init__(self, root: Path, report: Report):
        self.root = root
        self.report = report
        self.deploy = root / "deploy"
        self.kube_dir = self.deploy / "kubernetes"
        self.manifests: dict[str, list[dict[str, Any]]] = {}  # file -> docs
        self.image_user: str | None = None
        self.image_port: int | None = None

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def resources(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (name, doc)
            for name, docs in self.manifests.items()
            for doc in docs
            if doc.get("kind") == kind
        ]


def guarded(report: Report, name: str, fn: Callable[[], None]) -> None:
    """Runs one group of checks; an unexpected error is a failure, not a crash."""
    try:
        fn()
    except Exception as error:  # noqa: BLE001 - reported, never swallowed
        report.fail(name, f"{type(error).__name__}: {error}")


# ---------------------------------------------------------------------------
# Dockerfiles


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[dict[str, Any]]

    def all(self, instruction: str) -> list[dict[str, Any]]:
        return [i for i in self.instructions if i["instruction"] == instruction]

    def last(self, instruction: str) -> dict[str, Any] | None:
        found = self.all(instruction)
        return found[-1] if found else None


def stages_of(path: Path) -> list[Stage]:
    parser = DockerfileParser(path=str(path), env_replace=False)
    stages: list[Stage] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, []))
        elif instruction["instruction"] != "COMMENT" and stages:
            stages[-1].instructions.append(instruction)
    return stages


def global_args(path: Path) -> dict[str, str]:
    """The ARGs before the first FROM (usable in FROM lines), with defaults."""
    parser = DockerfileParser(path=str(path), env_replace=False)
    found: dict[str, str] = {}
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            break
        if instruction["instruction"] == "ARG":
            name, _, default = instruction["value"].strip().partition("=")
            found[name.strip()] = default.strip().strip('"')
    return found


def exec_form(value: str) -> list[str] | None:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD, if it is one."""
    value = value.strip()
    if not value.startswith("["):
        return None
    try:
        words = json.loads(value)
    except json.JSONDecodeError:
        return None
    return words if isinstance(words, list) else None


def copy_sources(instruction: dict[str, Any]) -> tuple[list[str], bool]:
    """(sources, from_context) of a COPY/ADD."""
    value = instruction["value"].strip()
    flags: list[str] = []
    while value.startswith("--"):
        flag, _, value = value.partition(" ")
        flags.append(flag)
        value = value.lstrip()
    words = exec_form(value)
    if words is None:
        words = shlex.split(value)
    from_context = not any(f.startswith("--from=") for f in flags)
    return words[:-1], from_context


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        words = shlex.split(instruction["value"])
        if len(words) >= 2 and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])  # legacy `ENV NAME value`
            continue
        for word in words:
            name, _, value = word.partition("=")
            env[name] = value
    return env


def dockerignore_rules(path: Path) -> list[tuple[bool, re.Pattern[str], str]]:
    """(exclude?, regex, pattern) per line of a .dockerignore file."""
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
                if pattern.startswith("/", i):
                    regex = regex[:-2] + "(.*/)?"
                    i += 1
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((exclude, re.compile(f"^{regex}$"), line))
    return rules


def ignored_by(rules: list[tuple[bool, re.Pattern[str], str]], path: str) -> str | None:
    """The pattern that excludes `path` (or one of its parent folders), if any."""
    parts = path.strip("/").split("/")
    excluded_by = None
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        for exclude, regex, line in rules:
            if regex.match(prefix):
                excluded_by = line if exclude else None
        if excluded_by:
            return excluded_by
    return None


def check_context_copies(ctx: Context, dockerfile: Path, stages: list[Stage]) -> None:
    """Every COPY/ADD source from the build context (the repo root) exists
    and is not excluded by <Dockerfile>.dockerignore."""
    report, rel = ctx.report, ctx.rel(dockerfile)
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    rules = dockerignore_rules(ignore_file) if ignore_file.is_file() else []
    problems, checked = [], []
    for stage in stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            sources, from_context = copy_sources(instruction)
            if not from_context:
                continue
            for source in sources:
                where = f"line {instruction['startline'] + 1}"
                if re.match(r"^[a-z]+://", source) or source.startswith("git@"):
                    continue
                if "$" in source:
                    problems.append(f"{where}: {source!r} uses a variable; cannot check it")
                    continue
                clean = os.path.normpath(source.lstrip("/"))
                if clean == ".." or clean.startswith("../"):
                    problems.append(f"{where}: {source!r} is outside the build context")
                    continue
                matches = glob.glob(str(ctx.root / clean))
                if not matches:
                    problems.append(f"{where}: {source!r} does not exist in the repo")
                    continue
                pattern = ignored_by(rules, clean)
                if pattern:
                    problems.append(
                        f"{where}: {source!r} is excluded by {ctx.rel(ignore_file)} ({pattern!r})"
                    )
                    continue
                checked.append(clean)
    report.check(
        f"{rel}: every COPY source exists in the build context (repo root)",
        problems,
        f"{len(checked)} paths: {' '.join(checked)}",
    )
    # The ignore file itself: present, keeping target/ and .git out.
    name = f"{ctx.rel(ignore_file)} keeps target/ and .git out of the context"
    if not ignore_file.is_file():
        report.fail(name, "missing (BuildKit reads <Dockerfile>.dockerignore)")
    else:
        missing = [p for p in ("target", ".git", "guests/target") if not ignored_by(rules, p)]
        report.check(name, [f"{p} is not excluded" for p in missing])


def check_main_dockerfile(ctx: Context) -> None:
    report = ctx.report
    path = ctx.deploy / "Dockerfile"
    rel = ctx.rel(path)
    if not path.is_file():
        report.fail(f"{rel} exists", "missing")
        return
    stages = stages_of(path)
    if not report.check(
        f"{rel} parses as a multi-stage build",
        [] if len(stages) >= 2 else [f"{len(stages)} stage(s); want a builder and a runtime"],
        " -> ".join(f"{s.base}" + (f" AS {s.name}" if s.name else "") for s in stages),
    ):
        return
    final = stages[-1]

    problems = []
    if final.base != "scratch":
        problems.append(f"the runtime stage is FROM {final.base}; want FROM scratch (a static binary, no shell)")
    if final.all("RUN"):
        problems.append("the runtime stage has RUN steps: FROM scratch has no shell to run them")
    args = global_args(path)
    names = {s.name for s in stages if s.name}
    copied_from = {
        flag.split("=", 1)[1]
        for i in final.all("COPY")
        for flag in i["value"].split()
        if flag.startswith("--from=")
    }
    substitutable = [
        s for s in stages[:-1]
        if s.name in copied_from and re.fullmatch(r"\$\{?(\w+)\}?", s.base)
        and args.get(re.fullmatch(r"\$\{?(\w+)\}?", s.base).group(1)) in names
    ]
    if not substitutable:
        problems.append(
            "the runtime copies the binary from no `FROM ${ARG} AS ...` stage whose ARG defaults to "
            "the builder stage (CI substitutes an image holding the binary it built)"
        )
    report.check(
        f"{rel}: runtime FROM scratch, no RUN; the builder is an ARG",
        problems,
        ", ".join(f"{s.name} = FROM {s.base} (default {args.get(s.base.strip('${}'))})" for s in substitutable),
    )

    user = final.last("USER")
    problems = []
    if user is None:
        problems.append("the runtime stage has no USER: it would run as root")
    else:
        ctx.image_user = user["value"].strip()
        uid = ctx.image_user.split(":")[0]
        if uid != str(APP_UID):
            problems.append(f"USER {ctx.image_user}; want the numeric uid {APP_UID}")
    report.check(f"{rel}: runs as non-root USER {APP_UID}", problems, ctx.image_user or "")

    exposed = [p.split("/")[0] for i in final.all("EXPOSE") for p in i["value"].split()]
    if str(APP_PORT) in exposed:
        ctx.image_port = APP_PORT
    report.check(
        f"{rel}: EXPOSE {APP_PORT}",
        [] if str(APP_PORT) in exposed else [f"exposes {exposed or 'nothing'}"],
    )

    health = final.last("HEALTHCHECK")
    problems = []
    if health is None or health["value"].strip().upper() == "NONE":
        problems.append("no HEALTHCHECK in the runtime stage")
    elif "/healthz" not in health["value"]:
        problems.append(f"HEALTHCHECK does not probe /healthz: {health['value']}")
    else:
        command = exec_form(health["value"].split("CMD", 1)[1]) or []
        entry = final.last("ENTRYPOINT")
        binary = (exec_form(entry["value"]) or [None])[0] if entry else None
        if command[:2] != [binary, "probe"]:
            problems.append(
                f"HEALTHCHECK runs {command}; want the exec form [\"{binary}\", \"probe\", ...] "
                "(the image has no shell)"
            )
    report.check(f"{rel}: HEALTHCHECK is `wasm-cgi probe` on /healthz", problems)

    stop = final.last("STOPSIGNAL")
    entry = final.last("ENTRYPOINT")
    cmd = final.last("CMD")
    problems = []
    if stop is None or stop["value"].strip() not in ("SIGTERM", "15"):
        problems.append("STOPSIGNAL SIGTERM missing")
    entry_words = exec_form(entry["value"]) if entry else None
    if not entry_words or not entry_words[0].endswith("/wasm-cgi"):
        problems.append("ENTRYPOINT must be the wasm-cgi binary, in exec form")
    cmd_words = exec_form(cmd["value"]) if cmd else None
    if not cmd_words or cmd_words[0] != "serve":
        problems.append('CMD must be ["serve", ...] in exec form')
    report.check(f"{rel}: STOPSIGNAL SIGTERM, ENTRYPOINT the binary, CMD [\"serve\"]", problems)

    env = env_of(final)
    problems = []
    if env.get("INSTALL_DIR") != INSTALL_DIR:
        problems.append(f"INSTALL_DIR={env.get('INSTALL_DIR')!r}, want {INSTALL_DIR}")
    if env.get("PORT") != str(APP_PORT):
        problems.append(f"PORT={env.get('PORT')!r}, want {APP_PORT}")
    cache = env.get("WASMTIME_CACHE_DIR", "")
    if not cache.startswith("/tmp/"):
        problems.append(f"WASMTIME_CACHE_DIR={cache!r}: must be under /tmp (read-only root)")
    makes_dirs = any(MODULES_DIR in i["value"] for i in final.all("RUN") + final.all("COPY"))
    if not makes_dirs:
        problems.append(f"nothing creates {MODULES_DIR}")
    report.check(
        f"{rel}: classic layout, writable paths only under /tmp",
        problems,
        f"INSTALL_DIR={env.get('INSTALL_DIR')} PORT={env.get('PORT')} WASMTIME_CACHE_DIR={cache}",
    )

    build_script = ctx.root / "scripts" / "build-static.sh"
    problems = []
    if not any("scripts/build-static.sh" in i["value"] for s in stages[:-1] for i in s.all("RUN")):
        problems.append("no builder stage runs scripts/build-static.sh")
    if not build_script.is_file():
        problems.append("scripts/build-static.sh is missing")
    elif "cargo build --release --locked --target" not in build_script.read_text():
        problems.append("scripts/build-static.sh does not run `cargo build --release --locked --target ...`")
    report.check(
        f"{rel}: the builder runs scripts/build-static.sh (`cargo build --release --locked`, musl)",
        problems,
    )
    check_context_copies(ctx, path, stages)

    for script in (build_script, ctx.deploy / "test-image.sh"):
        problems = []
        if not script.is_file():
            problems.append("missing")
        else:
            if not os.access(script, os.X_OK):
                problems.append("not executable")
            syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            if syntax.returncode != 0:
                problems.append(syntax.stderr.strip())
        report.check(f"{ctx.rel(script)}: executable, bash syntax ok", problems)


def check_modules_dockerfile(ctx: Context) -> None:
    report = ctx.report
    path = ctx.deploy / "modules-image" / "Dockerfile"
    rel = ctx.rel(path)
    if not path.is_file():
        report.fail(f"{rel} exists", "missing")
        return
    stages = stages_of(path)
    final = stages[-1] if stages else None
    problems = []
    if final is None:
        problems.append("no FROM")
    else:
        user = final.last("USER")
        if user is None or user["value"].split(":")[0].strip() in ("0", "root"):
            problems.append("the final stage must set a non-root USER")
        copies = " ".join(i["value"] for i in final.all("COPY"))
        if "/modules/" not in copies:
            problems.append("the final stage copies nothing to /modules/")
        if "/bin/busybox" not in copies:
            problems.append("the final stage has no /bin/busybox for the init container's cp")
    report.check(f"{rel}: parses; non-root; /modules and a cp for the init container", problems)
    if stages:
        check_context_copies(ctx, path, stages)


# ---------------------------------------------------------------------------
# Kubernetes


def load_manifests(ctx: Context) -> None:
    report = ctx.report
    files = sorted(p for p in ctx.kube_dir.glob("*.y*ml") if p.name != "kustomization.yaml")
    for path in files:
        rel = ctx.rel(path)
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as error:
            report.fail(f"{rel}: YAML parses", str(error).replace("\n", " "))
            continue
        bad = [d for d in docs if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d]
        if not docs or bad:
            report.fail(f"{rel}: YAML parses", "not a Kubernetes object (kind, apiVersion)")
            continue
        ctx.manifests[rel] = docs


def check_schemas(ctx: Context, versions: list[str]) -> None:
    report = ctx.report
    bundled = kube.all_versions()
    for version in versions:
        if kube.major_minor(version) not in {kube.major_minor(v) for v in bundled}:
            report.fail(
                f"Kubernetes {version} schemas",
                f"not bundled by kubernetes-validate (has {bundled[0]}..{bundled[-1]})",
            )
            continue
        for rel, docs in ctx.manifests.items():
            problems, names = [], []
            for doc in docs:
                name = f"{doc['kind']}/{doc.get('metadata', {}).get('name', '?')}"
                names.append(name)
                try:
                    kube.validate(doc, version, strict=True)
                except kube.ValidationError as error:
                    where = ".".join(str(p) for p in error.path) or "(top)"
                    problems.append(f"{name}: {where}: {error.message}")
                except kube.SchemaNotFoundError as error:
                    problems.append(f"{name}: {error.message}")
            report.check(
                f"{rel}: valid against the Kubernetes {kube.major_minor(version)} schema (strict)",
                problems,
                ", ".join(names),
            )


def check_kustomization(ctx: Context) -> None:
    report = ctx.report
    path = ctx.kube_dir / "kustomization.yaml"
    rel = ctx.rel(path)
    if not path.is_file():
        report.fail(f"{rel} exists", "missing")
        return
    data = yaml.safe_load(path.read_text()) or {}
    problems = []
    if data.get("kind") != "Kustomization":
        problems.append("kind is not Kustomization")
    listed = data.get("resources") or []
    for resource in listed:
        if not (ctx.kube_dir / resource).exists():
            problems.append(f"resource {resource} does not exist")
    on_disk = {Path(r).name for r in ctx.manifests} | {
        p.name for p in ctx.kube_dir.glob("*.y*ml") if p.name != "kustomization.yaml"
    }
    for name in sorted(on_disk - set(listed)):
        problems.append(f"{name} is not listed in resources")
    images = {i["image"].rsplit(":", 1)[0] for _, d in ctx.resources("Deployment") for i in pod_containers(d, init=True)}
    for entry in data.get("images") or []:
        if entry.get("name") not in images:
            problems.append(f"images: {entry.get('name')} is no container's image")
    report.check(f"{rel}: lists every manifest; images match", problems, " ".join(listed))

    kubectl = shutil.which("kubectl")
    name = f"{rel}: `kubectl kustomize` renders it"
    if kubectl is None:
        report.skip(name, "kubectl not installed (optional)")
        return
    done = subprocess.run(
        [kubectl, "kustomize", str(ctx.kube_dir)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        report.fail(name, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    else:
        kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout) if d]
        report.ok(name, ", ".join(kinds))


def pod_containers(deployment: dict[str, Any], init: bool = False) -> list[dict[str, Any]]:
    spec = deployment.get("spec", {}).get("template", {}).get("spec", {})
    found = list(spec.get("containers") or [])
    if init:
        found += spec.get("initContainers") or []
    return found


def app_container(deployment: dict[str, Any]) -> dict[str, Any] | None:
    containers = pod_containers(deployment)
    for container in containers:
        if container.get("name") == "wasm-cgi":
            return container
    return containers[0] if containers else None


def arg_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def check_deployment(ctx: Context) -> None:
    report = ctx.report
    deployments = ctx.resources("Deployment")
    if len(deployments) != 1:
        report.fail("one wasm-cgi Deployment", f"found {len(deployments)}")
        return
    rel, deployment = deployments[0]
    spec = deployment.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    container = app_container(deployment)
    if container is None:
        report.fail(f"{rel}: has a wasm-cgi container", "no containers")
        return
    replicas = spec.get("replicas", 1)
    report.check(
        f"{rel}: at least 2 replicas",
        [] if isinstance(replicas, int) and replicas >= 2 else [f"replicas: {replicas!r}"],
        str(replicas),
    )

    # Probes: httpGet, or an exec of `wasm-cgi probe URL` (the image's
    # HEALTHCHECK; the image has no other program).
    problems = []
    for probe, want in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", None)):
        got = container.get(probe)
        if not got:
            problems.append(f"no {probe}")
            continue
        path = got.get("httpGet", {}).get("path")
        command = [str(c) for c in (got.get("exec") or {}).get("command") or []]
        if command:
            if command[:2] != [IMAGE_BINARY, "probe"]:
                problems.append(f"{probe} runs {command}; want [{IMAGE_BINARY}, probe, URL]")
                continue
            match = re.match(r"^(?:http://[^/]+)?(/[^?]*)", command[-1])
            path = match.group(1) if match else None
        if want and path != want:
            problems.append(f"{probe} probes {path!r}, want {want}")
        elif path not in ("/healthz", "/readyz"):
            problems.append(f"{probe} probes {path!r}, not /healthz or /readyz")
    report.check(f"{rel}: liveness /healthz, readiness /readyz, a startup probe", problems)

    # Ports agree with the image.
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    problems = []
    if APP_PORT not in ports.values():
        problems.append(f"no containerPort {APP_PORT}")
    env = {e["name"]: e.get("value") for e in container.get("env") or [] if "name" in e}
    if "PORT" in env and env["PORT"] != str(APP_PORT):
        problems.append(f"PORT={env['PORT']} differs from containerPort {APP_PORT}")
    if ctx.image_port is not None and ctx.image_port != APP_PORT:
        problems.append(f"the image exposes {ctx.image_port}")
    report.check(f"{rel}: containerPort {APP_PORT} matches the image's EXPOSE and PORT", problems)

    # Resources on every container, init containers too.
    problems = []
    for c in pod_containers(deployment, init=True):
        resources = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if what not in (resources.get(kind) or {}):
                    problems.append(f"{c.get('name')}: no {kind}.{what}")
    report.check(f"{rel}: resource requests and limits on every container", problems)

    # Security: the pod and every container.
    pod_sc = pod.get("securityContext") or {}
    problems = []
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    for c in pod_containers(deployment, init=True):
        sc = c.get("securityContext") or {}
        name = c.get("name")
        merged = {**pod_sc, **sc}
        if merged.get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if merged.get("runAsUser") != APP_UID:
            problems.append(f"{name}: runAsUser {merged.get('runAsUser')}, want {APP_UID}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities.drop lacks ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append(f"{name}: adds capabilities")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
    if ctx.image_user and ctx.image_user.split(":")[0] != str(APP_UID):
        problems.append(f"the image's USER {ctx.image_user} differs from runAsUser {APP_UID}")
    report.check(
        f"{rel}: non-root {APP_UID}, read-only root, no privilege escalation, "
        "capabilities dropped, seccomp RuntimeDefault",
        problems,
    )

    # Writable /tmp (the compile cache), nothing else writable.
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts") or []}
    problems = []
    tmp = mounts.get("/tmp")
    if tmp is None or "emptyDir" not in volumes.get(tmp["name"], {}):
        problems.append("/tmp is not an emptyDir")
    cache = env.get("WASMTIME_CACHE_DIR")
    if cache is not None and not cache.startswith("/tmp/"):
        problems.append(f"WASMTIME_CACHE_DIR={cache} is not under /tmp")
    for path, mount in mounts.items():
        if path != "/tmp" and not mount.get("readOnly"):
            problems.append(f"{path} is mounted writable")
    report.check(f"{rel}: /tmp is an emptyDir; every other mount read-only", problems)

    # Modules reach every replica: an init container fills the modules folder.
    problems = []
    modules = mounts.get(MODULES_DIR)
    if modules is None:
        problems.append(f"nothing is mounted at {MODULES_DIR}")
    else:
        volume = volumes.get(modules["name"], {})
        if "emptyDir" in volume:
            fillers = [
                c.get("name")
                for c in pod.get("initContainers") or []
                if any(m["name"] == modules["name"] for m in c.get("volumeMounts") or [])
            ]
            if not fillers:
                problems.append(f"the {modules['name']} emptyDir is filled by no init container")
        elif "configMap" not in volume and "image" not in volume:
            problems.append(f"{MODULES_DIR} comes from an unexpected volume: {sorted(volume)}")
    report.check(f"{rel}: the modules folder is filled for every replica", problems)

    # Logs and graceful shutdown.
    args = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    problems = []
    if arg_value(args, "--log-format") != "json":
        problems.append("args lack --log-format json")
    grace_text = arg_value(args, "--shutdown-grace")
    grace = DEFAULT_SHUTDOWN_GRACE if grace_text is None else parse_duration(grace_text)
    if grace is None:
        problems.append(f"--shutdown-grace {grace_text!r} is not a duration")
        grace = DEFAULT_SHUTDOWN_GRACE
    pre_stop = 0.0
    pre_stop_hook = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop_hook:
        pre_stop = float(pre_stop_hook["sleep"].get("seconds", 0))
    execs = [
        (f"{name}.exec", [str(c) for c in (hook.get("exec") or {}).get("command") or []])
        for name, hook in [(p, container.get(p) or {}) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        + [(f"lifecycle.{h}", v or {}) for h, v in (container.get("lifecycle") or {}).items()]
    ]
    for where, command in execs:
        if command and command[0] != IMAGE_BINARY:
            problems.append(f"{where} runs {command[0]}: the image (FROM scratch) has only {IMAGE_BINARY}")
    termination = pod.get("terminationGracePeriodSeconds", 30)
    if not isinstance(termination, (int, float)) or termination <= grace + pre_stop:
        problems.append(
            f"terminationGracePeriodSeconds {termination} is not above the preStop pause "
            f"({pre_stop:g}s) + --shutdown-grace ({grace:g}s)"
        )
    report.check(
        f"{rel}: --log-format json; terminationGracePeriodSeconds > preStop + --shutdown-grace; "
        f"exec hooks run only {IMAGE_BINARY}",
        problems,
        f"{termination}s > {pre_stop:g}s + {grace:g}s",
    )

    # The config file comes from the ConfigMap.
    problems = []
    config_path = env.get("WASM_CGI_CONFIG") or arg_value(args, "--config")
    configmaps = {d["metadata"]["name"]: d for _, d in ctx.resources("ConfigMap")}
    if not config_path:
        problems.append("no WASM_CGI_CONFIG (or --config)")
    else:
        source = configmap_file(config_path, mounts, volumes, configmaps)
        if source is None:
            problems.append(f"{config_path} is not a key of a mounted ConfigMap")
    report.check(f"{rel}: WASM_CGI_CONFIG is a file of a mounted ConfigMap", problems, config_path or "")

    # Labels: the Service, HPA and PDB find these pods.
    labels = spec.get("template", {}).get("metadata", {}).get("labels") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    problems = [f"selector {k}={v} not in the pod labels" for k, v in selector.items() if labels.get(k) != v]
    for srel, service in ctx.resources("Service"):
        s = service.get("spec", {})
        for k, v in (s.get("selector") or {}).items():
            if labels.get(k) != v:
                problems.append(f"{srel}: selector {k}={v} matches no pod label")
        for port in s.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            resolved = ports.get(target) if isinstance(target, str) else target
            if resolved != APP_PORT:
                problems.append(f"{srel}: port {port.get('port')} -> {target} is not containerPort {APP_PORT}")
    for hrel, hpa in ctx.resources("HorizontalPodAutoscaler"):
        h = hpa.get("spec", {})
        ref = h.get("scaleTargetRef") or {}
        if ref.get("kind") != "Deployment" or ref.get("name") != deployment["metadata"]["name"]:
            problems.append(f"{hrel}: scaleTargetRef is not this Deployment")
        if not any((m.get("resource") or {}).get("name") == "cpu" for m in h.get("metrics") or []):
            problems.append(f"{hrel}: no CPU metric")
        if h.get("minReplicas", 1) < 2:
            problems.append(f"{hrel}: minReplicas below 2")
        if "cpu" not in ((container.get("resources") or {}).get("requests") or {}):
            problems.append(f"{hrel}: CPU utilization needs a CPU request on the container")
    for prel, pdb in ctx.resources("PodDisruptionBudget"):
        for k, v in ((pdb.get("spec", {}).get("selector") or {}).get("matchLabels") or {}).items():
            if labels.get(k) != v:
                problems.append(f"{prel}: selector {k}={v} matches no pod label")
    report.check(
        "Service, HPA and PDB select the Deployment's pods; Service 80 -> 8080",
        problems,
    )

    # /metrics is not public: it has a port of its own, which no Service
    # targets (the Service check above allows only the app port).
    problems = []
    metrics_listen = arg_value(args, "--metrics-listen")
    if not metrics_listen:
        problems.append("no --metrics-listen: /metrics would be served on the public port")
    else:
        metrics_port = metrics_listen.rsplit(":", 1)[-1]
        if not metrics_port.isdigit() or int(metrics_port) not in ports.values():
            problems.append(f"--metrics-listen {metrics_listen}: its port is not a containerPort")
        elif int(metrics_port) == APP_PORT:
            problems.append(f"--metrics-listen {metrics_listen} is the public port")
    report.check(f"{rel}: /metrics on a port of its own, which no Service exposes", problems, metrics_listen or "")


def configmap_file(
    path: str,
    mounts: dict[str, dict[str, Any]],
    volumes: dict[str, dict[str, Any]],
    configmaps: dict[str, dict[str, Any]],
) -> tuple[str, str] | None:
    """(ConfigMap name, key) that a mounted ConfigMap volume puts at `path`."""
    for mount_path, mount in mounts.items():
        prefix = mount_path.rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        inner = path[len(prefix):]
        volume = volumes.get(mount["name"], {}).get("configMap")
        if volume is None or volume.get("name") not in configmaps:
            continue
        data = configmaps[volume["name"]].get("data") or {}
        items = volume.get("items")
        if items:
            for item in items:
                if item.get("path") == inner and item.get("key") in data:
                    return volume["name"], item["key"]
        elif inner in data:
            return volume["name"], inner
    return None


# ---------------------------------------------------------------------------
# The config file in the ConfigMap


def unknown_keys(table: dict[str, Any], known: set[str], where: str) -> list[str]:
    return [f"{where}: unknown key `{key}`" for key in table if key not in known]


def limit_problems(limits: Any, where: str) -> list[str]:
    if not isinstance(limits, dict):
        return [f"{where} must be a table"]
    problems = unknown_keys(limits, LIMIT_KEYS, where)
    for key, value in limits.items():
        if key in DURATION_KEYS and (not isinstance(value, str) or parse_duration(value) is None):
            problems.append(f"{where}.{key} = {value!r} is not a duration (500ms, 2s, 1m)")
        if key in SIZE_KEYS and not (
            (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
            or (isinstance(value, str) and SIZE_RE.match(value.strip()))
        ):
            problems.append(f"{where}.{key} = {value!r} is not a size (512KiB, 1MiB, bytes)")
        if key in COUNT_KEYS and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            problems.append(f"{where}.{key} = {value!r} is not a positive integer")
    return problems


def check_config(ctx: Context) -> None:
    report = ctx.report
    deployments = ctx.resources("Deployment")
    configmaps = ctx.resources("ConfigMap")
    tomls = [
        (rel, cm["metadata"]["name"], key, text)
        for rel, cm in configmaps
        for key, text in (cm.get("data") or {}).items()
        if key.endswith(".toml")
    ]
    if not tomls:
        report.fail("the ConfigMap holds a wasm-cgi TOML config", "no *.toml key in any ConfigMap")
        return
    # What exists inside the pod: the image's layout plus the volume mounts.
    pod_paths = {INSTALL_DIR, WWW_DIR, MODULES_DIR, "/tmp"}
    if deployments:
        container = app_container(deployments[0][1])
        for mount in (container or {}).get("volumeMounts") or []:
            pod_paths.add(mount["mountPath"].rstrip("/"))
    shipped = sorted(
        p.stem + ".wasm" for p in (ctx.root / "guests" / "examples" / "src" / "bin").glob("*.rs")
    )

    for rel, cm_name, key, text in tomls:
        where = f"{rel} ({cm_name}, key {key})"
        try:
            config = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            report.fail(f"{where}: TOML parses", str(error))
            continue
        report.ok(f"{where}: TOML parses")

        problems = unknown_keys(config, TOP_KEYS, "top level")
        if "mode" in config and config["mode"] not in MODES:
            problems.append(f"mode = {config['mode']!r}, want simple or cgi")
        if "listen" in config and not re.match(r"^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d+$", str(config["listen"])):
            problems.append(f"listen = {config['listen']!r} is not IP:PORT")
        problems += limit_problems(config.get("limits", {}), "[limits]")
        routes = config.get("route", [])
        if not isinstance(routes, list):
            problems.append("route must be an array of tables ([[route]])")
            routes = []
        seen: set[str] = set()
        for index, route in enumerate(routes):
            here = f"route {index + 1} ({route.get('path', '?')})"
            problems += unknown_keys(route, ROUTE_KEYS, here)
            for required in ("path", "module"):
                if required not in route:
                    problems.append(f"{here}: `{required}` is required")
            path = route.get("path", "")
            if not isinstance(path, str) or not path.startswith("/"):
                problems.append(f"{here}: path must start with /")
            elif path in seen:
                problems.append(f"{here}: path {path} is defined twice")
            seen.add(path)
            module = route.get("module", "")
            if not isinstance(module, str) or not module.endswith(".wasm") or re.search(r"[/\\]", module):
                problems.append(f"{here}: module must be a .wasm file name")
            if "mode" in route and route["mode"] not in MODES:
                problems.append(f"{here}: mode = {route['mode']!r}, want simple or cgi")
            if not isinstance(route.get("args", []), list) or not all(
                isinstance(a, str) for a in route.get("args", [])
            ):
                problems.append(f"{here}: args must be a list of strings")
            env = route.get("env", {})
            if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
                problems.append(f"{here}: env must be a table of strings")
            for flag in ("pass_authorization", "unverified_remote_user", "query_args"):
                if flag in route and not isinstance(route[flag], bool):
                    problems.append(f"{here}: {flag} must be true or false")
            if "entrypoint" in route and not route["entrypoint"]:
                problems.append(f"{here}: entrypoint must name an exported function")
            for d, entry in enumerate(route.get("dirs", [])):
                if not isinstance(entry, dict):
                    problems.append(f"{here}: dirs[{d}] must be a table")
                    continue
                problems += unknown_keys(entry, DIR_KEYS, f"{here}: dirs[{d}]")
                if "host" not in entry or "guest" not in entry:
                    problems.append(f"{here}: dirs[{d}] needs host and guest")
                if not str(entry.get("guest", "")).startswith("/"):
                    problems.append(f"{here}: dirs[{d}].guest must start with /")
                if "read_only" in entry and not isinstance(entry["read_only"], bool):
                    problems.append(f"{here}: dirs[{d}].read_only must be true or false")
            if "limits" in route:
                problems += limit_problems(route["limits"], f"{here} [route.limits]")
        report.check(
            f"{where}: only known keys, valid values",
            problems,
            f"{len(routes)} routes: {', '.join(str(r.get('path')) for r in routes)}",
        )

        # Folders it names must exist in the pod, or `serve` refuses to start.
        problems = []
        folders = [(k, config[k]) for k in ("modules", "www") if k in config]
        folders += [
            (f"route {r.get('path')} dirs.host", d.get("host"))
            for r in routes
            for d in r.get("dirs", [])
            if isinstance(d, dict)
        ]
        for what, folder in folders:
            folder = str(folder)
            if not folder.startswith("/"):
                problems.append(f"{what} = {folder!r} is relative (to the config's folder); use an absolute path")
            elif folder.rstrip("/") not in pod_paths:
                problems.append(f"{what} = {folder} is neither in the image nor a volume mount")
        report.check(f"{where}: every folder it names exists in the pod", problems)

        missing = [r.get("module") for r in routes if r.get("module") not in shipped]
        report.check(
            f"{where}: every route's module is built by deploy/modules-image/Dockerfile",
            [f"{m} is not one of {', '.join(shipped)}" for m in missing],
        )


# ---------------------------------------------------------------------------
# systemd


def check_systemd(ctx: Context) -> None:
    report = ctx.report
    path = ctx.deploy / "systemd" / "wasm-cgi.service"
    rel = ctx.rel(path)
    if not path.is_file():
        report.fail(f"{rel} exists", "missing")
        return
    # Repeated keys (Environment=) are legal in unit files: keep them all.
    values: dict[str, list[str]] = {}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section is None or "=" not in line:
            report.fail(f"{rel}: parses", f"stray line {line!r}")
            return
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key.strip()}", []).append(value.strip())

    def one(key: str) -> str | None:
        found = values.get(key)
        return found[-1] if found else None

    problems = []
    exec_start = one("Service.ExecStart") or ""
    words = shlex.split(exec_start)
    if not words or not words[0].endswith("/wasm-cgi") or "serve" not in words:
        problems.append(f"ExecStart={exec_start!r} does not run `wasm-cgi serve`")
    grace_text = arg_value(words, "--shutdown-grace")
    grace = DEFAULT_SHUTDOWN_GRACE if grace_text is None else parse_duration(grace_text) or 0
    stop = parse_duration(one("Service.TimeoutStopSec") or "90s")
    if stop is None or stop <= grace:
        problems.append(f"TimeoutStopSec={one('Service.TimeoutStopSec')} is not above --shutdown-grace ({grace:g}s)")
    if one("Service.KillSignal") not in ("SIGTERM", None):
        problems.append(f"KillSignal={one('Service.KillSignal')}, want SIGTERM")
    if "PORT=8080" not in " ".join(values.get("Service.Environment", [])):
        problems.append("no Environment=PORT=8080")
    if one("Service.DynamicUser") != "yes" and not one("Service.User"):
        problems.append("neither DynamicUser=yes nor a User=")
    for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes")):
        if one(f"Service.{key}") != want and not (key != "ProtectSystem" and one("Service.DynamicUser") == "yes"):
            problems.append(f"{key}={one(f'Service.{key}')}, want {want}")
    if one("Service.MemoryDenyWriteExecute") == "yes":
        problems.append("MemoryDenyWriteExecute=yes stops Wasmtime from running compiled code")
    if not one("Install.WantedBy"):
        problems.append("no [Install] WantedBy=")
    report.check(
        f"{rel}: runs `serve`, SIGTERM, TimeoutStopSec > grace, hardened",
        problems,
        f"TimeoutStopSec={one('Service.TimeoutStopSec')} > {grace:g}s",
    )

    analyze = shutil.which("systemd-analyze")
    name = f"{rel}: `systemd-analyze verify`"
    if analyze is None:
        report.skip(name, "systemd-analyze not installed (optional)")
        report.skip(f"{rel}: `systemd-analyze security` exposure", "systemd-analyze not installed (optional)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # verify insists that ExecStart exists: point it at a stand-in binary.
        stand_in = Path(tmp) / "wasm-cgi"
        stand_in.write_text("#!/bin/sh\nexit 0\n")
        stand_in.chmod(0o755)
        unit = Path(tmp) / path.name
        unit.write_text(path.read_text().replace(words[0], str(stand_in)) if words else path.read_text())
        done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        lines = [
            line.strip()
            for line in (done.stdout + done.stderr).splitlines()
            if path.name in line or str(stand_in) in line
        ]
        if done.returncode != 0 or lines:
            report.fail(name, " | ".join(lines) or f"exit {done.returncode}")
        else:
            report.ok(name)

        name = f"{rel}: `systemd-analyze security` exposure at most 3.0"
        done = subprocess.run(
            [analyze, "security", "--offline=true", "--no-pager", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        match = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
        if match is None:
            report.skip(name, "this systemd-analyze has no offline security check")
        elif float(match.group(1)) > 3.0:
            report.fail(name, f"exposure {match.group(1)}")
        else:
            report.ok(name, f"exposure {match.group(1)}")


# ---------------------------------------------------------------------------
# docs


def check_docs(ctx: Context) -> None:
    report = ctx.report
    path = ctx.root / "docs" / "DEPLOYING.md"
    rel = ctx.rel(path)
    if not path.is_file():
        report.fail(f"{rel} exists", "missing")
        return
    text = path.read_text()
    named = sorted(set(re.findall(r"\bdeploy/[\w./-]*[\w]", text)))
    missing = [p for p in named if not (ctx.root / p).exists()]
    report.check(
        f"{rel}: every deploy/ path it names exists",
        [f"{p} does not exist" for p in missing],
        f"{len(named)} paths",
    )


# ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    root = args.root.resolve()
    versions = os.environ.get("KUBERNETES_VERSIONS", "").split() or DEFAULT_KUBERNETES_VERSIONS

    report = Report()
    ctx = Context(root, report)
    print(f"validating the deployment files in {root}", flush=True)
    print(
        f"kubernetes-validate {kube.__version__} (schemas {kube.all_versions()[0]}..{kube.latest_version()}); "
        f"checking against {', '.join(versions)}",
        flush=True,
    )
    guarded(report, "deploy/Dockerfile", lambda: check_main_dockerfile(ctx))
    guarded(report, "deploy/modules-image/Dockerfile", lambda: check_modules_dockerfile(ctx))
    guarded(report, "deploy/kubernetes manifests", lambda: load_manifests(ctx))
    guarded(report, "Kubernetes schemas", lambda: check_schemas(ctx, versions))
    guarded(report, "kustomization", lambda: check_kustomization(ctx))
    guarded(report, "Deployment", lambda: check_deployment(ctx))
    guarded(report, "ConfigMap config", lambda: check_config(ctx))
    guarded(report, "systemd unit", lambda: check_systemd(ctx))
    guarded(report, "docs/DEPLOYING.md", lambda: check_docs(ctx))

    print(f"validate: {report.passed} passed, {report.failed} failed, {report.skipped} skipped")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
