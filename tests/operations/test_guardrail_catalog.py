"""The guardrail catalog in the docs is generated from the code and cannot drift from it."""

from __future__ import annotations

from pathlib import Path

from asset_checks.catalog import guardrails, render

REPO = Path(__file__).resolve().parents[2]


def test_docs_catalog_matches_the_check_definitions(monkeypatch, tmp_path):
    monkeypatch.setenv("RTCDP_DATA_DIR", str(tmp_path))
    from rtcdp_assets.definitions import defs

    rows = guardrails(defs)
    graph = defs.resolve_asset_graph()
    # every check defined in code is in the catalog, once
    assert {(r.asset, r.check) for r in rows} == {
        (k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys
    }
    assert len(rows) == len(graph.asset_check_keys)
    # every guardrail says where it comes from and what its limit is
    assert [r for r in rows if not r.source or not r.limit] == []
    assert (REPO / "docs" / "guardrails.md").read_text() == render(rows), (
        "docs/guardrails.md is stale: run python scripts/guardrail_catalog.py > docs/guardrails.md"
    )
