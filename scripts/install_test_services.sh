#!/usr/bin/env bash
# Installs the real services the integration tests start: OpenSSH's sshd (Debian package) and
# Azurite (npm registry, pinned by tests/azurite/package-lock.json). Idempotent; needs root for
# apt-get on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null || ! command -v sftp >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
fi
if [ ! -x tests/azurite/node_modules/.bin/azurite-blob ]; then
  (cd tests/azurite && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
