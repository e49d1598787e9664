#!/usr/bin/env bash
# Installs the real services the integration tests, benchmarks and demo start (rtcdp_dev/services):
#   - OpenSSH's sshd as the Campaign SFTP server, and the `sftp` client the benchmarks compare
#     against (Debian packages openssh-server and openssh-client);
#   - Azurite, Microsoft's Azure Blob API emulator, from the npm registry, pinned by
#     tests/azurite/package-lock.json (npm ci installs exactly the locked tree);
#   - PostgreSQL (Debian package postgresql) for the production-style Dagster instance; the
#     tests start a private cluster themselves, the package's own cluster is never used;
#   - Chromium (Debian package chromium), which Playwright (PyPI, a dev dependency) drives in the
#     browser tests (tests/browser); Playwright's own browser download is never used;
#   - nginx (Debian package nginx), the authenticating proxy in front of the two webservers
#     (deploy/one-host/nginx-rtcdp.conf); tests/deployment/test_ui_doors.py runs the binary in
#     the foreground with its own config, the package's own service is never used.
# Idempotent and silent when everything is in place. Needs root for apt-get on a fresh machine;
# never reads standard input.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "install_test_services: $*" >&2; }

# ---- OpenSSH -------------------------------------------------------------------------------
if [ ! -x /usr/sbin/sshd ] || [ ! -x /usr/bin/sftp ] || [ ! -x /usr/bin/ssh-keygen ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "openssh-server/openssh-client are missing and apt-get needs root; run this as root"
    exit 1
  fi
  log "installing openssh-server and openssh-client with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt-get (for example a machine's first-boot provisioning) may hold the dpkg lock:
  # wait for it instead of failing.
  apt_opts=(-q -o DPkg::Lock::Timeout=600)
  apt-get "${apt_opts[@]}" update </dev/null >/dev/null
  apt-get "${apt_opts[@]}" install -y --no-install-recommends openssh-server openssh-client \
    </dev/null >/dev/null
fi

# ---- PostgreSQL ----------------------------------------------------------------------------
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null \
  || ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    log "postgresql is missing and apt-get needs root; run this as root"
    exit 1
  fi
  log "installing postgresql with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-q -o DPkg::Lock::Timeout=600)
  apt-get "${apt_opts[@]}" update </dev/null >/dev/null
  apt-get "${apt_opts[@]}" install -y --no-install-recommends postgresql </dev/null >/dev/null
fi

# ---- Chromium -------------------------------------------------------------------------------
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "chromium is missing and apt-get needs root; run this as root"
    exit 1
  fi
  log "installing chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-q -o DPkg::Lock::Timeout=600)
  apt-get "${apt_opts[@]}" update </dev/null >/dev/null
  apt-get "${apt_opts[@]}" install -y --no-install-recommends chromium </dev/null >/dev/null
fi

# ---- nginx ----------------------------------------------------------------------------------
if [ ! -x /usr/sbin/nginx ] || ! command -v openssl >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    log "nginx is missing and apt-get needs root; run this as root"
    exit 1
  fi
  log "installing nginx and openssl with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-q -o DPkg::Lock::Timeout=600)
  apt-get "${apt_opts[@]}" update </dev/null >/dev/null
  # The package starts its default site on port 80 where systemd runs; the tests never use it.
  apt-get "${apt_opts[@]}" install -y --no-install-recommends nginx openssl </dev/null >/dev/null
fi

# ---- Azurite -------------------------------------------------------------------------------
azurite_dir=tests/azurite
pinned="$(sed -n 's/.*"azurite": *"\([^"]*\)".*/\1/p' "$azurite_dir/package.json")"
installed=""
if [ -x "$azurite_dir/node_modules/.bin/azurite-blob" ] \
  && [ -f "$azurite_dir/node_modules/azurite/package.json" ]; then
  installed="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
    "$azurite_dir/node_modules/azurite/package.json" | head -n 1)"
fi
# Also reinstall when package.json's pin moved on, so a version bump needs no manual cleanup.
if [ "$installed" != "$pinned" ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "Azurite needs Node.js 20 or newer with npm; neither node nor npm is on PATH"
    exit 1
  fi
  node_major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$node_major" -lt 20 ]; then
    log "Azurite's locked dependencies need Node.js 20 or newer (found $(node --version))"
    exit 1
  fi
  log "installing Azurite $pinned with npm ci in $azurite_dir"
  # --ignore-scripts: no package in the locked tree has an install script, and none should
  # start running one unnoticed.
  (cd "$azurite_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
    </dev/null >/dev/null)
fi
