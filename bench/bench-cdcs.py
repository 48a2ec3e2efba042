#!/usr/bin/env python3
"""The Figure 5 benchmark (issue 4): CDCS image download throughput and the agent's sha256
verification rate.

1. Download: a 50 MiB CDCS image served by cdcs-mss (GET /v1/cdcs/images/<session>, mutual
   TLS 1.3 with the device's DM certificate, P-256) against nginx from Debian serving the same
   file over TLS 1.3 with the same certificates and client verification; server pinned to CPU 0,
   curl to CPU 1, on loopback, rounds interleaved, medians compared. Target ratio >= 0.9.
2. Verification: odm-sha256-rate (the agent's own check before installing: read + sha256 +
   size) over the same file against `openssl speed -evp sha256 -bytes 16384`. Target >= 0.8.

Usage: bench/bench-cdcs.py [--rounds R] [--size-mib N] [--no-build] [--keep]
Exit status: 0 targets met, 3 a target missed, 1 the benchmark could not run.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib  # noqa: E402  (bench/, beside this script)
from benchlib import run  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import devstack  # noqa: E402

BDIR = os.path.join(ROOT, "build-bench")
TARGETS = ["dmctl", "dm-app", "dm-agent", "dm-mss", "dm-iss", "cdcs-pss", "cdcs-mss", "cdcs-iss",
           "sd-if-agent", "cdcs-sample-ca", "cdcs-sample-drm", "odm-sha256-rate"]



def curl_speed(url, ident, pki, out=os.devnull):
    """Bytes/s of one download by curl on CPU 1, with the device's DM certificate."""
    r = run(["taskset", "-c", "1", "curl", "-sS", "--fail", "--tlsv1.3", "-o", out,
             "-w", "%{speed_download} %{size_download}",
             "--cert", os.path.join(ident, "cert.pem"), "--key", os.path.join(ident, "key.pem"),
             "--cacert", os.path.join(pki, "ca.crt"), url], timeout=300)
    speed, size = r.stdout.split()
    return float(speed), int(size)


