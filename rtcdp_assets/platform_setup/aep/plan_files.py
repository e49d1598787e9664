"""A plan as files: one JSON file per request, named in apply order, plus `summary.md`.

`NN_<kind>_<name>.json` holds the service, method, path, body, the lookup that finds an
existing object and a description; `apply` reads them back in file-name order. Nothing in a
plan is secret or personal: credentials are `{{env:NAME}}` placeholders.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from resources.settings import PipelineSettings
from rtcdp_assets.platform_setup.aep.api_requests import ApiRequest, plan_requests
from rtcdp_assets.platform_setup.aep.blueprint import AepBlueprint, LandingSource, build_blueprint
from rtcdp_assets.platform_setup.aep.summary import summary_markdown

REQUEST_FILE = re.compile(r"^\d{2,}_[A-Za-z0-9_.:-]+\.json$")
SUMMARY_FILE = "summary.md"


def plan_documents(blueprint: AepBlueprint) -> dict[str, str]:
    """File name -> text of every file of the plan."""
    requests = plan_requests(blueprint)
    width = max(2, len(str(len(requests))))
    files: dict[str, str] = {}
    for step, request in enumerate(requests, start=1):
        name = f"{step:0{width}d}_{request.file_stem}.json"
        files[name] = json.dumps({"step": step, **request.to_json()}, indent=2) + "\n"
    files[SUMMARY_FILE] = summary_markdown(blueprint, requests)
    return files


def build_plan(settings: PipelineSettings, landing: LandingSource) -> dict[str, str]:
    return plan_documents(build_blueprint(settings, landing))


def write_plan(files: dict[str, str], out: Path) -> list[Path]:
    """Write the plan into `out`; request files of an earlier plan there are replaced, so the
    folder holds exactly one plan."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if REQUEST_FILE.match(old.name) and old.name not in files:
            old.unlink()  # a stale request of an older plan: apply must not send it
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def read_plan(folder: Path) -> list[ApiRequest]:
    names = sorted(p.name for p in folder.iterdir() if REQUEST_FILE.match(p.name))
    if not names:
        raise FileNotFoundError(f"no request files (NN_<kind>_<name>.json) in {folder}")
    requests = []
    for name in names:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
        data.pop("step", None)
        requests.append(ApiRequest.from_json(data))
    return requests
