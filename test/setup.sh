#!/usr/bin/env bash
# Prepare a fresh Debian 12 + Node 20 machine to build and test dvfs.
# Idempotent: safe to run repeatedly; only does work that is still needed.
set -euo pipefail

# System packages the test suite needs (Debian package names). Append here
# (e.g. slurm-wlm munge swift podman ...) when new tests need more.
SYSTEM_PACKAGES="encfs fuse3 gocryptfs openssl attr"
# OpenStack Swift for the S3 remote tests (test/fixtures/swift/swift.sh):
# python3-swift has every server, s3api and the ring builder; the
# swift-proxy/-account/-container/-object packages only add init scripts and
# uwsgi, which the fixture does not use. memcached is for tempauth, curl for
# the fixture's readiness checks. 35 packages, ~7 MB, ~11 s to install.
SYSTEM_PACKAGES+=" python3-swift memcached curl"
# SLURM for the job lifecycle tests (test/fixtures/slurm/cluster.sh starts munged, slurmctld and slurmd
# itself; the packages' systemd units are not used).
SYSTEM_PACKAGES+=" slurm-wlm munge"

# Container stages (test/stage, test/fixtures/containers; see ../shared/docs/CONTAINERS.md): podman with
# runc (crun cannot start on cgroup v1 hybrid hosts), docker.io (dockerd is started by the tests),
# bubblewrap, and busybox-static for the locally built images (no registry; the SLURM container-stage
# test uses them too).
SYSTEM_PACKAGES+=" podman runc docker.io bubblewrap busybox-static"
# The iterative-sim benchmark's smoke test (test/bench): its plain and stock-EncFS peers version with
# git-annex and push to an S3 special remote on the local Swift.
SYSTEM_PACKAGES+=" git git-annex"
# fio for the load test (test/load/fio.test.ts: concurrent writers that verify their own data).
SYSTEM_PACKAGES+=" fio"

# Optional command each package must provide; a package counts as present
# when dpkg knows it, or (on non-dpkg systems) when its command exists.
declare -A PACKAGE_COMMAND=(
  [encfs]=encfs
  [fuse3]=fusermount3
  [gocryptfs]=gocryptfs
  [openssl]=openssl
  [attr]=setfattr
  [memcached]=memcached
  [curl]=curl
  [slurm-wlm]=slurmctld
  [munge]=munged
  [podman]=podman
  [runc]=runc
  [docker.io]=dockerd
  [bubblewrap]=bwrap
  [busybox-static]=busybox
  [git]=git
  [git-annex]=git-annex
  [fio]=fio
)

say() { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: WARNING: %s\n' "$*" >&2; }

REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"
say "repo root $REPO_ROOT"

package_present() {
  local pkg="$1" cmd="${PACKAGE_COMMAND[$1]:-}"
  if command -v dpkg-query >/dev/null 2>&1; then
    if dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed; then
      return 0
    fi
    return 1
  fi
  [[ -n "$cmd" ]] && command -v "$cmd" >/dev/null 2>&1
}

missing=()
for pkg in $SYSTEM_PACKAGES; do
  if ! package_present "$pkg"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  say "system packages present: $SYSTEM_PACKAGES"
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  say "installing missing system packages: ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
  warn "missing system packages: ${missing[*]}"
  warn "install them as root (apt-get install ${missing[*]}); tests needing them will be skipped"
fi

if [[ ! -e /dev/fuse ]]; then
  warn "/dev/fuse does not exist; FUSE-based tests will be skipped"
fi

# Node dependencies: (re)install when node_modules is missing or older than
# the lockfile (npm ci touches node_modules/.package-lock.json).
if ! command -v npm >/dev/null 2>&1; then
  warn "npm not found; install Node.js 20 first"
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
  warn "Node.js >= 20 required, found $(node --version)"
  exit 1
fi

stamp="node_modules/.package-lock.json"
if [[ -f package-lock.json ]]; then
  if [[ ! -d node_modules || ! -e "$stamp" || package-lock.json -nt "$stamp" ]]; then
    say "installing node dependencies (npm ci)"
    npm ci --no-audit --no-fund
  else
    say "node_modules up to date"
  fi
else
  if [[ ! -d node_modules ]]; then
    say "no package-lock.json; installing node dependencies (npm install)"
    npm install --no-audit --no-fund
  else
    say "node_modules present (no lockfile)"
  fi
fi

say "building (npm run build)"
npm run build
say "done"
