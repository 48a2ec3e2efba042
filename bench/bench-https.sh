#!/usr/bin/env bash
# The TLS benchmark of the foundation issue: dm-mss against nginx from Debian, both serving
# GET /v1/health over HTTP/1.1 + TLS 1.3 with mutual authentication and P-256 certificates, on
# loopback, one worker each, pinned to CPU 0, driven by odm-bench (bench/mtls_load.c) on CPU 1.
# Reports the daemon's new-connection and keep-alive rates as ratios to nginx's.
# Targets: new >= 0.9, keep-alive >= 0.6. See bench/README.md.
set -euo pipefail

usage() {
	cat <<EOF
usage: bench/bench-https.sh [--rounds R] [--duration S] [--concurrency C]
                            [--only nginx|dm-mss] [--no-build] [--keep]
  --rounds R       interleaved rounds (default 3); medians are reported
  --duration S     seconds per run (default 5, at most 120)
  --concurrency C  connections in flight (default 32)
  --only NAME      run one server only (no ratios), e.g. to profile it
  --no-build       use the existing build-bench/ as it is
  --keep           keep the temporary directory (PKI, configs, logs) and print its path
Exit status: 0 targets met, 3 a target missed, 1 the benchmark could not run.
EOF
}

rounds=3
duration=5
conc=32
only=""
build=1
keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) rounds=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--concurrency) conc=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--no-build) build=0; shift ;;
	--keep) keep=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 1 ;;
	esac
done
case "$rounds$duration$conc" in *[!0-9]*) echo "bench: numbers only" >&2; exit 1 ;; esac
if [ "$rounds" -lt 1 ] || [ "$duration" -lt 1 ] || [ "$duration" -gt 120 ] || [ "$conc" -lt 1 ]; then
	echo "bench: rounds >= 1, 1 <= duration <= 120, concurrency >= 1" >&2
	exit 1
fi
case "$only" in "" | nginx | dm-mss) ;; *) echo "bench: --only nginx|dm-mss" >&2; exit 1 ;; esac

cd "$(dirname "$0")/.."
root=$PWD
bdir=$root/build-bench

# (a) nginx and a Release build.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
	bash scripts/deps.sh --bench
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [ "$(nproc)" -lt 2 ]; then
	echo "bench: needs 2 CPUs (server on CPU 0, client on CPU 1)" >&2
	exit 1
fi
targets=(dmctl odm-bench dm-agent)
[ "$only" = nginx ] || targets+=(dm-mss)
if [ "$build" = 1 ]; then
	cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DOPENDM_TESTS=OFF >/dev/null
	cmake --build "$bdir" -j2 --target "${targets[@]}" >/dev/null
fi
for exe in "${targets[@]}"; do
	[ -x "$bdir/$exe" ] || { echo "bench: $bdir/$exe missing (build failed?)" >&2; exit 1; }
done

# (g) Stop exactly what this script started, whatever happens.
tmp=$(mktemp -d /tmp/odm-bench.XXXXXX)
nginx_pid=""
dm_pid=""
cleanup() {
	local rc=$?
	for pid in $nginx_pid $dm_pid; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in $nginx_pid $dm_pid; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "$keep" = 1 ]; then
		echo "bench: kept $tmp"
	else
		rm -rf "$tmp"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# (b) The PKI: root CA, service CA, dm-mss server and operator client certificates, all P-256.
pki=$tmp/pki
"$bdir/dmctl" pki init "$pki" >"$tmp/pki.log" 2>&1 || {
	echo "bench: dmctl pki init failed:" >&2
	cat "$tmp/pki.log" >&2
	exit 1
}
for f in ca.crt dm-mss.crt dm-mss.key operator.crt operator.key; do
	[ -s "$pki/$f" ] || { echo "bench: dmctl pki init made no $f" >&2; exit 1; }
done

# Two free loopback ports, below the ephemeral range (32768+) the client connects from.
port_free() {
	! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}
pick_port() {
	local p=$((20000 + RANDOM % 12000))
	while ! port_free "$p" || [ "$p" = "${1:-}" ]; do
		p=$((20000 + RANDOM % 12000))
	done
	echo "$p"
}
nginx_port=$(pick_port)
dm_port=$(pick_port "$nginx_port")

