"""What the UI demo prepares for the AEP → Campaign group, without starting the UI: on the
demo's own sample data, the audience export waits until the sensors have loaded Campaign's side,
then lands in the `aep_destination` zone, and the audience sensor requests its import."""

from __future__ import annotations

from dagster import Definitions, SensorResult, materialize

from asset_checks.aep_to_campaign.wiring import audience_defs
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs, suppression_list
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_dev.demo import write_sample_data
from rtcdp_dev.demo_audience import DEMO_AUDIENCE_ID, DEMO_DESTINATION, audience_export_when_ready
from tests.aep_to_campaign.campaign_side import run_audience_export
from tests.runs import campaign_assets_and_checks, evaluate_sensor, materialize_partition


def load_by_sensor(flow_defs, resources, instance) -> int:
    """What the daemon does with a dataset's sensor: one tick, then each requested run."""
    result = evaluate_sensor(flow_defs.sensor, resources, instance)
    assert isinstance(result, SensorResult) and result.run_requests
    for request in result.run_requests:
        run = materialize_partition(
            campaign_assets_and_checks(flow_defs), resources, request.partition_key, instance
        )
        assert run.success
    return len(result.run_requests)


def test_the_ui_demo_writes_the_audience_export_once_campaigns_side_is_loaded(
    embedded_env_with_instance,
):
    root, resources, instance = embedded_env_with_instance
    code_location = Definitions(resources=resources)  # the demo's resources, in tmp_path
    written = write_sample_data(root, windows=2, rows_per_file=120, seed=7)
    assert any(name.startswith("profiles_") for name in written)
    destination = root / "aep_destination" / resources["audience_settings"].destination_folder

    # Nothing loaded yet: AEP has no profiles to export an audience of.
    assert audience_export_when_ready(root, code_location, instance) == []
    assert load_by_sensor(profiles_defs, resources, instance) == 2
    # Profiles in, but no suppression list yet: the import would refuse to run.
    assert audience_export_when_ready(root, code_location, instance) == []
    assert not destination.exists() or not any(destination.iterdir())

    load_by_sensor(non_deliverables_defs, resources, instance)
    load_by_sensor(preferences_defs, resources, instance)
    # The run the automation sensor asks for after them.
    assert materialize([suppression_list], resources=resources, instance=instance).success
    names = audience_export_when_ready(root, code_location, instance)
    assert any(n.startswith(f"{DEMO_DESTINATION}_{DEMO_AUDIENCE_ID}_") for n in names)
    assert any(n.startswith("manifest-") for n in names)
    assert sorted(p.name for p in destination.iterdir()) == names

    # The audience sensor takes it from there: the demo audience, registered and requested.
    result = evaluate_sensor(audience_defs.sensors[0], resources, instance)
    assert isinstance(result, SensorResult)
    (request,) = result.run_requests
    assert request.partition_key == DEMO_AUDIENCE_ID
    assert result.dynamic_partitions_requests[0].partition_keys == [DEMO_AUDIENCE_ID]
    for add in result.dynamic_partitions_requests:  # what the daemon does with them
        instance.add_dynamic_partitions(add.partitions_def_name, add.partition_keys)
    run = run_audience_export(resources, instance, request)
    assert run.success
    checks = run.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks]
    assert list((root / "campaign_sftp" / "import").glob(f"aep_audience_{DEMO_AUDIENCE_ID}_*"))

    # Written once: a later poll (or a second demo on the same data) writes nothing more.
    assert audience_export_when_ready(root, code_location, instance) == []
