"""A late quarantine for a push token already published, over the real sshd (exports uploaded
with OpenSSH's `sftp`, each followed by its `.done` marker) and Azurite (warehouse and AEP
landing): exactly the affected partition is requested once, and the rewritten landing file
holds the same records with the token denylisted, no `_id` twice."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance

from resources import PipelineSettings
from rtcdp_assets.campaign_to_aep.late_quarantine import PUSH_PUBLISHED
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs
from rtcdp_assets.campaign_to_aep.push_subscriptions import (
    push_subscriptions_defs,
    push_subscriptions_flow,
)
from rtcdp_assets.shared.late_suppression import TAG_AFFECTED, TAG_TRIGGER
from tests.campaign_to_aep.late_push_steps import (
    APNS_A,
    APNS_B,
    FCM_C,
    FCM_D,
    duplicates,
    landing_states,
    load,
    quarantine_csv,
    reader,
    run_request,
    subscription,
    subscriptions_csv,
    tick,
)
from tests.results import materialization
from tests.sftp_upload import upload_with_openssh

pytestmark = pytest.mark.integration

W08, W16 = "2026-11-23-08:00", "2026-11-23-16:00"


def test_late_quarantine_over_sftp_and_blob(services, sshd, tmp_path):
    # The default completion rule: each export counts once its `.done` marker is there.
    resources = {**services, "settings": PipelineSettings(file_settle_seconds=0)}
    settings, instance = resources["settings"], DagsterInstance.ephemeral()
    export = f"{services['campaign_sftp'].base_path}/{settings.campaign_export_folder}"
    read = reader(services["aep_landing"])
    upload_with_openssh(
        sshd,
        tmp_path,
        export,
        {
            "appSubscriptions_20261123_0800.csv": subscriptions_csv(
                [
                    subscription(1, "iOS", APNS_A, 8),
                    subscription(2, "iOS", APNS_B, 8),
                    subscription(3, "Android", FCM_C, 8),
                ],
                layout_index=0,
            ),
            "appSubscriptions_20261123_1600.csv": subscriptions_csv(
                [subscription(4, "Android", FCM_D, 16)], layout_index=1
            ),
        },
    )
    load(push_subscriptions_defs, resources, instance, W08)
    load(push_subscriptions_defs, resources, instance, W16)
    before, ids_before = landing_states(read, settings, W08)
    assert before == {APNS_A: False, APNS_B.lower(): False, FCM_C: False}
    requests, cursor = tick(resources, instance, None)
    assert requests == []

    # The same window's quarantine export arrives late: every channel, B on iOS.
    upload_with_openssh(
        sshd,
        tmp_path,
        export,
        {
            "nonDeliverables_20261123_0800.csv": quarantine_csv(
                [
                    ("member1@example.com", "0", "3"),
                    ("+33612345678", "1", "4"),
                    (APNS_B, "41", "3"),
                    (FCM_C, "42", "2"),  # valid: no change for C
                ],
                8,
            )
        },
    )
    load(non_deliverables_defs, resources, instance, W08)
    requests, cursor = tick(resources, instance, cursor)
    assert [(r.partition_key, r.tags[TAG_AFFECTED]) for r in requests] == [(W08, "1")]
    assert requests[0].tags[TAG_TRIGGER] == f"non_deliverables:{W08}"
    assert tick(resources, instance, cursor)[0] == []

    result = run_request(resources, instance, requests[0])
    assert result.success
    after, ids_after = landing_states(read, settings, W08)
    assert after == {APNS_A: False, APNS_B.lower(): True, FCM_C: False}
    assert sorted(ids_after) == sorted(ids_before) and len(ids_after) == 3
    assert duplicates(ids_after) == {}
    data_path, _ = push_subscriptions_flow.landing_paths(settings, W08)
    folder = data_path.rsplit("/", 1)[0]
    assert [e.name for e in services["aep_landing"].list(folder)] == [
        "_manifest.json",
        "push_subscriptions_20261123_0800.parquet",
    ]
    meta = materialization(result, PUSH_PUBLISHED.to_user_string()).metadata
    assert meta["late_suppression"].value["affected"] == 1
    assert meta["already_published"].value is False
    (row,) = services["file_ledger"].rows(PUSH_PUBLISHED.to_user_string())
    assert (row.partition, row.rows, row.version.zone) == (
        W08,
        3,
        services["aep_landing"].describe(),
    )
    assert row.reason.startswith("late_suppression: non_deliverables:2026-11-23-08:00; 1 ")
    assert tick(resources, instance, None)[0] == []  # even from scratch: nothing left to fix
