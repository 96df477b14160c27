"""The repository's Dockerfile read with a real parser (dockerfile-parse), split into stages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

from tests.deploy.chart import REPO

DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[dict[str, Any]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]

    def last(self, instruction: str) -> str | None:
        values = self.all(instruction)
        return values[-1] if values else None

    def env(self) -> dict[str, str]:
        """ENV of this stage in order, `$VAR` references to earlier ones left as written."""
        found: dict[str, str] = {}
        for value in self.all("ENV"):
            found.update(parse_key_values(value))
        return found

    def exec_form(self, instruction: str) -> list[str] | None:
        value = self.last(instruction)
        if value is None:
            return None
        parsed = json.loads(value)
        assert isinstance(parsed, list), f"{instruction} is not in exec form: {value}"
        return [str(v) for v in parsed]


def parse_key_values(value: str) -> dict[str, str]:
    from dockerfile_parse.util import extract_key_values

    return dict(extract_key_values(env_replace=False, args={}, envs={}, instruction_value=value))


def parse(path: Path = DOCKERFILE) -> tuple[DockerfileParser, list[Stage], list[dict[str, Any]]]:
    """The parser, the stages in order, and the global instructions before the first FROM."""
    parser = DockerfileParser(path=str(path), env_replace=False)
    stages: list[Stage] = []
    preamble: list[dict[str, Any]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name, words[0]))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            preamble.append(instruction)
    return parser, stages, preamble
