"""SFTP connection and resuming downloads, free of dagster and pydantic; the transfer process.

paramiko handles every SSH packet in Python while holding the GIL, so a download in a thread of
the run process (`ReadAhead`, the default) and the parser in its main thread take turns for it;
the download's receive path (`_ReceiveQueue`) is built to copy as little as it can while it
holds it. With `read_in_child_process`, `SftpDropZone.open_read` streams the file from a child
process instead (`ChildProcessReader`): the child runs the download (`ResumingReader`) with its
own GIL and writes the bytes into a pipe the parser reads. The child imports only this package,
`resources.errors`, paramiko and tenacity (about 0.2 s of start-up); the `resources` package
`__init__` imports dagster (1.3 s), which is why the child is launched through
`resources/sftp_child.py` instead of `python -m`.

Protocol between the two processes:

- stdin (parent -> child): one JSON line with the connection settings, the passphrase included
  (never argv or the environment: both are readable in /proc by the same user), the remote path
  and the read size. The parent keeps stdin open; end of file tells the child its parent is gone.
- stdout (child -> parent): the file's bytes, nothing else. Pipe backpressure bounds memory.
- status pipe (child -> parent, its fd number in argv): JSON lines, `{"event": "open"}` once the
  file is open, then `{"event": "done", "bytes": n}` or `{"event": "error", "kind": ...}`. The
  parent maps the kind back to the exception class the in-process read raises, same message.
- stderr: a temporary file, read (scrubbed, last 2 kB) only when the child dies without a
  status record.

Modules: `connection` (settings, errors, the session), `resuming_reader` (`ResumingReader`,
`ReadAhead`, the GIL switch interval) and `child_process` (`child_main`, `ChildProcessReader`).
"""

from resources.sftp_transfer.child_process import (
    CHILD_SCRIPT,
    MAX_PIPE_BYTES,
    ChildProcessReader,
    child_main,
)
from resources.sftp_transfer.connection import (
    MAX_RESUMES_PER_FILE,
    FileChangedWhileReading,
    ReadAbandoned,
    SftpSession,
    SftpSettings,
    _ReceiveQueue,
    classified_session,
    classify,
    connect,
    reraise_classified,
)
from resources.sftp_transfer.resuming_reader import ReadAhead, ResumingReader, gil_switch_interval

__all__ = [
    "CHILD_SCRIPT",
    "MAX_PIPE_BYTES",
    "MAX_RESUMES_PER_FILE",
    "ChildProcessReader",
    "FileChangedWhileReading",
    "ReadAbandoned",
    "ReadAhead",
    "ResumingReader",
    "SftpSession",
    "SftpSettings",
    "_ReceiveQueue",
    "child_main",
    "classified_session",
    "classify",
    "connect",
    "gil_switch_interval",
    "reraise_classified",
]