def openssl_sha256_mb_s():
    r = run(["openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "3"],
            timeout=120)
    for line in r.stdout.splitlines():
        if line.startswith("sha256") and line.rstrip().endswith("k"):
            return float(line.split()[-1].rstrip("k")) * 1000 / 1e6
    raise RuntimeError("cannot read openssl speed output:\n" + r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=50)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.rounds < 1 or not 1 <= a.size_mib <= 200:
        ap.error("rounds >= 1, 1 <= size-mib <= 200")
    if (os.cpu_count() or 1) < 2:
        print("bench: needs 2 CPUs (server on CPU 0, client on CPU 1)", file=sys.stderr)
        return 1
    if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "deps.sh"), "--bench"], check=True)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not a.no_build:
        subprocess.run(["cmake", "-S", ROOT, "-B", BDIR, "-DCMAKE_BUILD_TYPE=Release",
                        "-DOPENDM_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", BDIR, "-j2", "--target"] + TARGETS, check=True,
                       stdout=subprocess.DEVNULL)

    tmp = tempfile.mkdtemp(prefix="odm-bench-cdcs.")
    stack = devstack.Stack(BDIR, os.path.join(tmp, "stack"), log_level="warn")
    ngx = None
    try:
        stack.start_all()
        # A policy slot of its own: entitlement "bench" -> sample-ca variant "bench".
        stack.add_rule({"name": "bench", "priority": 1, "entitlement": "bench", "when": {},
                        "vendor": "vendor-a", "cdcs": "sample-ca", "variant": "bench",
                        "min_version": 1, "grants": ["basic"]})
        image = os.path.join(tmp, "image.so")
        with open(stack.bin("cdcs-sample-ca.so"), "rb") as f:
            plugin = f.read()
        with open(image, "wb") as f:
            f.write(plugin + os.urandom(a.size_mib * 1024 * 1024 - len(plugin)))
        stack.publish_cdcs("vendor-a", "sample-ca", "ca", "bench", image=image)
        stack.dmctl("subscriber", "add", "bench-0001")
        stack.set_entitlements("bench-0001", ["bench"])
        code = json.loads(stack.dmctl("--json", "code", "issue", "bench-0001").stdout)["code"]
        dev = stack.device("bench-phone")
        r = dev.install(code=code)
        if r.returncode != 0:
            raise devstack.StackError("Figure 4 failed: " + r.stderr)
        ident = os.path.join(dev.state_dir, "identity")

        # A download session for the image, as the agent would get it (steps 1-13).
        import odmtest  # noqa: E402  (tests/e2e on sys.path)
        ctx = odmtest.client_ctx(stack.pki, name=None)
        ctx.load_cert_chain(os.path.join(ident, "cert.pem"), os.path.join(ident, "key.pem"))
        st, doc, _ = odmtest.request(stack.daemons["cdcs-pss"].port, ctx, "POST",
                                     "/v1/cdcs/authorize",
                                     {"capability": dev.cfg["capability"], "installed": []},
                                     timeout=60)
        item = [i for i in doc["install"] if i["variant"] == "bench"][0]
        st, doc, _ = odmtest.request(stack.daemons["cdcs-mss"].port, ctx, "POST",
                                     "/v1/cdcs/download",
                                     {"download_ticket": item["download_ticket"]}, timeout=60)
        if st != 200:
            raise devstack.StackError("download request refused: %s" % doc)
        odm_url = doc["image_url"]

        port = devstack.free_port()
        ngx = benchlib.start_nginx(nginx, tmp, port, stack.pki, "cdcs-mss", image, cpu=0)
        run(["taskset", "-p", "-c", "0", str(stack.daemons["cdcs-mss"].proc.pid)])
        ngx_url = "https://127.0.0.1:%d/file" % port
        for _ in range(100):
            try:
                curl_speed(ngx_url, ident, stack.pki)
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        # Warm up both (page cache, first handshake), then interleave the rounds.
        size = os.path.getsize(image)
        for url in (odm_url, ngx_url):
            _, got = curl_speed(url, ident, stack.pki)
            if got != size:
                raise devstack.StackError("%s sent %d bytes, not %d" % (url, got, size))
        speeds = {"cdcs-mss": [], "nginx": []}
        for _ in range(a.rounds):
            speeds["cdcs-mss"].append(curl_speed(odm_url, ident, stack.pki)[0])
            speeds["nginx"].append(curl_speed(ngx_url, ident, stack.pki)[0])
        med = {k: statistics.median(v) for k, v in speeds.items()}
        dl_ratio = med["cdcs-mss"] / med["nginx"]

        # The agent's verification (the file is in the page cache after the downloads).
        out = run([stack.bin("odm-sha256-rate"), image, "5"], timeout=300).stdout
        agent_mb_s = float(re.search(r"sha256_verify_mb_s=([0-9.]+)", out).group(1))
        openssl_mb_s = openssl_sha256_mb_s()
        sha_ratio = agent_mb_s / openssl_mb_s
    except (devstack.StackError, subprocess.CalledProcessError, RuntimeError) as e:
        print("bench: %s %s" % (e, getattr(e, "stderr", "") or ""), file=sys.stderr)
        return 1
    finally:
        if ngx is not None:
            ngx.terminate()
            ngx.wait(10)
        try:
            stack.stop_all()
        finally:
            if a.keep:
                print("bench: kept %s" % tmp)
            else:
                shutil.rmtree(tmp, ignore_errors=True)

    mib = 1024 * 1024
    print("image %d MiB, %d rounds (medians)" % (a.size_mib, a.rounds))
    print("download  cdcs-mss %8.1f MiB/s   nginx %8.1f MiB/s   ratio %.2f (target >= 0.9)" %
          (med["cdcs-mss"] / mib, med["nginx"] / mib, dl_ratio))
    print("sha256    agent    %8.1f MB/s    openssl speed %8.1f MB/s   ratio %.2f (target >= 0.8)"
          % (agent_mb_s, openssl_mb_s, sha_ratio))
    return 0 if dl_ratio >= 0.9 and sha_ratio >= 0.8 else 3


if __name__ == "__main__":
    sys.exit(main())
