"""Sample AEP audience exports and the Campaign data they point at: seeded, fake, deterministic.

For tests and demos of the AEP → Campaign audience flow (rtcdp_assets/segments.py):

- `campaign_recipients(n, seed)`: Campaign recipients as canonical `profiles` rows, to be written
  with `campaign_csv(profiles.PROFILES_FORMAT, rows)` and ingested by the profiles flow.
- `audience_members(...)`: an audience drawn from those recipients, plus people Campaign does not
  know, members without the join identity and exited members, in proportions the caller picks.
- `export_files(...)`: the files AEP's batch destination writes for one export: the default file
  name in any of the three timestamp forms, split every `rows_per_file` rows (`_2`, `_3`, ...),
  CSV written with the destination's options (delimiter, quote, escape, null output, header,
  UTF-8 or UTF-16, gzip), or JSON Lines / Parquet with the nested XDM paths.
- `manifest(...)`: the optional `manifest-<destinationId>-<dataflowRunId>.json`.
- `campaign_exports(...)`: the Campaign side (profiles, non-deliverables, preferences export
  files) for the same recipients, some of them quarantined or opted out.

CSV columns follow docs/formats.md §a2/§a4: `person_name_firstName, person_name_lastName,
personalEmail_address, external_id, segmentMembership_ups_<id>_status,
segmentMembership_ups_<id>_lastQualificationTime` (XDM paths with `.` → `_`). Every address uses
reserved test domains (example.com / example.org / example.net). Names include quotes, commas
and non-ASCII letters on purpose, to exercise the CSV options.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from resources.audience_settings import AepDestinationOptions
from rtcdp_assets.campaign_to_aep.non_deliverables import NON_DELIVERABLES_FORMAT
from rtcdp_assets.campaign_to_aep.preferences import PREFERENCES_FORMAT
from rtcdp_assets.campaign_to_aep.profiles import PROFILES_FORMAT
from rtcdp_assets.shared.consents import PREFERENCE_FLAGS
from rtcdp_assets.shared.ingest import ExportFormat

FIRST_NAMES = ("Ann", "Bo", "Chloé", "Dmitri", "Eve", "Farah", 'Jo "JJ"', "Zoë", "Liam", "Mei")
LAST_NAMES = ("Lee", "Martin", "O'Brien", "Smith, Jr.", "Novák", "Okafor", "Tanaka", "Dubois")
DOMAINS = ("example.com", "example.org", "example.net")
TIMESTAMP_FORMS = ("YYYYMMDD_HHMMSS", "MMDDYYYY_HHMMSS", "unix")


def campaign_recipients(
    n: int, seed: int = 7, first_id: int = 100_000, modified: datetime | None = None
) -> list[dict[str, str]]:
    """Campaign recipients as canonical `profiles` rows (recipient_id, external_id, email, ...)."""
    rng = random.Random(f"recipients-{seed}")  # noqa: S311 (fake data, not security)
    when = (modified or datetime(2026, 11, 23, 8, 0, tzinfo=UTC)).strftime("%Y-%m-%d %H:%M:%S")
    rows = []
    for i in range(n):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        rows.append(
            {
                "recipient_id": str(first_id + i),
                "external_id": f"CRM-{first_id + i:08d}",
                "email": f"member{first_id + i}@{DOMAINS[i % len(DOMAINS)]}",
                "first_name": first,
                "last_name": last,
                "country_code": "FR",
                "last_modified": when,
                "org_unit": "default",
            }
        )
    return rows


def campaign_exports(
    recipients: Sequence[Mapping[str, str]],
    *,
    quarantined: Sequence[int] = (),
    opted_out: Sequence[int] = (),
    consenting: Sequence[int] = (),
    stamp: str = "20261123_0800",
) -> dict[str, bytes]:
    """Campaign export files (Campaign Classic layout) for `recipients`: their profiles, the
    email addresses of `recipients[i]` for i in `quarantined` in the quarantine list (status 3),
    email opt-outs (blacklist_email) for i in `opted_out`, and a preferences row with every
    flag 0 (consent to every channel) for the other i in `consenting`."""
    when = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:00"
    bounces = [
        {
            "address_id": str(n + 1),
            "address": recipients[i]["email"],
            "channel": "0",
            "status": "3",
            "last_modified": when,
        }
        for n, i in enumerate(quarantined)
    ]
    opt_outs = [
        {
            "recipient_id": recipients[i]["recipient_id"],
            "external_id": recipients[i]["external_id"],
            "email": recipients[i]["email"],
            "blacklist": "0",
            "blacklist_email": "1",
            "last_modified": when,
        }
        for i in opted_out
    ]
    opt_ins = [
        {
            "recipient_id": recipients[i]["recipient_id"],
            "external_id": recipients[i]["external_id"],
            "email": recipients[i]["email"],
            "blacklist": "0",
            **{flag: "0" for flag in PREFERENCE_FLAGS},
            "last_modified": when,
        }
        for i in consenting
        if i not in set(opted_out)
    ]
    return {
        f"profiles_{stamp}.csv": campaign_csv(PROFILES_FORMAT, recipients),
        f"nonDeliverables_{stamp}.csv": campaign_csv(NON_DELIVERABLES_FORMAT, bounces),
        f"preferences_{stamp}.csv": campaign_csv(PREFERENCES_FORMAT, opt_outs + opt_ins),
    }


def campaign_csv(
    fmt: ExportFormat, rows: Sequence[Mapping[str, str]], layout_index: int = 0
) -> bytes:
    """Rows of canonical fields as a Campaign export file of `fmt` in one of its layouts."""
    layout = fmt.layouts[layout_index]
    by_canonical = {v: k for k, v in layout.columns.items()}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([by_canonical[f.name] for f in fmt.fields])
    for row in rows:
        writer.writerow([row.get(f.name, "") for f in fmt.fields])
    return out.getvalue().encode()


@dataclass(frozen=True)
class AudienceMember:
    external_id: str | None
    email: str | None
    first_name: str
    last_name: str
    status: str
    qualified: datetime | None
    in_campaign: bool


def audience_members(
    recipients: Sequence[Mapping[str, str]],
    *,
    seed: int = 7,
    in_campaign: int,
    not_in_campaign: int = 0,
    exited: int = 0,
    without_identity: int = 0,
    qualified: datetime | None = None,
) -> list[AudienceMember]:
    """An audience: `in_campaign` realized members drawn from `recipients` (the first `exited` of
    them with status exited), `not_in_campaign` people with external IDs Campaign does not know,
    and `without_identity` rows with an email but no external ID. Shuffled, deterministic."""
    rng = random.Random(f"audience-{seed}")  # noqa: S311 (fake data, not security)
    when = qualified or datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    chosen = rng.sample(list(recipients), in_campaign)
    members = [
        AudienceMember(
            external_id=r["external_id"],
            # AEP holds its own copy of the address; case may differ from Campaign's.
            email=r["email"].upper() if i % 7 == 0 else r["email"],
            first_name=r["first_name"],
            last_name=r["last_name"],
            status="exited" if i < exited else "realized",
            qualified=when - timedelta(minutes=i % 600),
            in_campaign=True,
        )
        for i, r in enumerate(chosen)
    ]
    for i in range(not_in_campaign):
        members.append(
            AudienceMember(
                external_id=f"AEP-ONLY-{seed}-{i:06d}",
                email=f"prospect{seed}x{i}@example.org",
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
                status="realized",
                qualified=when,
                in_campaign=False,
            )
        )
    for i in range(without_identity):
        members.append(
            AudienceMember(
                external_id=None,
                email=f"anonymous{seed}x{i}@example.net",
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
                status="realized",
                qualified=when,
                in_campaign=False,
            )
        )
    rng.shuffle(members)
    return members


def export_file_name(
    destination: str,
    audience_id: str,
    when: datetime,
    *,
    form: str = "YYYYMMDD_HHMMSS",
    part: int = 1,
    extension: str = "csv",
) -> str:
    """AEP's default name `<destination>_<audience id>_<timestamp>[_<part>].<extension>`."""
    if form == "unix":
        stamp = str(int(when.timestamp()))
    elif form == "MMDDYYYY_HHMMSS":
        stamp = when.strftime("%m%d%Y_%H%M%S")
    else:
        stamp = when.strftime("%Y%m%d_%H%M%S")
    suffix = "" if part == 1 else f"_{part}"
    return f"{destination}_{audience_id}_{stamp}{suffix}.{extension}"


