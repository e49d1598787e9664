"""A late quarantine for push tokens already published, on the embedded default: the sensor
requests exactly the affected push partitions once; the re-run publishes the same records (same
file, same `_id`s, none twice) with the token denylisted; the ledger and metadata say why."""

from __future__ import annotations

from rtcdp_assets.campaign_to_aep.late_quarantine import (
    PUSH_PUBLISHED,
    PUSH_XDM,
    plan_republications,
)
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs
from rtcdp_assets.campaign_to_aep.push_subscriptions import (
    push_subscriptions_defs,
    push_subscriptions_flow,
)
from rtcdp_assets.shared.late_suppression import REASON, TAG_AFFECTED, TAG_TRIGGER
from tests.campaign_to_aep.late_push_steps import (
    APNS_A,
    APNS_B,
    APNS_E,
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
from tests.drop_files import drop_campaign_export
from tests.results import check_evaluations_by_name, materialization

W08, W12, W16, W20 = (f"2026-11-23-{h:02d}:00" for h in (8, 12, 16, 20))


def test_late_quarantine_republishes_only_the_affected_push_partitions(
    embedded_env_with_instance,
):
    root, resources, instance = embedded_env_with_instance
    settings, ledger = resources["settings"], resources["file_ledger"]
    read = reader(root / "aep_landing")
    # Two push windows published before any quarantine export: 08:00 (Standard layout) with
    # A, B, C; 16:00 (Classic layout) with D and again A's device.
    drop_campaign_export(
        root,
        "appSubscriptions_20261123_0800.csv",
        subscriptions_csv(
            [
                subscription(1, "iOS", APNS_A, 8),
                subscription(2, "iOS", APNS_B, 8),
                subscription(3, "Android", FCM_C, 8),
            ],
            layout_index=1,
        ),
    )
    drop_campaign_export(
        root,
        "appSubscriptions_20261123_1600.csv",
        subscriptions_csv(
            [subscription(4, "Android", FCM_D, 16), subscription(5, "iOS", APNS_A, 16)], 0
        ),
    )
    load(push_subscriptions_defs, resources, instance, W08)
    load(push_subscriptions_defs, resources, instance, W16)
    before, ids_before = landing_states(read, settings, W08)
    assert before == {APNS_A: False, APNS_B.lower(): False, FCM_C: False}
    requests, cursor = tick(resources, instance, None)
    assert requests == []

    # 08:00's nonDeliverables arrives late: B quarantined on iOS, plus an email and an SMS
    # quarantine and an Android token (E's window has no push data) on the other channels.
    drop_campaign_export(
        root,
        "nonDeliverables_20261123_0800.csv",
        quarantine_csv(
            [
                ("member1@example.com", "0", "3"),
                ("+33612345678", "1", "4"),
                (APNS_B, "41", "3"),
                (APNS_E, "41", "4"),
            ],
            8,
        ),
    )
    load(non_deliverables_defs, resources, instance, W08)
    requests, cursor = tick(resources, instance, cursor)
    assert [r.partition_key for r in requests] == [W08]  # 16:00 holds neither B nor E
    (request,) = requests
    assert set(request.asset_selection or []) == {PUSH_XDM, PUSH_PUBLISHED}
    assert request.tags[TAG_TRIGGER] == f"non_deliverables:{W08}"
    assert request.tags[TAG_AFFECTED] == "1"
    # A re-tick: no new quarantine partition, nothing again; the run key is stable too.
    again, cursor = tick(resources, instance, cursor)
    assert again == []
    assert request.run_key == tick(resources, instance, None)[0][0].run_key

    result = run_request(resources, instance, request)
    assert result.success
    checks = check_evaluations_by_name(result)
    respected = checks["push_quarantine_respected"]
    assert respected.passed
    assert respected.metadata["quarantined_tokens_in_partition"].value == 1
    after, ids_after = landing_states(read, settings, W08)
    assert after == {APNS_A: False, APNS_B.lower(): True, FCM_C: False}
    assert sorted(ids_after) == sorted(ids_before) and len(ids_after) == 3
    assert duplicates(ids_after) == {}
    # One data file for the partition, rewritten in place (no second file for AEP to read).
    data_path = push_subscriptions_flow.landing_paths(settings, W08)[0]
    folder = (root / "aep_landing" / data_path).parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "_manifest.json",
        "push_subscriptions_20261123_0800.parquet",
    ]
    why = materialization(result, PUSH_PUBLISHED.to_user_string()).metadata["late_suppression"]
    assert why.value == {
        "reason": REASON,
        "trigger": f"non_deliverables:{W08}",
        "affected": 1,
        "released": 0,
    }
    (row,) = [r for r in ledger.rows(PUSH_PUBLISHED.to_user_string())]
    assert row.partition == W08 and row.rows == 3 and row.status == "processed"
    assert row.reason == f"late_suppression: non_deliverables:{W08}; 1 to suppress, 0 released"
    # Even as if 08:00's quarantine arrived after every mapping, nothing is wrong any more.
    assert plan_republications(instance, resources["warehouse"], settings, {W08: 10**12}) == []
    assert tick(resources, instance, None)[0] == []

    # A later window's quarantine (12:00) of A: only the push window after it is re-published;
    # 08:00 keeps its own window's state.
    drop_campaign_export(
        root, "nonDeliverables_20261123_1200.csv", quarantine_csv([(APNS_A, "41", "3")], 12)
    )
    load(non_deliverables_defs, resources, instance, W12)
    # A push window loaded after that quarantine already reads it: not asked for.
    drop_campaign_export(
        root,
        "appSubscriptions_20261123_2000.csv",
        subscriptions_csv([subscription(6, "iOS", APNS_A, 20)], 0),
    )
    load(push_subscriptions_defs, resources, instance, W20)
    assert landing_states(read, settings, W20)[0] == {APNS_A: True}
    requests, cursor = tick(resources, instance, cursor)
    assert [(r.partition_key, r.tags[TAG_AFFECTED]) for r in requests] == [(W16, "1")]
    assert run_request(resources, instance, requests[0]).success
    later, later_ids = landing_states(read, settings, W16)
    assert later == {FCM_D: False, APNS_A: True}
    assert len(later_ids) == 2 and duplicates(later_ids) == {}
    assert landing_states(read, settings, W08)[0][APNS_A] is False
    assert tick(resources, instance, cursor)[0] == []
