#!/usr/bin/env bash
# The README's main command: install what is missing, build, start the whole head-end and a
# CPE relay on loopback with a fresh development PKI and SQLite databases, and run the flows
# against them. Everything it starts is stopped on exit (--keep leaves the stack running).
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = "--keep" ] && keep=1

bash scripts/deps.sh
bash scripts/build.sh build

work=$(mktemp -d /tmp/opendm-demo.XXXXXX)
cleanup() {
	if [ $keep -eq 0 ]; then
		python3 scripts/devstack.py down --dir "$work" || true
		rm -rf "$work"
	fi
}
trap cleanup EXIT

echo "== starting the head-end (dm-mss dm-iss cdcs-pss cdcs-mss cdcs-iss) and the CPE (sd-if-agent)"
python3 scripts/devstack.py up --build build --dir "$work"

echo "== health of every daemon, asked by dmctl over mutual TLS with the operator certificate"
build/dmctl -c "$work/dmctl.json" health

if [ $keep -eq 1 ]; then
	echo "== the stack keeps running in $work; stop it with:"
	echo "   python3 scripts/devstack.py down --dir $work"
fi
echo "== demo finished"
