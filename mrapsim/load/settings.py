"""Where `mrapsim load`'s settings come from, as Locust does it: the command line beats an
environment variable, which beats a configuration file, which beats the built-in default.

- Environment: `MRAPSIM_LOAD_<OPTION>` (`MRAPSIM_LOAD_USERS=20`, `MRAPSIM_LOAD_RUN_TIME=1m`,
  `MRAPSIM_LOAD_HOST=https://…`), like Locust's `LOCUST_<OPTION>`; a list (thresholds, stages)
  is separated by `;`. Keys: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, region `AWS_REGION`.
- File: `--config FILE` (or `MRAPSIM_LOAD_CONFIG`), else `./mrapsim-load.conf` when it exists.
  Locust's format — `option = value` per line, the long option's name without `--`, `#`
  comments, lists as repeated lines or `[a, b]` — or TOML (`*.toml`: the `[tool.mrapsim-load]`
  table when there is one, the whole file otherwise).

Command-line defaults are `None` (see cli.py), so "not given" is visible here.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_FILE = "mrapsim-load.conf"
ENV_PREFIX = "MRAPSIM_LOAD_"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not true or false")


def _list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        return [v.strip().strip("'\"") for v in text.split(",") if v.strip()]
    return [v.strip() for v in text.split(";") if v.strip()]


# dest → (converter, default). Aliases below map Locust's and k6's names onto these.
OPTIONS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "target": (str, None),
    "connect": (str, None),
    "users": (int, 10),
    "spawn_rate": (float, 0.0),
    "duration": (str, None),
    "requests": (int, None),
    "scenario": (str, "mixed"),
    "user_class": (str, None),
    "rate": (float, None),
    "stages": (_list, []),
    "proxy": (str, None),
    "ca_bundle": (str, None),
    "certs_dir": (str, None),
    "insecure": (_bool, False),
    "access_key": (str, None),
    "secret_key": (str, None),
    "region": (str, "us-east-1"),
    "sigv4a": (_bool, False),
    "handshake_timeout": (str, "5s"),
    "timeout": (str, "10s"),
    "stop_timeout": (str, None),
    "processes": (int, 1),
    "key_prefix": (str, "mrapsim-load/"),
    "seed": (int, None),
    "interval": (float, 2.0),
    "quiet": (_bool, False),
    "only_summary": (_bool, False),
    "headless": (_bool, False),
    "server_metrics": (str, None),
    "web": (str, None),
    "csv": (str, None),
    "csv_full_history": (_bool, False),
    "html": (str, None),
    "json": (str, None),
    "threshold": (_list, []),
}
ALIASES = {
    "host": "target",
    "run_time": "duration",
    "locustfile": "scenario",
    "stage": "stages",
    "thresholds": "threshold",
    "web_host": "web",
}
# Where the AWS tools keep the same settings.
AWS_ENVIRONMENT = {
    "access_key": ("AWS_ACCESS_KEY_ID",),
    "secret_key": ("AWS_SECRET_ACCESS_KEY",),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
}


def canonical(key: str) -> str:
    name = key.strip().lstrip("-").replace("-", "_").lower()
    return ALIASES.get(name, name)


def read_file(path: Path) -> dict[str, Any]:
    """A configuration file's settings by dest; ValueError names the file and the line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"--config: cannot read {path}: {exc.strerror or exc}") from None
    raw: dict[str, Any] = {}
    if path.suffix == ".toml":
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: {exc}") from None
        tool = document.get("tool", {})
        raw = dict(tool.get("mrapsim-load", document) if isinstance(tool, dict) else document)
        raw.pop("tool", None)
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line[0] in "#;[":
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"{path}:{number}: write 'option = value'")
            name = canonical(key)
            value = value.strip()
            if OPTIONS.get(name, (None,))[0] is _list and name in raw:
                raw[name] = [*_list(raw[name]), *_list(value)]
            else:
                raw[name] = value
    settings = {}
    for key, value in raw.items():
        name = canonical(key)
        if name not in OPTIONS:
            raise ValueError(f"{path}: unknown option {key!r}")
        settings[name] = value
    return settings


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG":
            name = canonical(key[len(ENV_PREFIX) :])
            if name not in OPTIONS:
                raise ValueError(f"{key}: no such option (see mrapsim load --help)")
            found[name] = value
    for name, variables in AWS_ENVIRONMENT.items():
        if name not in found:
            aws = next((environ[v] for v in variables if environ.get(v)), None)
            if aws is not None:
                found[name] = aws
    return found


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Fill what the command line left unset from the environment, the file, the defaults.
    Idempotent; ValueError names the setting that is wrong."""
    if getattr(args, "settings_resolved", False):
        return args
    environ = os.environ if environ is None else environ
    config: str | None = getattr(args, "config", None) or environ.get(ENV_PREFIX + "CONFIG")
    file_settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config:
        file_settings = read_file(Path(config))
    elif Path(DEFAULT_FILE).is_file():
        file_settings = read_file(Path(DEFAULT_FILE))
        config = DEFAULT_FILE
    env_settings = from_environment(environ)
    for name, (convert, default) in OPTIONS.items():
        if getattr(args, name, None) not in (None, []):
            sources[name] = "command line"
            continue
        for source, settings in (("environment", env_settings), (config or "", file_settings)):
            if name in settings:
                try:
                    setattr(args, name, convert(settings[name]))
                except ValueError as exc:
                    raise ValueError(f"{name.replace('_', '-')} (from {source}): {exc}") from None
                sources[name] = source
                break
        else:
            setattr(args, name, [] if default == [] else default)
    args.settings_sources = sources
    args.settings_resolved = True
    return args
