#!/usr/bin/env python3
"""Foundation: the six daemons on loopback with a fresh development PKI.

Against each daemon: health over mutual TLS with dmctl and with curl; handshakes refused
without a client certificate, with one from a foreign CA and with TLS 1.2; malformed JSON
and unknown keys are a JSON 400; an oversized body is refused on its Content-Length alone;
oversized headers are refused; idle connections are closed; SIGHUP swaps the certificate
while a client stays connected; SIGTERM exits 0 and leaves nothing running.
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import unittest

import odmtest
from odmtest import ROLES, client_ctx, read_response, request, run_dmctl, tls_connect

MAX_BODY = 65536
IDLE = 2


class Foundation(odmtest.StackTest):
    limits = {"max_body_bytes": MAX_BODY, "idle_timeout_s": IDLE, "max_header_bytes": 8192}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.foreign = os.path.join(cls.workdir, "foreign-pki")
        r = run_dmctl(["pki", "init", cls.foreign])
        if r.returncode != 0:
            raise RuntimeError("foreign pki: " + r.stderr)

    def ctx(self, **kw):
        return client_ctx(self.pki, **kw)

    def assert_refused(self, port, ctx):
        """The server must not answer: the handshake fails or the connection dies."""
        try:
            s = tls_connect(port, ctx)
        except (ssl.SSLError, ConnectionError, OSError):
            return
        try:
            # TLS 1.3: the client may finish before the server has judged its certificate;
            # the refusal then arrives as an alert on the first read.
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = s.recv(1024)
            self.assertEqual(data, b"", "server answered: %r" % data[:100])
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        finally:
            s.close()

    def test_health_with_dmctl(self):
        r = run_dmctl(["-c", os.path.join(self.workdir, "dmctl.json"), "--json", "health"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        rows = {x["role"]: x for x in json.loads(r.stdout)}
        self.assertEqual(sorted(rows), sorted(ROLES))
        for role, row in rows.items():
            with self.subTest(role=role):
                self.assertEqual(row["http_status"], 200)
                self.assertEqual(row["status"], "ok")
                self.assertEqual(row["database"]["state"], "ok")
                self.assertGreaterEqual(row["database"]["schema_version"], 1)
                self.assertIn("version", row)
                self.assertIn("uptime_s", row)

    def test_health_table_and_unreachable(self):
        r = run_dmctl(["-c", os.path.join(self.workdir, "dmctl.json"), "health", "dm-mss"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("dm-mss", r.stdout)
        self.assertIn("ok", r.stdout)
        conf = json.load(open(os.path.join(self.workdir, "dmctl.json")))
        conf["endpoints"] = {"nobody": "https://127.0.0.1:%d" % odmtest.devstack.free_port()}
        bad = os.path.join(self.workdir, "dmctl-bad.json")
        json.dump(conf, open(bad, "w"))
        r = run_dmctl(["-c", bad, "health"])
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("down", r.stdout)

    def test_health_with_curl(self):
        for role in ROLES:
            with self.subTest(role=role):
                r = subprocess.run(
                    ["curl", "-sS", "--fail", "--tlsv1.3",
                     "--cert", os.path.join(self.pki, "operator.crt"),
                     "--key", os.path.join(self.pki, "operator.key"),
                     "--cacert", os.path.join(self.pki, "ca.crt"),
                     "https://127.0.0.1:%d/v1/health" % self.port(role)],
                    capture_output=True, text=True, timeout=20)
                self.assertEqual(r.returncode, 0, r.stderr)
                doc = json.loads(r.stdout)
                self.assertEqual(doc["role"], role)

    def test_request_id(self):
        st, doc, hdrs = request(self.port("dm-mss"), self.ctx(),
                                headers={"X-Request-Id": "e2e-rid-42"})
        self.assertEqual(st, 200)
        self.assertEqual(hdrs.get("X-Request-Id"), "e2e-rid-42")
        st, doc, hdrs = request(self.port("dm-mss"), self.ctx(),
                                headers={"X-Request-Id": "bad id with spaces"})
        self.assertEqual(st, 200)
        self.assertNotEqual(hdrs.get("X-Request-Id"), "bad id with spaces")
        self.assertTrue(hdrs.get("X-Request-Id"))

    def test_no_client_certificate_refused(self):
        for role in ROLES:
            with self.subTest(role=role):
                self.assert_refused(self.port(role), self.ctx(name=None))

    def test_foreign_ca_refused(self):
        ctx = client_ctx(self.foreign, "operator", ca=os.path.join(self.pki, "ca.crt"))
        for role in ROLES:
            with self.subTest(role=role):
                self.assert_refused(self.port(role), ctx)

    def test_tls12_refused(self):
        ctx = self.ctx(max_version=ssl.TLSVersion.TLSv1_2)
        for role in ROLES:
            with self.subTest(role=role):
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                    tls_connect(self.port(role), ctx).close()

    def test_malformed_json_400(self):
        for role in ROLES:
            with self.subTest(role=role):
                st, doc, _ = request(self.port(role), self.ctx(), "POST",
                                     "/v1/admin/log-level", body=b'{"level": "debug"')
                self.assertEqual(st, 400)
                self.assertEqual(doc["error"]["code"], "bad_json")
                st, doc, _ = request(self.port(role), self.ctx(), "POST",
                                     "/v1/admin/log-level",
                                     body={"level": "info", "extra": 1})
                self.assertEqual(st, 400)
                self.assertEqual(doc["error"]["code"], "bad_request")
                self.assertIn("extra", doc["error"]["message"])

    def test_unknown_path_and_method(self):
        st, doc, _ = request(self.port("dm-iss"), self.ctx(), "GET", "/v1/nothing")
        self.assertEqual(st, 404)
        self.assertEqual(doc["error"]["code"], "not_found")
        st, doc, hdrs = request(self.port("dm-iss"), self.ctx(), "DELETE", "/v1/health")
        self.assertEqual(st, 405)
        self.assertEqual(doc["error"]["code"], "method_not_allowed")

    def test_admin_needs_operator(self):
        port = self.port("cdcs-pss")
        st, doc, _ = request(port, self.ctx(name="app"), "POST", "/v1/admin/log-level",
                             body={"level": "debug"})
        self.assertEqual(st, 403)
        self.assertEqual(doc["error"]["code"], "forbidden")
        st, doc, _ = request(port, self.ctx(), "POST", "/v1/admin/log-level",
                             body={"level": "debug"})
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["level"], "debug")
        st, doc, _ = request(port, self.ctx(), "POST", "/v1/admin/log-level",
                             body={"level": "info"})
        self.assertEqual(st, 200, doc)

    def test_body_over_limit_413_unread(self):
        for role in ROLES:
            with self.subTest(role=role):
                s = tls_connect(self.port(role), self.ctx())
                try:
                    # Announce a body far over the limit and send none of it: the answer
                    # must come from the headers alone.
                    s.sendall(b"POST /v1/admin/log-level HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % (MAX_BODY * 64))
                    s.settimeout(5)
                    st, _ = read_response(s)
                    self.assertEqual(st, 413)
                finally:
                    s.close()

    def test_oversized_headers_refused(self):
        for role in ROLES:
            with self.subTest(role=role):
                s = tls_connect(self.port(role), self.ctx())
                try:
                    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " +
                              b"a" * 20000 + b"\r\n\r\n")
                    s.settimeout(5)
                    try:
                        st, _ = read_response(s)
                        self.assertGreaterEqual(st, 400)
                        self.assertLess(st, 500)
                    except (ConnectionError, ssl.SSLError, OSError):
                        pass  # closing the connection is a refusal too
                finally:
                    s.close()

    def test_idle_connection_closed(self):
        socks = []
        try:
            for role in ROLES:
                s = tls_connect(self.port(role), self.ctx())
                s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                s.settimeout(5)
                st, _ = read_response(s)
                self.assertEqual(st, 200)
                socks.append((role, s))
            time.sleep(IDLE + 1.5)
            for role, s in socks:
                with self.subTest(role=role):
                    s.settimeout(IDLE + 3)
                    try:
                        self.assertEqual(s.recv(100), b"")
                    except (ConnectionError, ssl.SSLError):
                        pass
        finally:
            for _, s in socks:
                s.close()

    def test_limits_keep_working_after_refusals(self):
        # After every refusal above the daemons still serve.
        for role in ROLES:
            with self.subTest(role=role):
                st, doc, _ = request(self.port(role), self.ctx())
                self.assertEqual(st, 200)


class Lifecycle(odmtest.StackTest):
    """Reload and stop, one stack per class so these signals disturb no other test."""

    limits = {"idle_timeout_s": 30}

    def new_cert(self, role):
        """A fresh certificate for role from the service CA, made with the openssl CLI (a
        test tool here; the project itself never shells out to openssl)."""
        d = os.path.join(self.workdir, "renewed")
        os.makedirs(d, exist_ok=True)
        key, csr, crt = (os.path.join(d, role + x) for x in (".key", ".csr", ".crt"))
        ext = os.path.join(d, "ext.cnf")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n"
                    "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        ca = "sd-if-agent" == role and "cpe-ca" or "service-ca"
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-subj",
                        "/O=opendm/CN=%s-renewed" % role, "-out", csr],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA",
                        os.path.join(self.pki, ca + ".crt"), "-CAkey",
                        os.path.join(self.pki, ca + ".key"), "-CAcreateserial", "-days", "2",
                        "-extfile", ext, "-out", crt], check=True, capture_output=True)
        with open(crt, "a") as out, open(os.path.join(self.pki, ca + ".crt")) as inter:
            out.write(inter.read())
        return crt, key

    def peer_cn(self, s):
        cert = s.getpeercert()
        return dict(x[0] for x in cert["subject"])["commonName"]

    def test_sighup_reload_certificate_while_connected(self):
        for role in ("dm-mss", "sd-if-agent"):
            with self.subTest(role=role):
                d = self.stack.daemons[role]
                port = d.port
                held = tls_connect(port, client_ctx(self.pki))
                held.settimeout(5)
                before = self.peer_cn(held)
                self.assertIn(before, (role, "cpe-0001"))
                # A bad config first: refused, the daemon keeps serving as before.
                cfg = json.load(open(d.config))
                good = dict(cfg)
                json.dump(dict(cfg, bogus=1), open(d.config, "w"))
                d.proc.send_signal(signal.SIGHUP)
                time.sleep(0.5)
                s = tls_connect(port, client_ctx(self.pki))
                self.assertEqual(self.peer_cn(s), before)
                s.close()
                self.assertIn("reload refused", self.stack.log_text(role))
                # Now a new certificate.
                crt, key = self.new_cert(role)
                good["tls"] = dict(good["tls"], cert=crt, key=key)
                json.dump(good, open(d.config, "w"))
                d.proc.send_signal(signal.SIGHUP)
                deadline = time.time() + 5
                while True:
                    s = tls_connect(port, client_ctx(self.pki))
                    cn = self.peer_cn(s)
                    s.close()
                    if cn == role + "-renewed" or time.time() > deadline:
                        break
                    time.sleep(0.1)
                self.assertEqual(cn, role + "-renewed")
                # The connection opened before the reload still works, on its old cert.
                held.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                st, body = read_response(held)
                self.assertEqual(st, 200)
                self.assertEqual(json.loads(body)["role"], role)
                held.close()

    def test_sigterm_exits_zero(self):
        for role in ("cdcs-iss", "cdcs-mss"):
            with self.subTest(role=role):
                d = self.stack.daemons[role]
                pid = d.proc.pid
                rc = self.stack.stop(role)
                self.assertEqual(rc, 0, self.stack.log_tail(role))
                self.assertFalse(os.path.exists("/proc/%d" % pid))
                with self.assertRaises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", d.port), timeout=2).close()


class BadStartup(unittest.TestCase):
    """Bad start-up input: non-zero exit and one clear line naming what and where."""

    @classmethod
    def setUpClass(cls):
        cls.workdir = odmtest.tmpdir("odm-e2e-start-")
        cls.stack = odmtest.devstack.Stack(odmtest.BUILD, cls.workdir)
        cls.stack.init_pki()

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def run_daemon(self, role, cfg_text, args=("-c",)):
        path = os.path.join(self.workdir, "conf", role + "-bad.json")
        with open(path, "w") as f:
            f.write(cfg_text)
        r = subprocess.run([self.stack.bin(role)] + list(args) + [path],
                           capture_output=True, text=True, timeout=20)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        return r.returncode, lines, path

    def good(self, role, port=None):
        return self.stack.config_for(role, port or odmtest.devstack.free_port())

    def check(self, role, cfg_text, *needles):
        rc, lines, path = self.run_daemon(role, cfg_text)
        self.assertNotEqual(rc, 0)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("level=err", lines[0])
        for n in needles:
            self.assertIn(n.replace("{path}", path), lines[0])

    def test_missing_config(self):
        r = subprocess.run([self.stack.bin("dm-mss"), "-c", "/nonexistent/dm-mss.json"],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("/nonexistent/dm-mss.json", lines[0])

    def test_bad_json(self):
        self.check("dm-iss", '{"listen": {"address": "127.0.0.1", "port": 1}\n,,}',
                   "{path}", "line 2")

    def test_unknown_key(self):
        cfg = self.good("cdcs-pss")
        cfg["tls"]["pasword"] = "x"
        self.check("cdcs-pss", json.dumps(cfg), "{path}", "tls.pasword")

    def test_wrong_type_and_range(self):
        cfg = self.good("cdcs-mss")
        cfg["listen"]["port"] = 70000
        self.check("cdcs-mss", json.dumps(cfg), "{path}", "listen.port")
        cfg["listen"]["port"] = "8443"
        self.check("cdcs-mss", json.dumps(cfg), "{path}", "listen.port")

    def test_missing_key_file(self):
        cfg = self.good("cdcs-iss")
        cfg["tls"]["key"] = os.path.join(self.workdir, "missing.key")
        self.check("cdcs-iss", json.dumps(cfg), "missing.key")

    def test_unsafe_key_file(self):
        import shutil
        cfg = self.good("sd-if-agent")
        unsafe = os.path.join(self.workdir, "unsafe.key")
        shutil.copy(cfg["tls"]["key"], unsafe)
        os.chmod(unsafe, 0o644)
        cfg["tls"]["key"] = unsafe
        self.check("sd-if-agent", json.dumps(cfg), "unsafe.key", "tls.key")

    def test_port_in_use(self):
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        try:
            port = holder.getsockname()[1]
            self.check("dm-mss", json.dumps(self.good("dm-mss", port)),
                       "127.0.0.1:%d" % port)
        finally:
            holder.close()

    def test_shipped_example_configs(self):
        # conf/*.json must stay loadable: same keys, with this run's files in place of the
        # installed paths.
        for role in ROLES:
            with self.subTest(role=role):
                with open(os.path.join(odmtest.SRC, "conf", role + ".json")) as f:
                    text = f.read()
                text = text.replace("/etc/opendm/pki", self.stack.pki)
                text = text.replace("/var/lib/opendm", os.path.join(self.workdir, "db"))
                cfg = json.loads(text)
                cfg["listen"] = {"address": "127.0.0.1", "port": 1}
                rc, lines, _ = self.run_daemon(role, json.dumps(cfg), args=("-n", "-c"))
                self.assertEqual(rc, 0, lines)

    def test_check_only(self):
        rc, lines, path = self.run_daemon("dm-mss", json.dumps(self.good("dm-mss")),
                                          args=("-n", "-c"))
        self.assertEqual(rc, 0, lines)
        cfg = self.good("dm-mss")
        cfg["log_level"] = "loud"
        rc, lines, path = self.run_daemon("dm-mss", json.dumps(cfg), args=("-n", "-c"))
        self.assertNotEqual(rc, 0)
        self.assertIn("log_level", lines[0])


if __name__ == "__main__":
    odmtest.main()
