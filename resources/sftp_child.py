"""Entry point of the process `SftpDropZone.open_read` downloads through (sftp_transfer.py).

Launched by path (`python -P resources/sftp_child.py <status fd>`), not with `-m resources...`:
importing the `resources` package runs its `__init__`, which imports dagster (1.3 s of start-up
for every file read); the transfer needs only paramiko.
"""

import sys
import types
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    # A bare stand-in for the package: its modules import without running its __init__.
    package = types.ModuleType("resources")
    package.__path__ = [str(here)]
    sys.modules["resources"] = package
    from resources.sftp_transfer import child_main

    return child_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
