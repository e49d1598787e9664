"""Audience members → one file per activation destination, each under an identity contract.

Modules: `contracts` (the identity contracts, normalisation, hashing, rejects),
`duplicates` (one member per identity value), `member_sources` (members with their Campaign
mobile phone), `staged_files` (building and reading the staged files), `membership_ledger`
(ownership: the members the platform added per destination, the only ones it may remove;
foreign members kept), `assets` (the two assets and the job built around the checks).
The checks are in asset_checks/aep_to_campaign/destination_checks.py.

    audience_membership ──▶ destination_exports ──(blocking checks)──▶ destination_exports_published
     members after an        one CSV per destination,                  aep_landing zone:
     export                  rejects by reason (warehouse)             destinations/<destination>/
                                                                       <audience>/<stamp>/… + .done

The blueprint activates an audience to three kinds of destination. What each may receive is an
**identity contract**, declared as data in `CONTRACTS` (namespaces from docs/formats.md §d):

| destination | column              | namespace            | fed by                  | form        |
|-------------|---------------------|----------------------|-------------------------|-------------|
| email       | email               | Email                | member `email`          | trim+lower  |
| sms         | phone_e164          | Phone_E.164          | Campaign `mobile_phone` | E.164       |
| social_ads  | email_lc_sha256     | Email_LC_SHA256      | member `email`          | SHA-256     |
| social_ads  | phone_sha256_e164   | Phone_SHA256_E.164   | Campaign `mobile_phone` | SHA-256     |

(social_ads: the phone is optional, "when available"; every other identity is required.)

AEP audience exports carry no phone number, so the phone comes from the member's Campaign
profile (Campaign is the source of truth for profiles, §f1), matched on the join identity
exactly like the Campaign import; a key shared by several recipients gives no phone rather than
someone else's.

**Normalisation.** Email: trim, lower-case, then one `@` with a dotted domain and no spaces.
Phone: spaces, dashes, dots and parentheses removed, a leading international `00` becomes `+`,
then `+<country code><number>`, 7 to 15 digits, first digit not 0. A national number without a
country code is `invalid_phone`: guessing the country from the profile would send texts to the
wrong person when the guess is wrong.

**Hashing** (hashed identities only): SHA-256 of the normalised value, lower-case hex. A value
that already looks like a hash (64 characters, or 32+ hex digits; no plain phone or email looks
like that) is kept when it is exactly 64 lower-case hex digits, and rejected as `wrong_hash`
otherwise (upper-case, MD5/SHA-1 length, not hex): re-hashing a hash would ship an identity no
platform can match. A plain value where a hash is required is hashed, never rejected, so a
social_ads file never holds a plain email or phone.

**Rejects.** A row failing any identity of a destination's contract is left out of that
destination's file with the first failing reason in contract order: `missing_identity:<ns>`,
`invalid_email`, `invalid_phone`, `wrong_hash`.

**One row per identity value** (`duplicates`). Members sharing an identity value as the file
holds it (two profiles with one phone, one email in two cases) are sent once, the smallest
member key; the others are excluded as `duplicate_identity` (a shared optional social_ads phone
is left empty on the later rows instead). The exclusions come first (`exclusions`), so the kept
member is a sendable one; a shared value is sent only when no Campaign recipient holding it
said "n" to the destination's consent (`opted_out` otherwise, the rule `consent_respected`
checks). Per destination, current members in (`exited` rows are no longer members and are not
activated) = rows exported + rejected by reason + excluded by reason.

Warehouse: `destination_exports/<audience>/<stamp>/` holds `<destination>_<audience>_<stamp>.csv`
per destination (CSV as in campaign_import: UTF-8, header, `\\n`, quoted only where needed, rows
in member-key order), `rejects.parquet` (destination, key, namespace, reason) and `manifest.json`
(files with SHA-256 and columns, counts per destination), written last.

**Ownership** (`membership_ledger`). Each file is a full replacement, so it also carries the
foreign members the destination's listing (`destination_state/<destination>/<audience>/
members.csv`) holds, after ours; we remove only members of our ledger
(`destination_membership/<destination>/<audience>/<stamp>/ledger.parquet`, hashes only).
`ownership.parquet` holds each export's changes (added, already_present, removed, not_ours,
kept_foreign); the checks judge our rows only.
"""
