#!/usr/bin/env bash
# Installs what Comb needs on Debian 12 that is not there yet (apt packages, npm packages).
# Idempotent: a machine that has everything runs no installer.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libcaf-dev librocksdb-dev capnproto libcapnp-dev doctest-dev libcli11-dev
  libcpp-httplib-dev nlohmann-json3-dev libtomlplusplus-dev libsqlite3-dev sqlite3
  libopenblas-dev libopenblas0-pthread zlib1g-dev libflatbuffers-dev
  libmodsecurity-dev modsecurity-crs clang libfuzzer-14-dev libclang-rt-14-dev
  libssl-dev libxxhash-dev iproute2 procps python3 clang-format libpng-dev libjpeg62-turbo-dev
  libpq-dev postgresql
  chromium fonts-liberation
)
# Extra packages some parts need (benchmark baselines, browser tests) are listed
# here so that one command installs them all.
if [[ "${COMB_SETUP_EXTRA:-}" == 1 ]]; then
  APT_PACKAGES+=(python3-torch python3-torchvision python3-numpy chromium chromium-driver nodejs npm)
fi
# Only to regenerate apps/anomaly/payloads (generate.py); the generated files are committed.
if [[ "${COMB_SETUP_EXTRA:-}" == 1 ]]; then
  APT_PACKAGES+=(sqlmap wfuzz iso-codes python3-fake-factory)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "comb setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The console serves plotly.js from npm and its browser test runs playwright-core, both pinned
# in apps/console/package-lock.json. node and npm come from Debian when the machine has none
# (checked by command: a NodeSource node brings its own npm, which Debian's npm conflicts with).
node_missing=()
command -v node >/dev/null 2>&1 || node_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || node_missing+=(npm)
if ((${#node_missing[@]})); then
  echo "comb setup: installing ${node_missing[*]}"
  SUDO=""
  if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${node_missing[@]}"
fi
console="$here/apps/console"
if [[ ! -f "$console/node_modules/.package-lock.json" \
      || "$console/package-lock.json" -nt "$console/node_modules/.package-lock.json" ]]; then
  echo "comb setup: npm ci in apps/console"
  (cd "$console" && npm ci --no-audit --no-fund --loglevel=error)
fi
