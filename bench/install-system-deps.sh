#!/usr/bin/env bash
# Install the real servers the bench starts (mosquitto, nats-server, redis-server,
# PostgreSQL) when they are missing. Debian/Ubuntu via apt-get; anything else gets a
# message naming what to install. Extra package names may be passed as arguments.
set -euo pipefail

declare -A PACKAGE_OF=(
  [mosquitto]=mosquitto
  [nats-server]=nats-server
  [redis-server]=redis-server
  [initdb]=postgresql
  # setpriv (parent-death signal) and prlimit (open-file limit) wrap every server
  [setpriv]=util-linux
  [prlimit]=util-linux
  [chromium]=chromium
)

have() {
  local tool=$1
  command -v "$tool" >/dev/null 2>&1 && return 0
  # Debian keeps mosquitto/nats-server in /usr/sbin and initdb under /usr/lib/postgresql.
  [ -x "/usr/sbin/$tool" ] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/$tool" >/dev/null 2>&1 && return 0
  return 1
}

# Build dependencies of the Mosquitto plugin (bench/mosquitto_plugin): headers + compiler.
declare -A PACKAGE_OF_HEADER=(
  [/usr/include/mosquitto_plugin.h]=mosquitto-dev
  [/usr/include/mosquitto.h]=libmosquitto-dev
  [/usr/include/x86_64-linux-gnu/curl/curl.h]=libcurl4-openssl-dev
  [/usr/include/openssl/x509.h]=libssl-dev
)

missing=("$@")
for tool in "${!PACKAGE_OF[@]}"; do
  have "$tool" || missing+=("${PACKAGE_OF[$tool]}")
done
for header in "${!PACKAGE_OF_HEADER[@]}"; do
  # curl's headers live under the multiarch dir; accept them anywhere under /usr/include.
  [ -e "$header" ] || compgen -G "/usr/include/*/${header#/usr/include/*/}" >/dev/null 2>&1 \
    || missing+=("${PACKAGE_OF_HEADER[$header]}")
done
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v make >/dev/null 2>&1 || missing+=(make)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing missing system packages: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found. Install these yourself and re-run: ${missing[*]}" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "error: not root and no sudo. As root run: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d stops the packages from starting their system-wide daemons: the bench
# starts its own servers on free ports and must not fight over the standard ones.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