def columns_for(audience_id: str) -> list[str]:
    return [
        "person_name_firstName",
        "person_name_lastName",
        "personalEmail_address",
        "external_id",
        f"segmentMembership_ups_{audience_id}_status",
        f"segmentMembership_ups_{audience_id}_lastQualificationTime",
    ]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _values(m: AudienceMember) -> list[str | None]:
    return [m.first_name, m.last_name, m.email, m.external_id, m.status, _iso(m.qualified)]


def _render(value: str | None, opts: AepDestinationOptions) -> str:
    """One value the way Spark's CSV writer does with AEP's options (docs/formats.md §a2)."""
    if value is None:
        return opts.null_value
    if value == "":
        return opts.empty_value
    quote = opts.quote_char
    if not quote:
        return value
    special = (opts.delimiter, quote, "\n", "\r")
    if not any(ch in value for ch in special):
        return value
    escape = opts.escape_char or quote
    return quote + value.replace(quote, escape + quote) + quote


def audience_csv(
    members: Sequence[AudienceMember], audience_id: str, opts: AepDestinationOptions
) -> bytes:
    lines = []
    if opts.header:
        lines.append(opts.delimiter.join(_render(c, opts) for c in columns_for(audience_id)))
    for m in members:
        lines.append(opts.delimiter.join(_render(v, opts) for v in _values(m)))
    return ("\n".join(lines) + "\n").encode(opts.encoding)


