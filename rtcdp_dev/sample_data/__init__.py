"""Sample Campaign exports for demos, tests and benchmarks: seeded, fake, fast.

Writes what Campaign export workflows would drop on the SFTP server every four hours, into a
local folder laid out like the drop zone, one file per dataset and 4-hour UTC window (its start):

    <out>/export/broadLog_20261123_0800.csv[.gz]         delivery logs (nms:broadLogRcp)
    <out>/export/trackingLog_20261123_0800.csv[.gz]      opens, clicks, ... (nms:trackingLogRcp)
    <out>/export/nonDeliverables_20261123_0800.csv[.gz]  quarantine entries (nms:address)
    <out>/export/preferences_20261123_0800.csv[.gz]      opt-out flags (nms:recipient)
    <out>/export/profiles_20261123_0800.csv[.gz]         recipient extract (nms:recipient)
    <out>/export/appSubscriptions_20261123_0800.csv[.gz] push subscriptions (nms:appSubscriptionRcp)

`aep_push_token_export` writes the other side of mobile push: an AEP dataset export of the
push tokens the Experience Platform Mobile SDK registered, overlapping a chosen number of the
Campaign tokens (the devices registered through both routes).

Usage (also installed as the console script `rtcdp-sample-data`):

    python -m rtcdp_dev.sample_data --out data/campaign                  # last 24 h, all five
    python -m rtcdp_dev.sample_data --out data/campaign --start 2026-11-20 --end 2026-11-23 \
        --rows-per-file 50000 --layout standard --gzip --defect-rate 0.01 --seed 7 \
        --datasets broadlog,tracking_log

Column names come from the pipeline's own Layout objects (`DATASET_LAYOUTS`), file prefixes,
formats and allowed codes from its flows (`FLOWS`): the generator follows the pipeline.

Every value is invented: recipients come from a seeded pool, addresses only use reserved test
domains (RFC 2606 / RFC 6761: example.com, example.org, example.net, *.example, *.test), mobile
numbers only ranges reserved for fiction (GB 07700 900, US 555-01xx; FR 06 39 98 is
UNCONFIRMED, see `_mobile_number`; people of other countries have none).

One seed, one world: every dataset draws the same people (`recipient_pool`, with their profile
attributes in `recipient_details`), and the files of one window fit together. trackingLog rows
react to broadLog messages (status sent, not defective) of the same seed: a row's broadLog,
delivery, recipient and external ids are that message's, its tsLog is after its tsEvent, so the
pipeline's orphan check passes. Reactions reach back up to a day (`TRACKING_HISTORY_WINDOWS`)
but `write_dataset_files` never past the first window it writes; alone, `generate_tracking_log`
only reacts to its own window. profiles cover every recipient of the window's broadLog (with
its rows the pipeline keeps, whenever the file has rows to spare for its defects). Both find
the broadLog rows by replaying its random draws (`_broadlog_facts`): they assume the broadLog
file has the same row count and defect rate (override with `broadlog_rows` /
`broadlog_defect_rate`) and was written with the default batch size.

Determinism: the same arguments give byte-identical files (gzip is written with mtime 0 and no
file name). Only the defaults of `--now` (the wall clock) and of `--end` (derived from `--now`)
read the clock; a window that lies completely in the past does not depend on `--now` at all.
The random streams are keyed by (seed, dataset, window, batch), never by layout or compression,
so the classic and standard layouts of one window hold the same rows under different headers.

Defects: a share `--defect-rate` of the rows (binomially drawn, at most one defect per row)
carries exactly one fault that `rtcdp_assets.shared.ingest.validate_batch` (with the dataset flow's
allowed codes for default PipelineSettings) rejects under exactly one reason code; see
`DEFECT_KINDS`, derived from each dataset's FieldSpecs (missing required value, bad integer,
timestamp, date, email or boolean, unknown code, a dropped column). The API returns the exact
expected counts and the CSV record number (header = 1) of every defective row.

Speed (measured 2026-11-23 on the 2-core build box, numpy 2.4.6 / pyarrow 26.0.1, classic
layout, defect rate 0.005, `stream_broadlog` with 500 000-row batches; other jobs were sharing
the machine): 5 000 000 rows (882 MB) in 6.1-7.3 s, i.e. 690 000-820 000 rows/s; 20 000 000
rows (3.5 GB) in 27 s (730 000 rows/s) with peak RSS 0.72 GB, which does not grow with the
file. gzip output is bound by zlib: 190 000-230 000 rows/s at compresslevel 6 (the default),
400 000-580 000 rows/s at compresslevel 1 (the next batch is generated on the other core while
one is compressed). Rows are built column by column with numpy and pyarrow compute kernels and
joined into CSV lines by `binary_join_element_wise` straight into the output buffer; only the
few defective rows go through Python. Byte-identical output is promised for the same numpy and
pyarrow versions (numpy may change its random distributions between feature releases).

The other datasets, same box and settings, `stream_dataset` (broadLog: 830 000-910 000 rows/s
in the same runs): trackingLog 740 000-790 000 rows/s for 5 M rows (629 MB; broadLog replay and
reaction sample included), 20 M rows in 27-29 s with peak RSS 1.2 GB (the file-wide sample
keeps 6 bytes a row, the referenced sends ~30 bytes per engaged message), 415 000-460 000
rows/s when reaching back a day over 5 M-row broadLog files; non-deliverables 780 000-900 000,
preferences 940 000-1 400 000, profiles 530 000-620 000 rows/s (2 M rows). gzip at
compresslevel 6: trackingLog 250 000, non-deliverables 270 000, preferences 355 000, profiles
145 000 rows/s; at compresslevel 1: trackingLog 580 000-670 000, profiles 400 000 rows/s.
"""

