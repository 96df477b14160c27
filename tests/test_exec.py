"""`mrapsim exec`: a Python client reaches the local edge by MRAP ARN with the real names (issue 10,
must-show 6). The first test installs the package with `pip install` into a fresh virtual
environment and runs the README's command from there, with real aws-cli (SigV4A via awscrt)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, MrapsimProcess

REPO = Path(__file__).resolve().parents[1]
MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
AWS_DIR = Path(shutil.which("aws") or sys.executable).parent


def clean_env(**more: str) -> dict[str, str]:
    """No PYTHONPATH (the installed package, not the source tree), no AWS settings of the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MRAPSIM_")) and k != "PYTHONPATH"}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(more)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install .` of this tree into a new venv (dependencies from the system's site-packages,
    so only the build backend is fetched); returns the venv's bin directory."""
    where = tmp_path_factory.mktemp("installed")
    source = where / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "mrapsim", source / "mrapsim", ignore=shutil.ignore_patterns("__pycache__"))
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(source)],
        capture_output=True, text=True, timeout=240, env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    where_from = subprocess.run(
        [str(python), "-c", "import mrapsim.exec; print(mrapsim.exec.__file__)"],
        capture_output=True, text=True, check=True, env=clean_env(), cwd=where,
    ).stdout  # fmt: skip
    assert where_from.startswith(str(venv)), where_from
    return venv / "bin"


def mrapsim_exec(
    bin_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """The installed `mrapsim exec ...`, with aws-cli on PATH after the venv's own bin directory; run
    from the venv's directory, away from the source tree and its certs/."""
    return subprocess.run(
        [str(bin_dir / "mrapsim"), "exec", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=bin_dir.parent,
        env=env or clean_env(PATH=f"{bin_dir}:{AWS_DIR}:/usr/bin:/bin"),
    )


def readme_exec_commands() -> list[list[str]]:
    """The README's `mrapsim exec ... -- aws ...` lines, as argv lists."""
    text = (REPO / "README.md").read_text()
    return [shlex.split(line) for line in text.splitlines() if line.startswith("mrapsim exec ") and " aws " in line]


@pytest.mark.timeout(300)
def test_installed_exec_runs_the_readme_commands_by_mrap_arn_through_the_edge(
    installed: Path, mrapsim: MrapsimProcess, tmp_path: Path
) -> None:
    """The README's commands as written, from the installed package, against this server: its port
    for 8443 and its CA for certs/ca.pem."""
    commands = readme_exec_commands()
    assert [argv[argv.index("--") + 1 : argv.index("--") + 4] for argv in commands] == [
        ["aws", "s3", "ls"], ["aws", "s3", "cp"], ["aws", "s3", "cp"],
    ]  # fmt: skip
    env = clean_env(
        PATH=f"{installed}:{AWS_DIR}:/usr/bin:/bin", AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY
    )
    (tmp_path / "notes.txt").write_bytes(os.urandom(300_000))
    results = []
    for argv in commands:
        argv = [
            str(installed / "mrapsim") if a == "mrapsim" else
            f"127.0.0.1:{mrapsim.port('mrap')}" if a == "127.0.0.1:8443" else
            str(mrapsim.ca) if a == "certs/ca.pem" else a
            for a in argv
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env, cwd=tmp_path)
        assert result.returncode == 0, f"{argv}\n{result.stdout}\n{result.stderr}"
        results.append(result)
    listing, up, _ = results
    assert "hello.txt" in listing.stdout and "PRE data/" in listing.stdout
    assert "upload:" in up.stdout
    assert (tmp_path / "copy.txt").read_bytes() == (tmp_path / "notes.txt").read_bytes()

    # The edge saw the real name as SNI and served it; the requests went by MRAP addressing, SigV4A.
    record = mrapsim.wait_for_connection(listener="mrap", sni=MRAP_HOST)
    assert record["outcome"] == "forwarded" and record["requests"] >= 1
    served = mrapsim.wait_for_logs(
        lambda e: e.get("event") == "request" and e.get("key") == "notes.txt" and e.get("operation") == "GetObject"
    )
    assert served and served[0]["addressing"] == "mrap" and served[0]["status"] == 200
    put = [e for e in mrapsim.logs() if e.get("event") == "request" and e.get("operation") == "PutObject"]
    assert put and put[-1]["access_key"] == ACCESS_KEY and put[-1]["listener"] == "mrap"


def test_a_non_python_command_gets_the_recipe_and_exit_2(installed: Path) -> None:
    result = mrapsim_exec(installed, "--connect", "127.0.0.1:18443", "--", "curl", "https://example.amazonaws.com/")
    assert result.returncode == 2
    assert "curl is not a Python program" in result.stderr
    assert f"curl --connect-to ::127.0.0.1:18443 --cacert certs/ca.pem https://{MRAP_HOST}/" in result.stderr
    assert "/etc/hosts" in result.stderr and "--listen mrap=127.0.0.1:443" in result.stderr


def test_the_printed_curl_recipe_reaches_the_edge(installed: Path, mrapsim: MrapsimProcess) -> None:
    connect = f"127.0.0.1:{mrapsim.port('mrap')}"
    recipe = mrapsim_exec(installed, "--connect", connect, "--", "curl").stderr
    line = next(line.strip() for line in recipe.splitlines() if line.strip().startswith("curl --connect-to"))
    argv = [a.replace("certs/ca.pem", str(mrapsim.ca)) for a in shlex.split(line)]
    done = subprocess.run(
        [*argv, "-sS", "-o", os.devnull, "-w", "%{http_code} %{http_version}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.stdout == "403 1.1", done.stderr  # unsigned: AccessDenied, over the real name's TLS


def test_names_resolve_to_the_edge_only_for_amazonaws_and_port_443(installed: Path, tmp_path: Path) -> None:
    program = tmp_path / "show.py"
    program.write_text(
        "import socket\n"
        "def where(name, port):\n"
        "    return socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]\n"
        f"print(where('{MRAP_HOST}', 443), where('mraps3sample.s3.amazonaws.com', 'https'))\n"
        "print(where('s3.amazonaws.com', 80), where('localhost', 443))\n"
    )
    result = mrapsim_exec(installed, "--connect", "127.0.0.2:9443", "--", "python3", str(program))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "('127.0.0.2', 9443) ('127.0.0.2', 9443)",
        "('127.0.0.2', 80) ('127.0.0.1', 443)",
    ]
    # A script by path runs too, with the hint for missing credentials on stderr.
    by_path = mrapsim_exec(installed, "--connect", "127.0.0.2:9443", "--", str(program))
    assert by_path.stdout == result.stdout
    assert "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE" in by_path.stderr


def test_a_sitecustomize_already_on_the_path_still_runs(installed: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import os\nos.environ['THEIRS_RAN'] = 'yes'\n")
    env = clean_env(PATH=f"{installed}:/usr/bin:/bin", PYTHONPATH=str(theirs))
    result = mrapsim_exec(
        installed, "--", "python3", "-c", "import os, socket; print(os.environ.get('THEIRS_RAN'), "
        "socket.getaddrinfo('x.amazonaws.com', 443)[0][4][1])", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["yes", "8443"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "no command"),
        (("--", "no-such-program-here"), "command not found"),
        (("--connect", "nowhere", "--", "python3"), "--connect"),
        (("--ca-bundle", "/nonexistent/ca.pem", "--", "python3"), "no such file"),
    ],
)
def test_usage_errors(installed: Path, args: tuple[str, ...], words: str) -> None:
    result = mrapsim_exec(installed, *args)
    assert result.returncode in (2, 127) and words in result.stderr
