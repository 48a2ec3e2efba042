#!/usr/bin/env python3
"""The relay benchmark (issue 5): a download through sd-if-agent's CONNECT relay against the
same download direct, and the relay's memory per open tunnel.

1. Throughput: nginx serves an N MiB file over TLS 1.3 with client verification (as in
   bench-cdcs.py: the fastest server there is, so the relay's cost shows); curl downloads it
   direct, then through the relay (`--proxy https://127.0.0.1:RELAY --proxy-cert link.crt
   --proxy-key link.key --proxy-cacert cpe-ca.crt`, the end-to-end TLS inside the tunnel);
   rounds interleaved, medians compared. Target ratio >= 0.8.
2. Memory: open N idle tunnels (TLS link + CONNECT + upstream connection each) and compare the
   relay's VmRSS before and after; report KiB per tunnel. Target <= 64 KiB.

The device's link is paired by writing the pairing row into sd-if-agent's database (the relay
checks it at every new tunnel), so the benchmark measures the relay alone.

Usage: bench/bench-relay.py [--rounds R] [--size-mib N] [--tunnels T] [--build DIR] [--no-build]
       [--keep]
Exit status: 0 targets met, 3 a target missed, 1 the benchmark could not run.
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib  # noqa: E402  (bench/, beside this script)
from benchlib import run  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TARGETS = ["dmctl", "sd-if-agent"]



class BenchError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise BenchError("%s exited with %d" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError("%s does not listen on %d" % (what, port))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError("no VmRSS for %d" % pid)


def make_link(d):
    """A self-signed EC P-256 link certificate as a device makes it; its SPKI sha256."""
    key, crt = os.path.join(d, "link.key"), os.path.join(d, "link.crt")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=bench-phone"])
    os.chmod(key, 0o600)
    pub = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True).stdout
    with open(crt) as f:
        return crt, key, hashlib.sha256(der).hexdigest(), f.read()


def curl_speed(url, pki, proxy=None):
    cmd = ["curl", "-sS", "--fail", "--tlsv1.3", "-o", os.devnull,
           "-w", "%{speed_download} %{size_download}",
           "--cert", os.path.join(pki, "app.crt"), "--key", os.path.join(pki, "app.key"),
           "--cacert", os.path.join(pki, "ca.crt")]
    if proxy is not None:
        cmd += ["--proxy", proxy["url"], "--proxy-cert", proxy["cert"], "--proxy-key",
                proxy["key"], "--proxy-cacert", proxy["ca"]]
    r = run(cmd + [url], timeout=300)
    speed, size = r.stdout.split()
    return float(speed), int(size)


def open_tunnel(port, ctx, target):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    t.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = t.recv(1)
        if not b:
            raise BenchError("tunnel closed: %r" % head)
        head += b
    if not head.startswith(b"HTTP/1.1 200"):
        raise BenchError("tunnel refused: %r" % head)
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=50)
    ap.add_argument("--tunnels", type=int, default=200)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.rounds < 1 or not 1 <= a.size_mib <= 200 or not 1 <= a.tunnels <= 1000:
        ap.error("rounds >= 1, 1 <= size-mib <= 200, 1 <= tunnels <= 1000")
    if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "deps.sh"), "--bench"], check=True)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not a.no_build:
        subprocess.run(["cmake", "-S", ROOT, "-B", a.build, "-DCMAKE_BUILD_TYPE=Release",
                        "-DOPENDM_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", a.build, "-j2", "--target"] + TARGETS, check=True,
                       stdout=subprocess.DEVNULL)

    tmp = tempfile.mkdtemp(prefix="odm-bench-relay.")
    pki = os.path.join(tmp, "pki")
    procs = []
    try:
        run([os.path.join(a.build, "dmctl"), "pki", "init", pki])
        image = os.path.join(tmp, "file.bin")
        with open(image, "wb") as f:
            f.write(os.urandom(a.size_mib * 1024 * 1024))

        nport, rport, aport = free_port(), free_port(), free_port()
        ngx = benchlib.start_nginx(nginx, tmp, nport, pki, "dm-mss", image)
        procs.append(ngx)

        target = "127.0.0.1:%d" % nport
        cfg = {
            "listen": {"address": "127.0.0.1", "port": aport},
            "database": os.path.join(tmp, "sd-if-agent.db"),
            "tls": {"cert": os.path.join(pki, "sd-if-agent.crt"),
                    "key": os.path.join(pki, "sd-if-agent.key"),
                    "ca": os.path.join(pki, "ca.crt")},
            "log_level": "warn",
            "sd_if_agent": {
                "app_ca": os.path.join(pki, "app-ca.crt"),
                "control_socket": os.path.join(tmp, "sdif.sock"),
                "relay_public_url": "https://127.0.0.1:%d" % rport,
                "relay": {"address": "127.0.0.1", "port": rport, "allow": [target],
                          "max_tunnels": 4096, "max_tunnels_per_device": 4096},
            },
        }
        conf = os.path.join(tmp, "sd-if-agent.json")
        with open(conf, "w") as f:
            json.dump(cfg, f)
        log = open(os.path.join(tmp, "sd-if-agent.log"), "w")
        agent = subprocess.Popen([os.path.join(a.build, "sd-if-agent"), "-c", conf],
                                 stdout=log, stderr=log)
        procs.append(agent)
        wait_port(nport, ngx, "nginx")
        wait_port(rport, agent, "sd-if-agent")

        crt, key, fp, pem = make_link(tmp)
        db = sqlite3.connect(cfg["database"], timeout=10)
        with db:
            db.execute("INSERT INTO pairing (hw_id, link_cert_fp, paired_at, link_cert)"
                       " VALUES (?, ?, ?, ?)", ("bench-phone", fp, int(time.time()), pem))
        db.close()

        url = "https://%s/file" % target
        proxy = {"url": "https://127.0.0.1:%d" % rport, "cert": crt, "key": key,
                 "ca": os.path.join(pki, "cpe-ca.crt")}
        size = os.path.getsize(image)
        for p in (None, proxy):  # warm up both, and check the bytes arrive
            _, got = curl_speed(url, pki, p)
            if got != size:
                raise BenchError("%s: %d bytes, not %d" % ("relay" if p else "direct", got,
                                                           size))
        speeds = {"direct": [], "relay": []}
        for _ in range(a.rounds):
            speeds["direct"].append(curl_speed(url, pki)[0])
            speeds["relay"].append(curl_speed(url, pki, proxy)[0])
        med = {k: statistics.median(v) for k, v in speeds.items()}
        ratio = med["relay"] / med["direct"]

        # Memory: one tunnel first, so that one-time allocations are not counted.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(os.path.join(pki, "cpe-ca.crt"))
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the CPE CA is the anchor
        ctx.load_cert_chain(crt, key)
        warm = [open_tunnel(rport, ctx, target) for _ in range(4)]
        time.sleep(0.5)
        before = rss_kib(agent.pid)
        tunnels = [open_tunnel(rport, ctx, target) for _ in range(a.tunnels)]
        time.sleep(0.5)
        after = rss_kib(agent.pid)
        per_tunnel = (after - before) / a.tunnels
        for t in tunnels + warm:
            t.close()
    except (BenchError, subprocess.CalledProcessError, OSError, sqlite3.Error) as e:
        print("bench: %s %s" % (e, getattr(e, "stderr", "") or ""), file=sys.stderr)
        return 1
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if a.keep:
            print("bench: kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    mib = 1024 * 1024
    print("download %d MiB, %d rounds (medians)" % (a.size_mib, a.rounds))
    print("direct %8.1f MiB/s   through the relay %8.1f MiB/s   ratio %.2f (target >= 0.8)" %
          (med["direct"] / mib, med["relay"] / mib, ratio))
    print("memory %d idle tunnels: VmRSS %d -> %d KiB, %.1f KiB per tunnel (target <= 64)" %
          (a.tunnels, before, after, per_tunnel))
    return 0 if ratio >= 0.8 and per_tunnel <= 64 else 3


if __name__ == "__main__":
    sys.exit(main())