from __future__ import annotations

from rtcdp_dev.sample_data.aep_push_export import (
    AEP_PUSH_RECORD_SCHEMA,
    DEFAULT_PUSH_DATASET_ID,
    AepPushExport,
    aep_push_token_export,
)
from rtcdp_dev.sample_data.cli import (
    build_parser,
    main,
    resolve_range,
)
from rtcdp_dev.sample_data.common import (
    POOL_SIZE,
    WINDOW,
    GeneratedFile,
    GenerationStats,
    floor_window,
    window_starts,
)
from rtcdp_dev.sample_data.datasets import (
    DATASETS,
    TRACKING_HISTORY_WINDOWS,
    Dataset,
    gzip_bytes,
    write_broadlog_files,
    write_dataset_files,
)
from rtcdp_dev.sample_data.defect_kinds import (
    DEFECT_KINDS,
)
from rtcdp_dev.sample_data.defects import (
    DefectKind,
)
from rtcdp_dev.sample_data.generation import (
    broadlog_file_name,
    dataset_file_name,
    generate_broadlog,
    generate_dataset,
    generate_non_deliverables,
    generate_preferences,
    generate_profiles,
    generate_push_subscriptions,
    generate_tracking_log,
    stream_broadlog,
    stream_broadlog_csv,
    stream_dataset,
)
from rtcdp_dev.sample_data.pipeline import DATASET_LAYOUTS, FLOWS, LAYOUTS
from rtcdp_dev.sample_data.push_subscriptions_rows import (
    PUSH_APPS,
    push_devices,
)
from rtcdp_dev.sample_data.recipients import (
    RecipientDetails,
    RecipientPool,
    recipient_details,
    recipient_pool,
)

__all__ = [
    "AEP_PUSH_RECORD_SCHEMA",
    "DATASETS",
    "DATASET_LAYOUTS",
    "DEFAULT_PUSH_DATASET_ID",
    "DEFECT_KINDS",
    "FLOWS",
    "LAYOUTS",
    "POOL_SIZE",
    "PUSH_APPS",
    "TRACKING_HISTORY_WINDOWS",
    "WINDOW",
    "AepPushExport",
    "Dataset",
    "DefectKind",
    "GeneratedFile",
    "GenerationStats",
    "RecipientDetails",
    "RecipientPool",
    "aep_push_token_export",
    "broadlog_file_name",
    "build_parser",
    "dataset_file_name",
    "floor_window",
    "generate_broadlog",
    "generate_dataset",
    "generate_non_deliverables",
    "generate_preferences",
    "generate_profiles",
    "generate_push_subscriptions",
    "generate_tracking_log",
    "gzip_bytes",
    "main",
    "push_devices",
    "recipient_details",
    "recipient_pool",
    "resolve_range",
    "stream_broadlog",
    "stream_broadlog_csv",
    "stream_dataset",
    "window_starts",
    "write_broadlog_files",
    "write_dataset_files",
]
