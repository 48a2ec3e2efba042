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

dmctl() { build/dmctl -c "$work/dmctl.json" "$@"; }
echo "== the home: subscriber demo-0001, whose set-top box (CPE cpe-0001) pairs a new phone"
dmctl subscriber add demo-0001 --device-limit 3
dmctl cpe add cpe-0001 demo-0001
device=$(python3 scripts/devstack.py device --dir "$work" --name demo-phone --hw-id hw-demo-0001)
applog="$(dirname "$device")/dm-app.log"
pin=$(build/sd-if-agent -c "$work/conf/sd-if-agent.json" ctl pair --json |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["pin"])')
echo "the set-top box shows the pairing PIN $pin"
echo "\$ dm-app -c $device pair --pin $pin"
if ! build/dm-app -c "$device" pair --pin "$pin" 2>>"$applog"; then
	tail -n 5 "$applog" >&2
	exit 1
fi
build/sd-if-agent -c "$work/conf/sd-if-agent.json" ctl list

echo "== Figure 4 through the CPE relay: the paired phone downloads, installs and personalizes its DM agent"
echo "\$ dm-app -c $device install --paired"
# dm-app logs its steps on stderr: keep them for the step listing, show its verdict.
if ! build/dm-app -c "$device" install --paired 2>>"$applog"; then
	tail -n 5 "$applog" >&2
	exit 1
fi
grep -h '^dm-app: ' "$applog" | tail -n 1 || true
echo "\$ dm-app -c $device status"
build/dm-app -c "$device" status 2>>"$applog"
dmctl device show hw-demo-0001

echo "== the twelve steps of Figure 4, from the logs of dm-app, dm-mss, dm-agent and dm-iss"
python3 scripts/devstack.py steps --dir "$work" --subject hw-demo-0001

echo "== Figure 5 (through the relay as well): the operator publishes the sample CA and DRM clients and sets the policy"
python3 scripts/devstack.py fig5-setup --dir "$work"
dmctl cdcs list
dmctl policy list
dmctl entitlement set demo-0001 basic,premium
echo "\$ dm-app -c $device cdcs sync"
if ! build/dm-app -c "$device" cdcs sync 2>>"$applog"; then
	tail -n 5 "$applog" >&2
	exit 1
fi
echo "\$ dm-app -c $device cdcs status"
build/dm-app -c "$device" cdcs status 2>>"$applog"
dm_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dm_id"])' \
	"$(dirname "$device")/state/identity/identity.json")
dmctl policy device "$dm_id"

echo "== the twenty steps of Figure 5, from the logs of dm-agent, cdcs-pss, cdcs-mss and cdcs-iss"
python3 scripts/devstack.py steps --dir "$work" --flow fig5 --subject "$dm_id"

echo "== content protected for 'premium' by each CA/DRM system, played through the personalized clients"
content="$work/content"
mkdir -p "$content"
printf 'opendm sample programme: %s\n' "$(date -u +%FT%TZ)" >"$content/programme.txt"
head -c 65536 /dev/urandom >>"$content/programme.txt"
for system in vendor-a/sample-ca vendor-b/sample-drm; do
	out="$content/$(basename "$system").jwe"
	dmctl content encrypt --keys "$work/pki/entitlement-keys.json" --system "$system" \
		--level premium --in "$content/programme.txt" --out "$out"
	echo "\$ dm-app -c $device play $out"
	build/dm-app -c "$device" play "$out" --out "$content/played-$(basename "$system")" \
		2>>"$applog"
	if cmp -s "$content/programme.txt" "$content/played-$(basename "$system")"; then
		echo "played through $system: identical to the original ($(wc -c <"$content/programme.txt") bytes)"
	else
		echo "demo: content played through $system differs from the original" >&2
		exit 1
	fi
done

echo "== the relay carried both flows without being able to read them: its tunnels"
grep -h 'sdif=tunnel open' "$work/log/sd-if-agent.log" | grep -c 'hw_id=hw-demo-0001' |
	xargs printf 'tunnels opened for hw-demo-0001 through the CPE: %s\n'

echo "== what an operator sees: why the device got these clients, and its history in the audit logs"
dmctl explain "$dm_id"
dmctl device history hw-demo-0001

if [ $keep -eq 0 ]; then
	build/dm-app -c "$device" stop 2>>"$applog" || true
fi

if [ $keep -eq 1 ]; then
	echo "== the stack keeps running in $work; stop it with:"
	echo "   python3 scripts/devstack.py down --dir $work"
fi
echo "== demo finished"
