"""The code location the Postgres-instance test loads: the project's one `Definitions` with
the embedded resources re-read from the environment at load time.

`rtcdp_assets.definitions` picks its resources once, at import, and other tests in the same
pytest process may have imported it with another RTCDP_DATA_DIR; `@definitions` is loaded lazily
each time the workspace or a run reconstructs the job, so it sees this test's folders.
"""

from dagster import Definitions, definitions


@definitions
def defs() -> Definitions:
    import os

    from resources import FileLedger, embedded_resources
    from rtcdp_assets.definitions import defs as rtcdp_defs

    resources = embedded_resources()
    # The file ledger in the deployment's Postgres, as in production.
    resources["file_ledger"] = FileLedger(url=os.environ["RTCDP_LEDGER_URL"])
    return Definitions(
        assets=rtcdp_defs.assets,
        asset_checks=rtcdp_defs.asset_checks,
        sensors=rtcdp_defs.sensors,
        schedules=rtcdp_defs.schedules,
        jobs=rtcdp_defs.jobs,
        executor=rtcdp_defs.executor,
        resources=resources,
    )
