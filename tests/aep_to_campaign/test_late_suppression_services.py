"""Late suppression on the audience side over the real services: Campaign's exports uploaded
with OpenSSH's `sftp` to sshd (with `.done` markers), AEP's audience export in Azurite, the
Campaign import uploaded to sshd, destination files to Azurite. A late quarantine and opt-out
ask once for the destination files and the waiting import; the rebuilt import on the SFTP
server holds exactly two rows fewer; once Campaign has taken the import, only the destination
files are asked for."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pandas as pd
import pytest
from dagster import DagsterInstance

from asset_checks.aep_to_campaign.wiring import audience_defs
from resources import FileLedger, PipelineSettings, Warehouse
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs
from rtcdp_assets.shared.late_suppression import TAG_AFFECTED
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.late_suppression_steps import (
    failed_checks,
    late_exports,
    load_campaign_partitions,
    recipients,
    run_audience_export,
    run_request,
    tick,
)
from tests.results import materialization
from tests.runs import evaluate_sensor
from tests.sftp_upload import upload_with_openssh
from tests.zones import blob_zone, sftp_zone

pytestmark = pytest.mark.integration

AUD = "5e1f0c2a-7d4b-4c3e-9f8a-0b1c2d3e4f50"
DEST = "Azure_Blob"
FOLDER = "aep/exports"
T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
IMPORT = f"import/aep_audience_{AUD}_20261123_080000.csv"


@pytest.fixture
def rig(sshd, azurite, tmp_path):
    sftp = sftp_zone(sshd)
    resources = {
        "campaign_sftp": sftp,
        "file_ledger": FileLedger(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
        "aep_destination": blob_zone(azurite),
        "aep_landing": blob_zone(azurite),
        "warehouse": Warehouse(zone=blob_zone(azurite)),
        "settings": PipelineSettings(file_settle_seconds=0),
        "audience_settings": AudienceSettings(
            destination_folder=FOLDER,
            destinations={DEST: AepDestinationOptions(rows_per_file=500)},
        ),
    }
    yield resources
    sftp.close()


def import_rows(sftp) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(sftp.read_bytes(IMPORT)), dtype=str, keep_default_na=False)


def test_late_suppression_over_sftp_and_blob(rig, sshd, tmp_path):
    sftp, instance = rig["campaign_sftp"], DagsterInstance.ephemeral()
    export = f"{sftp.base_path}/export"
    people = recipients(90)
    upload_with_openssh(
        sshd,
        tmp_path,
        export,
        sample.campaign_exports(people, consenting=range(len(people)), stamp="20261123_0800"),
    )
    load_campaign_partitions(rig, instance, "2026-11-23-08:00")
    members = sample.audience_members(people, in_campaign=60, not_in_campaign=4, exited=2)
    for name, data in sample.export_files(
        members, destination=DEST, audience_id=AUD, when=T0
    ).items():
        rig["aep_destination"].write_bytes(f"{FOLDER}/{name}", data)
    (request,) = evaluate_sensor(audience_defs.sensors[0], rig, instance).run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    first = run_audience_export(rig, instance, request)
    assert first.success and failed_checks(first) == {}
    imported = import_rows(sftp)
    requests, cursor = tick(rig, instance, None)
    assert requests == []

    ids = set(imported["recipient_id"])
    in_import = [p for p in people if p["recipient_id"] in ids]
    upload_with_openssh(
        sshd,
        tmp_path,
        export,
        late_exports(
            "20261123_1200", quarantined_emails=[in_import[0]["email"]], opted_out=[in_import[1]]
        ),
    )
    load_campaign_partitions(
        rig, instance, "2026-11-23-12:00", (non_deliverables_defs, preferences_defs)
    )
    requests, cursor = tick(rig, instance, cursor)
    by_job = {r.job_name: r for r in requests}
    assert len(requests) == 2 and set(by_job) == {"destination_export_job", "audience_import_job"}
    rebuild = by_job["audience_import_job"]
    assert rebuild.tags[TAG_AFFECTED] == "2"
    # Each of the two members is one row of the email file and one of social_ads.
    assert by_job["destination_export_job"].tags[TAG_AFFECTED] == "4"
    assert tick(rig, instance, cursor)[0] == []

    result = run_request(rig, instance, rebuild)
    assert result.success and failed_checks(result) == {}
    after = import_rows(sftp)
    assert len(after) == len(imported) - 2
    assert not {in_import[0]["email"], in_import[1]["email"]} & set(after["email"])
    assert sftp.stat(f"{IMPORT}.done") is not None
    meta = materialization(result, "campaign_audience_import").metadata
    assert meta["late_suppression"].value["affected"] == 2
    destinations = run_request(rig, instance, by_job["destination_export_job"])
    assert destinations.success and failed_checks(destinations) == {}
    excluded = materialization(destinations, "destination_exports").metadata["excluded_by_reason"]
    # The two late suppressions leave the rebuilt email and social_ads files; members Campaign
    # does not know have no consent and stay out, as before.
    assert excluded.value == {
        "email": {"missing_consent": 4, "opted_out": 1, "quarantine": 1},
        "sms": {"missing_consent": 4},
        "social_ads": {"missing_consent": 4, "opted_out": 1, "quarantine": 1},
    }

    # Campaign's import workflow takes the file and its marker away (here: into a sub-folder).
    upload_with_openssh(sshd, tmp_path, f"{sftp.base_path}/import/done", {}, markers=False)
    for name in (IMPORT, f"{IMPORT}.done"):
        sftp.move(name, name.replace("import/", "import/done/"))
    upload_with_openssh(
        sshd, tmp_path, export, late_exports("20261123_1600", opted_out=[in_import[2]])
    )
    load_campaign_partitions(rig, instance, "2026-11-23-16:00", (preferences_defs,))
    requests, cursor = tick(rig, instance, cursor)
    assert [r.job_name for r in requests] == ["destination_export_job"]
    assert tick(rig, instance, cursor)[0] == []
