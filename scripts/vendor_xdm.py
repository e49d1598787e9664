"""Vendor the XDM files the conformance validator and its tests need.

Two copies, both unchanged and at the adobe/xdm tree's relative paths, each with the tree's
LICENSE and a README naming the source:

* ``rtcdp_assets/shared/xdm_schemas/``: the closure of
  ``rtcdp_assets.shared.xdm_conformance.catalog.VENDORED_ROOTS`` (every ``$ref`` and
  ``meta:extends``, transitively). Files of an earlier run that are no longer in the closure
  are removed, so the folder stays as small as the closure.
* ``tests/shared/xdm_examples/``: Adobe's example instances (and the few extra schemas) the
  tests read. The files already there are the list to refresh; ``--add-example`` adds one.

Usage (from the repository root; the source is an adobe/xdm checkout, never read by default)::

    python scripts/vendor_xdm.py --source PATH/TO/xdm [--add-example RELATIVE/PATH ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # Runnable as a plain script without installing the project.
    sys.path.insert(0, str(REPO_ROOT))

from rtcdp_assets.shared.xdm_conformance.catalog import (  # noqa: E402 - needs sys.path above
    VENDORED_ROOT,
    VENDORED_ROOTS,
    schema_closure,
)

SOURCE_REPOSITORY = "adobe/xdm"
SOURCE_COMMIT = "4a4fc5f8dd175cd81f2419b85130a6fc25053890"
EXAMPLES_ROOT = REPO_ROOT / "tests" / "shared" / "xdm_examples"
_NOT_VENDORED = frozenset({"LICENSE", "README.md"})


def readme(roots: tuple[str, ...], files: list[str]) -> str:
    root_lines = "\n".join(f"- `{root}`" for root in roots)
    return f"""# Vendored XDM schemas

Files used by `rtcdp_assets/shared/xdm_conformance/` to check records against the official
Experience Data Model.

- Source: the public repository {SOURCE_REPOSITORY}, commit {SOURCE_COMMIT}.
- License: Creative Commons Attribution 4.0 International (CC BY 4.0), see `LICENSE` in this
  folder. Copyright Adobe; the files carry their own `meta:license` notice.
- Changes: none. The {len(files)} schema files are copied unchanged, at the same relative paths
  as in the source tree. The validator converts them to the Experience Platform dataset form in
  memory when it loads them.
- Selection: the closure (every `$ref` and `meta:extends`, transitively) of the roots below,
  which is `VENDORED_ROOTS` in `rtcdp_assets/shared/xdm_conformance/catalog.py`. Regenerate with
  `python scripts/vendor_xdm.py` after changing that list; do not edit files here by hand.

Roots:

{root_lines}
"""


def vendor(source: Path, dest: Path) -> list[str]:
    """Copy the closure into ``dest``; returns the copied paths, relative to ``source``."""
    closure = schema_closure(source.resolve(), VENDORED_ROOTS)
    files = sorted(path.relative_to(source.resolve()).as_posix() for path in closure.values())
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.rglob("*.schema.json"):
        if stale.relative_to(dest).as_posix() not in files:
            stale.unlink()
    for directory in sorted((p for p in dest.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()
    for relative in files:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target)
    shutil.copyfile(source / "LICENSE", dest / "LICENSE")
    (dest / "README.md").write_text(readme(VENDORED_ROOTS, files), encoding="utf-8")
    return files


def examples_readme(files: list[str]) -> str:
    return f"""# Vendored XDM examples

Adobe's own example instances (and {sum(f.endswith(".schema.json") for f in files)} schema
outside the validator's closure) that `tests/shared/test_xdm_conformance.py` reads.

- Source: the public repository {SOURCE_REPOSITORY}, commit {SOURCE_COMMIT}.
- License: Creative Commons Attribution 4.0 International (CC BY 4.0), see `LICENSE` in this
  folder. Copyright Adobe.
- Changes: none. The {len(files)} files are copied unchanged, at the same relative paths as in
  the source tree. Refresh them with `python scripts/vendor_xdm.py --source <adobe/xdm>`; do not
  edit files here by hand.
"""


def vendor_examples(source: Path, dest: Path, added: list[str]) -> list[str]:
    """Refresh the files already in ``dest`` (plus ``added``) from ``source``."""
    present = [
        path.relative_to(dest).as_posix()
        for path in dest.rglob("*")
        if path.is_file() and path.name not in _NOT_VENDORED
    ]
    files = sorted({*present, *added})
    for relative in files:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target)
    shutil.copyfile(source / "LICENSE", dest / "LICENSE")
    (dest / "README.md").write_text(examples_readme(files), encoding="utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="adobe/xdm checkout")
    parser.add_argument("--dest", type=Path, default=VENDORED_ROOT, help="vendored schemas")
    parser.add_argument(
        "--examples", type=Path, default=EXAMPLES_ROOT, help="vendored test examples"
    )
    parser.add_argument(
        "--add-example", action="append", default=[], help="path in the tree to add to examples"
    )
    args = parser.parse_args(argv)
    files = vendor(args.source, args.dest)
    print(f"vendored {len(files)} schema files from {args.source} into {args.dest}")
    examples = vendor_examples(args.source, args.examples, args.add_example)
    print(f"vendored {len(examples)} example files from {args.source} into {args.examples}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
