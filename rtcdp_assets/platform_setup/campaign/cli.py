"""`rtcdp-campaign-setup`: print (or write) the Campaign setup as Markdown or JSON.

rtcdp-campaign-setup --out docs/campaign-setup.md
rtcdp-campaign-setup --format json --out docs/campaign-setup.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from resources.settings import PipelineSettings
from rtcdp_assets.platform_setup.campaign import campaign_setup
from rtcdp_assets.platform_setup.campaign.render import to_json, to_markdown


def render(fmt: str, settings: PipelineSettings | None = None) -> str:
    setup = campaign_setup(settings or PipelineSettings())
    return to_json(setup) if fmt == "json" else to_markdown(setup)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rtcdp-campaign-setup",
        description="The Campaign export and import workflows this platform expects.",
    )
    parser.add_argument("--format", choices=("md", "json"), default="md")
    parser.add_argument("--out", type=Path, help="write here instead of standard output")
    args = parser.parse_args(argv)
    text = render(args.format)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
