"""The Dockerfile, read with a real parser (dockerfile-parse), and its build stage executed.

There is no Docker engine here, so the build stage runs as a Docker builder would run it, in a
fake root directory: its ENV, WORKDIR and COPY (from the context that .dockerignore leaves), then
each RUN through `/bin/sh -c`. The runtime stage's COPY --from=build is that same directory; its
RUN (users, directories) needs root on a real image and is not executed. The resulting virtual
environment must run `mrapsim serve`, and the HEALTHCHECK command must pass against it.

Set MRAPSIM_SKIP_VENV_TEST=1 to skip the build (it downloads wheels from PyPI, ~15-40 s).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.deploy import dockerfile
from tests.deploy.chart import REPO, address_port, render
from tests.deploy.pod import free_port

RUNTIME_FORBIDDEN = (
    "pip install",
    "pip wheel",
    "apt-get install",
    "apk add",
    "gcc",
    "build-essential",
    "make ",
)


Parsed = tuple[list[dockerfile.Stage], list[dict[str, object]]]


@pytest.fixture(scope="module")
def parsed() -> Parsed:
    _, stages, preamble = dockerfile.parse()
    return stages, preamble


def embedded_defaults() -> dict[str, object]:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mrapsim")), "config"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    return tomllib.loads(result.stdout)


def test_multi_stage_with_the_base_image_as_a_build_argument(parsed: Parsed) -> None:
    stages, preamble = parsed
    args: dict[str, str] = {}
    for instruction in preamble:
        if instruction["instruction"] == "ARG":
            args.update(dockerfile.parse_key_values(str(instruction["value"])))
    assert args.get("PYTHON_IMAGE", "").startswith("python:3.1"), args
    assert len(stages) >= 2 and stages[0].name == "build"
    assert all(stage.base == "${PYTHON_IMAGE}" for stage in stages)
    version = re.match(r"python:(\d+)\.(\d+)", args["PYTHON_IMAGE"])
    assert version is not None
    major, minor = version.groups()
    with open(REPO / "pyproject.toml", "rb") as f:
        requires = tomllib.load(f)["project"]["requires-python"]
    assert (int(major), int(minor)) >= tuple(int(x) for x in requires.removeprefix(">=").split(".")[:2])


def test_runs_as_a_fixed_non_root_user_that_the_chart_also_uses(parsed: Parsed) -> None:
    stages, _ = parsed
    user = stages[-1].last("USER")
    assert user is not None and re.fullmatch(r"\d+:\d+", user), "a numeric UID:GID lets runAsNonRoot verify it"
    uid, gid = (int(x) for x in user.split(":"))
    assert uid >= 10000 and gid >= 10000
    pod = render({}).deployment["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (uid, gid)


def test_entrypoint_cmd_expose_and_healthcheck(parsed: Parsed) -> None:
    stages, _ = parsed
    runtime = stages[-1]
    assert runtime.exec_form("ENTRYPOINT") == ["mrapsim"]
    assert runtime.exec_form("CMD") == ["serve"]
    exposed = {int(p.split("/")[0]) for value in runtime.all("EXPOSE") for p in value.split()}
    listeners = embedded_defaults()["listeners"]
    assert isinstance(listeners, dict)
    wanted = {address_port(listener["address"]) for listener in listeners.values()}
    wanted.add(address_port(runtime.env()["MRAPSIM_ADMIN"]))
    assert exposed == wanted
    assert runtime.env()["MRAPSIM_ADMIN"].startswith("0.0.0.0:")
    healthcheck = runtime.last("HEALTHCHECK")
    assert healthcheck is not None and "/healthz" in healthcheck
    assert healthcheck_argv(runtime)[0] == "python", "exec form, no shell and no curl needed"


def test_final_image_installs_and_builds_nothing(parsed: Parsed) -> None:
    stages, _ = parsed
    build, runtime = stages[0], stages[-1]
    for command in runtime.all("RUN"):
        for word in RUNTIME_FORBIDDEN:
            assert word not in command, f"runtime stage runs {word!r}"
    copies = runtime.all("COPY") + runtime.all("ADD")
    venv = build.env()["VENV"]
    assert copies == [f"--from=build {venv} {venv}"], "only the virtual environment reaches the final image"
    assert build.env().get("PIP_NO_CACHE_DIR") == "1"
    assert any("--without-pip" in command for command in build.all("RUN"))
    assert runtime.env()["PATH"].startswith(f"{venv}/bin:")


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `**` any number of directories, `*` and `?` within one name."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def context_files() -> set[str]:
    """The build context as Docker computes it from .dockerignore: the last matching rule wins,
    and a rule matching a directory covers everything below it."""
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), dockerignore_regex(line.removeprefix("!").strip("/"))))

    def excluded(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for negate, regex in rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                result = not negate
        return result

    return {
        path.relative_to(REPO).as_posix()
        for path in REPO.rglob("*")
        if path.is_file() and not excluded(path.relative_to(REPO).as_posix())
    }


def test_dockerignore_keeps_only_what_the_wheel_is_built_from() -> None:
    files = context_files()
    assert {"pyproject.toml", "README.md", "mrapsim/__init__.py", "mrapsim/cli.py"} <= files
    assert all(f in ("pyproject.toml", "README.md") or f.startswith("mrapsim/") for f in files), sorted(files)
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    package = {p.relative_to(REPO).as_posix() for p in (REPO / "mrapsim").rglob("*.py")}
    assert package <= files


def healthcheck_argv(stage: dockerfile.Stage) -> list[str]:
    value = stage.last("HEALTHCHECK")
    assert value is not None
    _, _, command = value.partition("CMD")
    argv = json.loads(command.strip())
    assert isinstance(argv, list)
    return [str(a) for a in argv]


@pytest.mark.skipif(os.environ.get("MRAPSIM_SKIP_VENV_TEST") == "1", reason="MRAPSIM_SKIP_VENV_TEST=1")
@pytest.mark.timeout(300)
def test_build_stage_produces_a_venv_that_serves(tmp_path: Path, parsed: Parsed) -> None:
    stages, _ = parsed
    root = tmp_path / "root"  # stands for / in the image
    root.mkdir()
    context = tmp_path / "context"
    for name in context_files():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, context / name)

    def inside(path: str, workdir: Path) -> Path:
        return root / path.lstrip("/") if path.startswith("/") else workdir / path

    build = stages[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MRAPSIM_")}
    workdir = root
    for instruction in build.instructions:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "ENV":
            for key, raw in dockerfile.parse_key_values(value).items():
                env[key] = str(inside(raw, workdir)) if raw.startswith("/") else raw
        elif kind == "WORKDIR":
            workdir = inside(value, workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        elif kind == "COPY":
            *sources, destination = shlex.split(value)
            target = inside(destination, workdir)
            for source in sources:
                origin = context / source.rstrip("/")
                if origin.is_dir():
                    shutil.copytree(
                        origin,
                        target if destination.endswith("/") and source.endswith("/") else target / origin.name,
                        dirs_exist_ok=True,
                    )
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif kind == "RUN":
            # The image's pip keeps no cache; here the cache only saves downloads between runs.
            run_env = {k: v for k, v in env.items() if k != "PIP_NO_CACHE_DIR"}
            result = subprocess.run(
                ["/bin/sh", "-c", value],
                cwd=workdir,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert result.returncode == 0, f"RUN {value}\n{result.stdout}\n{result.stderr}"

    venv = Path(env["VENV"])
    version = subprocess.run([str(venv / "bin" / "mrapsim"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("mrapsim ")
    site = list(venv.glob("lib/python*/site-packages/mrapsim/__init__.py"))
    assert site, "mrapsim is installed into the venv, not linked to the source tree"
    assert not list(venv.glob("bin/pip*")), "no pip in the final environment"

    # The runtime stage: its ENV and WORKDIR over the copied environment; ports moved to loopback.
    runtime = stages[-1]
    state = inside(runtime.last("WORKDIR") or "/", root)
    state.mkdir(parents=True, exist_ok=True)
    run_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    for key, raw in runtime.env().items():
        if key != "PATH":
            run_env[key] = str(inside(raw, state)) if raw.startswith("/") else raw
    Path(run_env["MRAPSIM_CONFIG"]).parent.mkdir(parents=True, exist_ok=True)
    Path(run_env["MRAPSIM_CONFIG"]).write_text("# the image's placeholder\n")
    admin_port = free_port()
    run_env["MRAPSIM_ADMIN"] = f"127.0.0.1:{admin_port}"
    run_env["MRAPSIM_LISTEN"] = f"mrap=127.0.0.1:{free_port()},s3=127.0.0.1:{free_port()}"
    argv = [
        str(venv / "bin" / (runtime.exec_form("ENTRYPOINT") or [])[0]),
        *(runtime.exec_form("CMD") or []),
    ]
    server = subprocess.Popen(argv, cwd=state, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        check = healthcheck_argv(runtime)
        deadline = time.monotonic() + 20
        while True:
            result = subprocess.run(check, env=run_env, capture_output=True, text=True, timeout=10)
            if result.returncode == 0:
                break
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.2)
        # No certificates were mounted: mrapsim created them in the volume (./certs).
        assert (state / "certs" / "ca.pem").is_file() and (state / "certs" / "server.pem").is_file()
    finally:
        server.terminate()
        server.wait(15)
    assert server.returncode == 0
