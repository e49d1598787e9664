"""Run tags naming the checks that failed in a run, so the run's page shows them.

A WARN check that fails does not fail its run: the run page says SUCCESS (dagster-io/dagster
#22964). `tag_failed_checks`, a success hook on the jobs that evaluate checks, reads the run's
check evaluations after each step and sets:

- `rtcdp/warnings`: the WARN checks that failed, as `asset:check`, comma-separated
  (e.g. `broadlog:reject_rate`);
- `rtcdp/check_errors`: the ERROR checks that failed (a blocking one also fails the run; a
  non-blocking one does not).

Tags appear in the run's header and in the runs list of the open-source UI, and can be
filtered on. They hold check names only. The jobs run in process, one step after the other,
so the hook of the last step sees every evaluation of the run.
"""

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    DagsterEventType,
    DagsterInstance,
    HookContext,
    success_hook,
)

WARNINGS_TAG = "rtcdp/warnings"
CHECK_ERRORS_TAG = "rtcdp/check_errors"


def run_check_evaluations(instance: DagsterInstance, run_id: str) -> list[AssetCheckEvaluation]:
    """The latest evaluation of each check in the run."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    latest: dict[AssetCheckKey, AssetCheckEvaluation] = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is not None and isinstance(event.event_specific_data, AssetCheckEvaluation):
            evaluation = event.event_specific_data
            latest[evaluation.asset_check_key] = evaluation
    return list(latest.values())


def failed_check_tags(evaluations: list[AssetCheckEvaluation]) -> dict[str, str]:
    """Tag → `asset:check, …` of the failed checks by severity; no tag where none failed."""
    names: dict[str, list[str]] = {WARNINGS_TAG: [], CHECK_ERRORS_TAG: []}
    for e in evaluations:
        if e.passed:
            continue
        tag = WARNINGS_TAG if e.severity == AssetCheckSeverity.WARN else CHECK_ERRORS_TAG
        names[tag].append(f"{e.asset_key.to_user_string()}:{e.check_name}")
    return {tag: ", ".join(sorted(found)) for tag, found in names.items() if found}


def tag_run_with_failed_checks(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """Set the tags on the run where they changed; returns them."""
    tags = failed_check_tags(run_check_evaluations(instance, run_id))
    run = instance.get_run_by_id(run_id)
    current = run.tags if run is not None else {}
    changed = {k: v for k, v in tags.items() if current.get(k) != v}
    if changed:
        instance.add_run_tags(run_id, changed)
    return tags


@success_hook(name="tag_failed_checks")
def tag_failed_checks(context: HookContext) -> None:
    tag_run_with_failed_checks(context.instance, context.run_id)
