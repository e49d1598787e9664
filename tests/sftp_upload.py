"""Files uploaded the way Campaign's export workflow sends them: OpenSSH's own `sftp` client in
batch mode against the test sshd, each file then its `.done` marker."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.drop_files import with_completion_markers


def upload_with_openssh(
    sshd: Any, tmp_path: Path, remote_folder: str, files: Mapping[str, bytes], markers: bool = True
) -> None:
    """`files` (name -> content) into `remote_folder` (created if missing, relative to the SFTP
    user's home), in order, followed by their empty `.done` markers unless `markers` is False."""
    local = tmp_path / "openssh-upload"
    local.mkdir(exist_ok=True)
    sending = with_completion_markers(files) if markers else dict(files)
    commands = []
    path = ""
    for part in remote_folder.strip("/").split("/"):
        path = f"{path}/{part}" if path else part
        commands.append(f"-mkdir {path}")  # `-`: an existing folder is not an error
    for name, data in sending.items():
        (local / name).write_bytes(data)
        commands.append(f'put "{local / name}" "{remote_folder}/{name}"')
    batch = tmp_path / "openssh-upload.batch"
    batch.write_text("\n".join(commands) + "\n")
    done = subprocess.run(
        sshd.sftp_command(batch), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