# (c) nginx: one worker, TLS 1.3 only, the same groups and trust anchor as the daemon, no
# session resumption of any kind. NumTickets 0: with tickets and the cache off, nginx 1.22 still
# makes and sends two (unusable) TLS 1.3 tickets per handshake; the daemon sends none, so this
# keeps the work per handshake the same on both sides (and makes the baseline stricter).
# ssl_verify_depth 2: the client chain is leaf <- service CA <- root.
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
master_process on;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
worker_rlimit_nofile 20000;
events {
	worker_connections 10000;
}
http {
	access_log off;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	keepalive_requests 100000;
	keepalive_timeout 60s;
	server {
		listen 127.0.0.1:$nginx_port ssl;
		ssl_certificate $pki/dm-mss.crt;
		ssl_certificate_key $pki/dm-mss.key;
		ssl_protocols TLSv1.3;
		ssl_ecdh_curve X25519:prime256v1;
		ssl_verify_client on;
		ssl_verify_depth 2;
		ssl_client_certificate $pki/ca.crt;
		ssl_session_tickets off;
		ssl_session_cache off;
		ssl_conf_command NumTickets 0;
		location = /v1/health {
			default_type application/json;
			return 200 '{"role":"nginx","status":"ok"}';
		}
	}
}
EOF

# (d) dm-mss with the same certificate, key and trust anchor. Its role section needs a
# published agent package to start; the benchmark itself only asks for /v1/health.
"$bdir/dmctl" agent-package --binary "$bdir/dm-agent" --platform linux-x86_64 --version 0.1.0 \
	--version-number 1 --key "$pki/dm-agent-signing.key" --out "$tmp/packages" >/dev/null
cat >"$tmp/dm-mss.json" <<EOF
{"listen":{"address":"127.0.0.1","port":$dm_port},"database":"$tmp/dm-mss.db",
 "tls":{"cert":"$pki/dm-mss.crt","key":"$pki/dm-mss.key","ca":"$pki/ca.crt"},
 "log_level":"warn","limits":{"max_connections":10000},
 "dm_mss":{"app_ca":"$pki/app-ca.crt","enrolment_key":"$pki/enrolment-signing.key",
  "agent_pubkey":"$pki/dm-agent-signing.pub","packages_dir":"$tmp/packages",
  "dm_iss_url":"https://127.0.0.1:1"}}
EOF

client=(taskset -c 1 "$bdir/odm-bench" --host 127.0.0.1 --cert "$pki/operator.crt"
	--key "$pki/operator.key" --ca "$pki/ca.crt" --path /v1/health --concurrency "$conc")

# Wait until a server answers a real mTLS request (10 s at most).
wait_ready() {
	local name=$1 port=$2 pid=$3 log=$4
	for _ in $(seq 1 50); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: $name exited at start:" >&2
			tail -n 20 "$log" >&2
			exit 1
		fi
		if "${client[@]}" --port "$port" --mode keepalive --duration 0.1 --timeout 1 \
			>/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	echo "bench: $name does not answer on port $port:" >&2
	tail -n 20 "$log" >&2
	exit 1
}

if [ "$only" != dm-mss ]; then
	taskset -c 0 "$nginx_bin" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx/" \
		>"$tmp/nginx/stderr.log" 2>&1 &
	nginx_pid=$!
	wait_ready nginx "$nginx_port" "$nginx_pid" "$tmp/nginx/error.log"
fi
if [ "$only" != nginx ]; then
	taskset -c 0 "$bdir/dm-mss" -c "$tmp/dm-mss.json" >"$tmp/dm-mss.log" 2>&1 &
	dm_pid=$!
	wait_ready dm-mss "$dm_port" "$dm_pid" "$tmp/dm-mss.log"
fi

# CPU time (user + system, clock ticks) of a server's processes: for nginx the master's
# children (the worker), for the daemon the daemon itself.
cpu_ticks() {
	local pid=$1 t=0 p f
	for p in $pid $(pgrep -P "$pid" || true); do
		if read -r -a f <"/proc/$p/stat" 2>/dev/null; then
			t=$((t + f[13] + f[14]))
		fi
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)

