"""AEP → Campaign: AEP audience exports into audience membership and the Campaign import file
(`audience_exports`, `campaign_audience_import`, wired by `audience_import_flow`), the files of
the activation destinations (`destinations`) and the closed-loop reach (`reach`). Dagster group
`aep_to_campaign`; the checks are in asset_checks/aep_to_campaign."""
