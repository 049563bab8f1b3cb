"""The README stays true: its configuration table and its two commands."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from stream_al.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def setting_names(model: type[BaseModel], prefix: str = "") -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= setting_names(annotation, f"{prefix}{name}.")
        else:
            names.add(prefix + name)
    return names


def test_the_configuration_table_lists_every_setting_and_no_other() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z_.]+)` \| `(STREAM_AL_[A-Z_]+)` \|", readme, re.MULTILINE)
    assert {name for name, _ in rows} == setting_names(Settings)
    for name, variable in rows:
        assert variable == "STREAM_AL_" + "__".join(part.upper() for part in name.split("."))


def test_ci_runs_the_test_command_the_readme_gives() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)