def _nested(m: AudienceMember, audience_id: str) -> dict[str, object]:
    return {
        "person": {"name": {"firstName": m.first_name, "lastName": m.last_name}},
        "personalEmail": {"address": m.email},
        "external_id": m.external_id,
        "segmentMembership": {
            "ups": {audience_id: {"status": m.status, "lastQualificationTime": _iso(m.qualified)}}
        },
    }


def export_files(
    members: Sequence[AudienceMember],
    *,
    destination: str,
    audience_id: str,
    when: datetime,
    opts: AepDestinationOptions | None = None,
    rows_per_file: int = 5_000_000,
    form: str = "YYYYMMDD_HHMMSS",
    file_format: str = "csv",
    compress: bool = False,
) -> dict[str, bytes]:
    """File name -> content of one export, split every `rows_per_file` rows like AEP does."""
    opts = opts or AepDestinationOptions()
    chunks = [members[i : i + rows_per_file] for i in range(0, len(members), rows_per_file)] or [[]]
    files = {}
    for part, chunk in enumerate(chunks, start=1):
        if file_format == "csv":
            data = audience_csv(chunk, audience_id, opts)
        elif file_format == "json":
            data = "".join(json.dumps(_nested(m, audience_id)) + "\n" for m in chunk).encode()
        else:
            sink = io.BytesIO()
            pq.write_table(pa.Table.from_pylist([_nested(m, audience_id) for m in chunk]), sink)
            data = sink.getvalue()
        extension = file_format
        if compress and file_format != "parquet":
            data = gzip.compress(data, mtime=0)
            extension += ".gz"
        name = export_file_name(
            destination, audience_id, when, form=form, part=part, extension=extension
        )
        files[name] = data
    return files


def manifest(
    files: Mapping[str, bytes],
    *,
    destination_id: str = "7b891e5f-025a-4f0d-9e73-1919e71da3b0",
    flow_run_id: str = "0ac8f3c0-29bd-40aa-82c1-f1b7e0657b19",
    scheduled: datetime | None = None,
    sink_path: str = "/aep/exports",
) -> tuple[str, bytes]:
    """`manifest-<destinationId>-<dataflowRunId>.json` listing `files` (docs/formats.md §a3)."""
    when = scheduled or datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    doc = {
        "flowRunId": flow_run_id,
        "scheduledTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exportResults": [
            {"sinkPath": sink_path, "name": name, "size": len(data)}
            for name, data in sorted(files.items())
        ],
    }
    return f"manifest-{destination_id}-{flow_run_id}.json", json.dumps(doc).encode()
