"""Entry point of the process `SftpDropZone.open_read` downloads through (sftp_transfer/).

Launched by path (`python -P resources/sftp_child.py <status fd>`), not with `-m resources...`:
importing the `resources` package runs its `__init__`, which imports dagster (1.3 s of start-up
for every file read); the transfer needs only paramiko.
"""

import os
import sys
import types
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    # A bare stand-in for the package: its modules import without running its __init__.
    package = types.ModuleType("resources")
    package.__path__ = [str(here)]
    sys.modules["resources"] = package
    # paramiko.config imports invoke (60 ms of start-up, unittest.mock included) only for
    # ssh_config's `Match exec`, which the transfer never uses; None makes the import fail fast.
    sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]
    from resources.sftp_transfer import child_main

    return child_main(sys.argv[1:])


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Everything is closed and reported by now; the interpreter's shutdown would only run
    # paramiko's finalizers, which can block on the threads of a closed transport.
    os._exit(code)
