"""AEP setup as code: everything Experience Platform needs to ingest what this platform
publishes, derived from the Campaign datasets' XDM mappings and the offline data wing's
mapping files (customer_to_aep/mappings, docs/formats.md §i).

- `field_homes`: for each published XDM field, the class or standard field group of the
  vendored official schemas that defines it; the fewest field groups per schema; fields with
  no standard home (a tenant field group) listed;
- `blueprint`: per dataset the schema, identities (identityMap primary, non-primary
  descriptors), Profile enablement with its reason, the landing path and file pattern, the
  labels; the custom namespaces;
- `api_requests`: the blueprint as Schema Registry, Identity Service, Catalog and Flow
  Service requests in apply order, each with the lookup that finds an existing object;
- `plan_files` / `summary`: the plan on disk (one JSON file per request, `summary.md`);
- `client`: `apply`, OAuth server-to-server, idempotent; `cli`: `rtcdp-aep-setup`;
- `job`: the `aep_setup_plan` job (plan mode, written to the warehouse).
"""
