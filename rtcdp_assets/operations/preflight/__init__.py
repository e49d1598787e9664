"""The preflight (`rtcdp-doctor`): every configured zone, the file ledger, the Dagster storage
and the pools, checked against the real services with one line and one fix per problem.

It lives in the operations wing, beside the other operator tools (SFTP housekeeping, the
ledger snapshot), because it is shipped and run in production: it needs `resources` (the zones
exactly as runs build them) and `rtcdp_assets.shared` (the SFTP folder layout), both below this
wing, and nothing above it (no definitions, no checks).
"""
