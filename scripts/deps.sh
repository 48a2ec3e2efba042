#!/usr/bin/env bash
# Installs the Debian packages opendm needs to build, test and run its demo.
# Safe to run again: it only installs what is missing. Needs root (or sudo).
set -euo pipefail

pkgs=(
	build-essential cmake pkg-config clang-format
	libssl-dev libevent-dev libjansson-dev libsqlite3-dev libcmocka-dev
	libcjose-dev libcurl4-openssl-dev
	curl openssl sqlite3 procps iproute2 python3 python3-cryptography
)
if [ "${1:-}" = "--bench" ]; then
	pkgs+=(nginx-light)
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
