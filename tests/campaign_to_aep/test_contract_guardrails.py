"""The Campaign contract's and AEP's guardrails of issue 21: active profiles against the
contracted count, identities per identity graph across what we publish, ExperienceEvents per
profile per publication, batches per dataset per day. Exact counts, each shown failing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance, MaterializeResult, asset, materialize

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from asset_checks.campaign_to_aep.profile_guardrails import (
    active_profiles_result,
    distinct_profiles,
    events_per_profile_result,
    stored_primary_ids,
)
from asset_checks.campaign_to_aep.publication_checks import batches_per_day_result
from resources import PipelineSettings, Warehouse
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_defs
from rtcdp_assets.definitions import CAMPAIGN_EXPORTS
from tests.campaign_to_aep.test_campaign_datasets import assert_no_personal_data_in_metadata
from tests.drop_files import drop_flow_export, flow_csv
from tests.results import check_evaluations_by_name
from tests.runs import materialize_partition

PK, PK2 = "2026-11-23-08:00", "2026-11-23-12:00"
STAMPS = {PK: "20261123_0800", PK2: "20261123_1200"}
PUBLISHED = [d.flow for d in CAMPAIGN_EXPORTS]
APNS = "9f" * 32  # an APNs device token: 64 hex digits


def with_settings(resources: dict, **changes: object) -> dict:
    # A new resource: Dagster builds a run's resources from their init values, not a copy's.
    settings = resources["settings"].model_dump()
    return {**resources, "settings": PipelineSettings(**{**settings, **changes})}


def load(root, resources, instance, defs, rows, pk=PK, layout=0):
    """`rows` as the dataset's Campaign export for window `pk`, run through its job's assets
    and every check on them (the publication's too)."""
    drop_flow_export(root, defs.flow, flow_csv(defs.flow, rows, layout), STAMPS[pk], 600)
    checks = campaign_export_checks(defs.flow, PUBLISHED)
    result = materialize_partition([*defs.assets, *checks], resources, pk, instance)
    assert result.success
    assert_no_personal_data_in_metadata(result)
    return check_evaluations_by_name(result)


def profile(n: int, **extra: str) -> dict[str, str]:
    return {
        "recipient_id": str(n),
        "external_id": f"CUST-{n}",
        "email": f"person{n}@example.com",
        "last_modified": "2026-11-23 08:00:00",
        **extra,
    }


# -- active_profiles ----------------------------------------------------------------------
def test_active_profiles_counts_people_across_partitions_against_the_contract(embedded_env):
    root, resources = embedded_env
    instance = DagsterInstance.ephemeral()
    contract = with_settings(resources, contracted_profiles=101)
    # Campaign exports the recipients changed in each window: 1-50, then 41-90 (Standard
    # layout), so 100 rows hold 90 people.
    first = load(root, contract, instance, profiles_defs, [profile(n) for n in range(1, 51)])
    assert first["active_profiles"].passed
    assert first["active_profiles"].metadata["active_profiles"].value == 50
    rows = [profile(n, last_modified="2026-11-23 12:00:00") for n in range(41, 91)]
    second = load(root, contract, instance, profiles_defs, rows, pk=PK2, layout=1)
    check = second["active_profiles"]
    assert check.metadata["active_profiles"].value == 90
    assert check.passed, check.description  # 90 of 101: 89.1 %
    assert check.description == "90 of 101 contracted Campaign profiles (89.1%)"

    warehouse = Warehouse(zone=resources["warehouse"].zone)
    people = distinct_profiles(warehouse, "profiles", [PK, PK2])
    assert people == 90
    at_90 = active_profiles_result("profiles", people, PipelineSettings(contracted_profiles=100))
    assert not at_90.passed and at_90.severity.value == "WARN"
    assert at_90.description.endswith("(90.0%): at or above the 90% warning level")
    over = active_profiles_result("profiles", people, PipelineSettings(contracted_profiles=89))
    assert not over.passed and over.severity.value == "WARN"
    assert over.description == (
        "90 of 89 contracted Campaign profiles (101.1%): over contract by 1"
    )
    unset = active_profiles_result("profiles", people, PipelineSettings())
    assert unset.passed
    assert unset.description == (
        "90 Campaign profiles; no contract count is configured (settings.contracted_profiles)"
    )


# -- identity_graph_size, events_per_profile, batches_per_day ------------------------------
def test_identity_graph_over_50_across_published_records_fails_and_50_passes(embedded_env):
    """One person across three publications: the profile record links CUST-1, its email and
    the email's SHA-256 (Email_LC_SHA256, for the social_ads destination), the push
    subscription links CUST-1 and its APNs token (identityMap and
    pushNotificationDetails.identity), each email the broadLog sent to CUST-1 links another
    address. 47 addresses make 1 + 2 + 1 + 47 = 51 identities; the next window's 46 make 50."""
    root, resources = embedded_env
    instance = DagsterInstance.ephemeral()
    load(root, resources, instance, profiles_defs, [profile(1, email="e0@example.com")])
    subscription = {
        "subscription_id": "7",
        "subscriber_key": "CUST-1",
        "recipient_id": "1",
        "app_id": "com.example.shop",
        "platform": "iOS",
        "token": APNS,
        "last_modified": "2026-11-23 08:03:00",
        "opted_in": "1",
    }
    load(root, resources, instance, push_subscriptions_defs, [subscription])

    def sends(count: int, hour: int) -> list[dict[str, str]]:
        return [
            {
                "broadlog_id": str(hour * 100 + i),
                "delivery_id": "5",
                "recipient_id": "1",
                "external_id": "CUST-1",
                "address": f"e{i}@example.com",
                "status": "1",
                "event_date": f"2026-11-23 {hour:02d}:{i:02d}:00",
            }
            for i in range(1, count + 1)
        ]

    too_big = load(root, resources, instance, broadlog_defs, sends(47, 8))
    graph = too_big["identity_graph_size"]
    assert not graph.passed and graph.severity.value == "WARN"
    meta = {k: v.value for k, v in graph.metadata.items()}
    assert meta["graphs_over_limit"] == 1 and meta["largest_graph"] == 51
    assert meta["identity_graphs"] == 1 and meta["records_checked"] == 1 + 1 + 47
    assert meta["publications"] == {
        "broadlog_xdm": PK,
        "profiles_xdm": PK,
        "push_subscriptions_xdm": PK,
    }
    assert graph.description == (
        "1 identity graph over 50 identities among 1 (largest 51) in 49 records of 3 publications"
    )
    # 47 events of one profile: far below AEP's 5,000
    assert too_big["events_per_profile"].passed
    assert too_big["events_per_profile"].metadata["most_events_for_a_profile"].value == 47
    # publications today: one of each dataset
    batches = too_big["batches_per_day"]
    assert batches.passed
    assert batches.metadata["batches_today"].value == 1
    assert batches.metadata["batches_today_all_datasets"].value == 3

    at_limit = load(root, resources, instance, broadlog_defs, sends(46, 12), pk=PK2)
    graph = at_limit["identity_graph_size"]
    assert graph.passed, graph.description
    assert graph.metadata["largest_graph"].value == 50
    assert at_limit["batches_per_day"].metadata["batches_today"].value == 2

    # events per profile, from the stored publication: 47 events of CUST-1
    warehouse = Warehouse(zone=resources["warehouse"].zone)
    ids = stored_primary_ids(warehouse, "broadlog_xdm", PK, "external_id")
    over = events_per_profile_result(
        "broadlog_xdm", ids, PipelineSettings(max_events_per_profile=46)
    )
    assert not over.passed and over.severity.value == "WARN"
    assert over.metadata["profiles_over_limit"].value == 1
    assert over.metadata["most_events_for_a_profile"].value == 47
    assert over.description == (
        "1 of 1 profiles have more than 46 events in this publication (most for one profile: 47;"
        " 47 events, 0 without a profile identity)"
    )
    at = events_per_profile_result("broadlog_xdm", ids, PipelineSettings(max_events_per_profile=47))
    assert at.passed and at.metadata["profiles_over_limit"].value == 0


def test_batches_per_day_per_dataset_and_in_all():
    now = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    day = datetime(2026, 11, 23, tzinfo=UTC)
    every_4_hours = [day + timedelta(hours=h) for h in range(0, 24, 4)]  # 6
    yesterday = [day - timedelta(minutes=1)]
    publications = {"broadlog_published": every_4_hours + yesterday}
    six = batches_per_day_result("broadlog_published", publications, now, PipelineSettings())
    assert six.passed and six.metadata["batches_today"].value == 6
    # a seventh (a re-publication with other bytes) is over the per-dataset limit
    publications["broadlog_published"].append(day + timedelta(hours=21))
    seven = batches_per_day_result("broadlog_published", publications, now, PipelineSettings())
    assert not seven.passed and seven.severity.value == "WARN"
    assert seven.description == (
        "7 publications of broadlog_published on 2026-11-23 UTC (limit 6); 7 of every dataset "
        "(limit 90); over the per-dataset limit: broadlog_published"
    )
    # 90 in all pass, 91 do not (each dataset within its own limit of 6)
    many = {f"dataset_{i}_published": every_4_hours for i in range(15)}  # 15 x 6 = 90
    mine = "dataset_0_published"
    assert batches_per_day_result(mine, many, now, PipelineSettings()).passed
    many["dataset_15_published"] = every_4_hours[:1]
    ninety_one = batches_per_day_result(mine, many, now, PipelineSettings())
    assert not ninety_one.passed
    assert ninety_one.metadata["batches_today_all_datasets"].value == 91


def publication(already: bool):
    @asset(name="profiles_published")
    def profiles_published() -> MaterializeResult:
        return MaterializeResult(metadata={"already_published": already})

    return profiles_published


def test_only_publications_that_wrote_a_file_count(embedded_env):
    """An identical re-run writes nothing (`already_published`): no new AEP batch."""
    from asset_checks.campaign_to_aep.publication_checks import publications_on

    instance = DagsterInstance.ephemeral()
    for already in (False, True, False):
        assert materialize([publication(already)], instance=instance).success
    today = datetime.now(UTC).date()
    found = publications_on(instance, PUBLISHED, today)
    assert len(found["profiles_published"]) == 2
    assert found["broadlog_published"] == []
    assert (
        publications_on(instance, PUBLISHED, today - timedelta(days=1))["profiles_published"] == []
    )
