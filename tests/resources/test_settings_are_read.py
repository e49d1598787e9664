"""Every setting a user can set is read by the code: a declared setting that nothing reads
promises a behaviour the pipeline does not have (a reviewer found `campaign_import_subfolder`,
described as the audience files' import subfolder, which no upload used)."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pydantic

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_MODULES = sorted(p.stem for p in (ROOT / "resources").glob("*settings.py"))
CODE = ("rtcdp_assets", "asset_checks", "resources")


def declared_settings() -> list[tuple[str, str]]:
    out = []
    for stem in SETTINGS_MODULES:
        module = importlib.import_module(f"resources.{stem}")
        for name, cls in vars(module).items():
            if (
                inspect.isclass(cls)
                and issubclass(cls, pydantic.BaseModel)
                and cls.__module__ == module.__name__
            ):
                out.extend((name, field) for field in cls.model_fields)
    return out


def test_every_declared_setting_is_read_somewhere():
    source = "\n".join(
        path.read_text(encoding="utf-8") for top in CODE for path in (ROOT / top).rglob("*.py")
    )
    settings = declared_settings()
    assert len(settings) > 100  # the settings modules were found
    unread = [f"{cls}.{field}" for cls, field in settings if not re.search(rf"\.{field}\b", source)]
    assert unread == []