# (e) Interleaved runs, so that drift on a shared machine hits both servers alike.
results=$tmp/results
: >"$results"
run_one() {
	local name=$1 port=$2 pid=$3 mode=$4 out t0 t1
	t0=$(cpu_ticks "$pid")
	out=$("${client[@]}" --port "$port" --mode "$mode" --duration "$duration" 2>"$tmp/client.err") || {
		echo "bench: odm-bench failed against $name ($mode):" >&2
		cat "$tmp/client.err" >&2
		exit 1
	}
	t1=$(cpu_ticks "$pid")
	# server_cpu: share of one core the server used during the run.
	out="$out server_cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$duration" \
		'BEGIN { printf "%.2f", d / hz / s }')"
	printf '%-7s %s\n' "$name" "$out"
	echo "$name $out" >>"$results"
	if [ -s "$tmp/client.err" ]; then
		sed 's/^/    /' "$tmp/client.err" | head -n 5
	fi
}

echo "bench: $rounds rounds x ${duration}s, concurrency $conc, servers on CPU 0, client on CPU 1"
for r in $(seq 1 "$rounds"); do
	echo "round $r"
	for mode in new keepalive; do
		[ -n "$nginx_pid" ] && run_one nginx "$nginx_port" "$nginx_pid" "$mode"
		[ -n "$dm_pid" ] && run_one dm-mss "$dm_port" "$dm_pid" "$mode"
	done
done

# (f) Medians and ratios. Per run: rate (req/s), server_cpu (cores), and rate / server_cpu
# (requests per server CPU-second), which does not depend on whether the server was saturated.
awk -v rounds="$rounds" -v only="$only" '
function kv(s, k,   i, n, a) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++)
		if (index(a[i], k "=") == 1)
			return substr(a[i], length(k) + 2) + 0
	return 0
}
function median(key,   n, i, j, t, v) {
	n = cnt[key]
	for (i = 1; i <= n; i++)
		v[i] = val[key, i]
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function add(key, x) {
	val[key, ++cnt[key]] = x
}
{
	name = $1
	split($2, m, "="); mode = m[2]
	rate = kv($0, "rate"); scpu = kv($0, "server_cpu")
	add(name SUBSEP mode SUBSEP "rate", rate)
	add(name SUBSEP mode SUBSEP "scpu", scpu)
	add(name SUBSEP mode SUBSEP "ccpu", kv($0, "client_cpu"))
	add(name SUBSEP mode SUBSEP "eff", scpu > 0 ? rate / scpu : 0)
	add(name SUBSEP mode SUBSEP "p99", kv($0, "p99_ms"))
	errors[name, mode] += kv($0, "errors")
	seen[name] = 1
}
END {
	printf "\nmedians of %d rounds\n", rounds
	printf "%-7s %-9s %12s %11s %14s %11s %8s %7s\n", "server", "mode", "rate(req/s)",
	       "server_cpu", "req/server-s", "client_cpu", "p99_ms", "errors"
	split("nginx dm-mss", names, " ")
	split("new keepalive", modes, " ")
	for (i = 1; i <= 2; i++)
		for (j = 1; j <= 2; j++) {
			n = names[i]; md = modes[j]
			if (!(n in seen))
				continue
			k = n SUBSEP md SUBSEP
			R[n, md] = median(k "rate"); E[n, md] = median(k "eff")
			printf "%-7s %-9s %12.0f %11.2f %14.0f %11.2f %8.2f %7d\n", n, md,
			       R[n, md], median(k "scpu"), E[n, md], median(k "ccpu"),
			       median(k "p99"), errors[n, md]
		}
	if (only != "")
		exit 0
	miss = 0
	target["new"] = 0.9; target["keepalive"] = 0.6
	label["new"] = "new-connection mTLS"; label["keepalive"] = "keep-alive JSON"
	printf "\n"
	for (j = 1; j <= 2; j++) {
		md = modes[j]
		ratio = R["nginx", md] > 0 ? R["dm-mss", md] / R["nginx", md] : 0
		eff = E["nginx", md] > 0 ? E["dm-mss", md] / E["nginx", md] : 0
		ok = ratio >= target[md]
		miss += !ok
		printf "%-20s dm-mss/nginx = %.2f  target >= %.1f  %s   (per server CPU-second: %.2f)\n",
		       label[md], ratio, target[md], ok ? "MET" : "MISSED", eff
	}
	exit miss ? 3 : 0
}' "$results"
