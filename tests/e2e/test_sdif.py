#!/usr/bin/env python3
"""The SD I/F agent end to end (J.1020 §7): pairing a device with the CPE, the pairing
assertion as Figure 4 authentication, and both flows relayed through the CPE, which can
neither read nor alter them.

Real daemons (all six, sd-if-agent with its CONNECT relay) started by devstack, real devices
(dm-app pair / install --paired / cdcs sync / play), the CPE's own admin command for PINs.
"""

import base64
import datetime
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import odmtest
from odmtest import Forwarder, db_query, flow_steps
from test_fig4 import OK, REFUSED, UNREACHABLE, Fig4Base, load, read
from test_fig5 import CA, sign_jws

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

devstack = odmtest.devstack


def write_key_cert(path, cn, issuer_key=None, issuer_name=None, ip=True, ca=False):
    """A P-256 key and certificate (self-signed unless an issuer is given) at path.{key,crt}."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer_name or name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1)))
    if ip:
        import ipaddress
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    # Key identifiers: OpenSSL's strict chain checks want them on an issued certificate.
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False)
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
        (issuer_key or key).public_key()), critical=False)
    cert = b.sign(issuer_key or key, hashes.SHA256())
    with open(path + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path + ".key", 0o600)
    with open(path + ".crt", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return path + ".crt", path + ".key"


def tls_inside(sock, ctx, request, limit=1 << 20):
    """Run TLS with ctx inside an established tunnel (sock: the TLS socket to the relay),
    send request and read one response with Content-Length: (status, body bytes). Python's
    ssl cannot wrap an SSLSocket, so the inner session goes through memory BIOs."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")

    def flush():
        data = out.read()
        if data:
            sock.sendall(data)

    def feed():
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("tunnel closed")
        inc.write(data)

    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            feed()
    flush()
    obj.write(request)
    flush()
    buf = b""
    while True:
        try:
            chunk = obj.read(65536)
            if not chunk:
                break
            buf += chunk
        except ssl.SSLWantReadError:
            if b"\r\n\r\n" in buf:
                head, body = buf.split(b"\r\n\r\n", 1)
                lens = [int(h.split(b":", 1)[1]) for h in head.split(b"\r\n")
                        if h.lower().startswith(b"content-length:")]
                if lens and len(body) >= lens[0]:
                    return int(head.split(b" ", 2)[1]), body[:lens[0]]
            if len(buf) > limit:
                raise ValueError("response too large")
            feed()
    head, body = buf.split(b"\r\n\r\n", 1)
    return int(head.split(b" ", 2)[1]), body


def load_pem_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def load_pem_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


class SdifBase(Fig4Base):
    """A stack whose devices are paired with the CPE (cpe-0001) of one subscriber."""

    cpe_overrides = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            if cls.cpe_overrides:
                cls.stack.reconfigure("sd-if-agent", {"sd_if_agent": cls.cpe_overrides})
                cls.stack.stop("sd-if-agent")
                cls.stack.start("sd-if-agent")
            cls.home = "home-%d" % (os.getpid() % 100000)
            cls.stack.dmctl("subscriber", "add", cls.home, "--device-limit", "1000")
            cls.stack.register_cpe(cls.home)
        except Exception:
            cls.tearDownClass()
            raise

    @property
    def relay_port(self):
        return self.stack.daemons["sd-if-agent"].relay_port

    def db_pairings(self, hw_id):
        return db_query(self.db("sd-if-agent"),
                        "SELECT COUNT(*) FROM pairing WHERE hw_id = ? AND unpaired_at IS NULL",
                        (hw_id,))[0][0]

    def paired_device(self, **kw):
        dev = self.device(**kw)
        r = dev.pair()
        self.assertEqual(r.returncode, OK, r.stdout + r.stderr)
        self.assertIn("dm-app: paired with cpe-0001", r.stdout + r.stderr)
        self.assertTrue(dev.paired)
        return dev

    def link_ctx(self, dev):
        """A TLS context for the relay: the device's link credential, the CPE CA."""
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.load_verify_locations(os.path.join(self.pki, "cpe-ca.crt"))
        c.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        link = os.path.join(dev.state_dir, "link")
        c.load_cert_chain(os.path.join(link, "cert.pem"), os.path.join(link, "key.pem"))
        return c

    def tunnel(self, ctx, target, preamble=None, timeout=10):
        """Open a tunnel through the relay: (TLS socket to the relay, status, head bytes)."""
        raw = socket.create_connection(("127.0.0.1", self.relay_port), timeout=timeout)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(preamble or ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" %
                               (target, target)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
        return s, status, head

    def health_through(self, dev, role="dm-mss"):
        """GET /v1/health of role through dev's tunnel, with end-to-end TLS inside."""
        target = "127.0.0.1:%d" % self.port(role)
        s, status, head = self.tunnel(self.link_ctx(dev), target)
        try:
            self.assertEqual(status, 200, head)
            st, body = tls_inside(s, odmtest.client_ctx(self.pki, "app"),
                                  b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            return st, json.loads(body)
        finally:
            s.close()


class Pairing(SdifBase):
    """PIN pairing bound to the TLS session: right, wrong, expired, exhausted, foreign CPE, MITM."""

    cpe_overrides = {"pin_ttl_s": 6, "pin_attempts": 3}

    def test_pair_and_unpair(self):
        dev = self.paired_device()
        link = os.path.join(dev.state_dir, "link")
        self.assertEqual(os.stat(os.path.join(link, "key.pem")).st_mode & 0o077, 0)
        pairing = load(os.path.join(link, "pairing.json"))
        self.assertEqual(pairing["cpe"], "cpe-0001")
        self.assertEqual(pairing["relay_url"], self.stack.daemons["sd-if-agent"].relay_url)
        self.assertEqual(self.db_pairings(dev.hw_id), 1)
        listing = self.stack.cpe_ctl("list", "--json").stdout
        self.assertIn(dev.hw_id, listing)
        st = dev.status()
        self.assertTrue(st["paired"])
        self.assertEqual(st["cpe"], "cpe-0001")
        # The PIN pairs one device only.
        pin = self.stack.cpe_pin()
        self.assertEqual(dev.pair(pin).returncode, OK)
        other = self.device()
        r = other.pair(pin)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("not_pairing", r.stderr)
        self.assertEqual(self.db_pairings(other.hw_id), 0)

    def test_wrong_pin_then_right_pin(self):
        dev = self.device()
        pin = self.stack.cpe_pin()
        wrong = "%06d" % ((int(pin) + 1) % 1000000)
        r = dev.pair(wrong)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("wrong_pin", r.stderr)
        self.assertFalse(dev.paired)
        self.assertEqual(self.db_pairings(dev.hw_id), 0)
        self.assertEqual(dev.pair(pin).returncode, OK)

    def test_too_many_attempts(self):
        dev = self.device()
        pin = self.stack.cpe_pin()
        wrong = "%06d" % ((int(pin) + 1) % 1000000)
        codes = []
        for _ in range(3):
            codes.append(dev.pair(wrong).stderr)
        self.assertTrue(any("too_many_attempts" in c for c in codes), codes)
        r = dev.pair(pin)  # the right PIN, too late
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertFalse(dev.paired)
        self.assertEqual(self.db_pairings(dev.hw_id), 0)

    def test_expired_pin(self):
        dev = self.device()
        pin = self.stack.cpe_pin()
        time.sleep(7)
        r = dev.pair(pin)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("not_pairing", r.stderr)
        self.assertEqual(self.db_pairings(dev.hw_id), 0)

    def test_cpe_certificate_from_another_ca(self):
        dev = self.device()
        dev.cfg["cpe"]["ca"] = os.path.join(self.pki, "app-ca.crt")
        dev.write()
        r = dev.pair()
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("bad_cpe_certificate", r.stderr)
        self.assertEqual(self.db_pairings(dev.hw_id), 0)

    def test_pin_relayed_by_a_man_in_the_middle(self):
        """A MITM with a genuine CPE certificate of its own relays the PIN exchange to the real
        CPE: the proof is bound to the device's TLS session with the MITM, not to the MITM's
        session with the CPE, so the CPE refuses it."""
        cpe_ca_key = load_pem_key(os.path.join(self.pki, "cpe-ca.key"))
        cpe_ca = load_pem_cert(os.path.join(self.pki, "cpe-ca.crt"))
        crt, key = write_key_cert(os.path.join(self.workdir, "mitm"), "cpe-0002",
                                  issuer_key=cpe_ca_key, issuer_name=cpe_ca.subject)
        with open(crt, "a") as f:
            f.write(read(os.path.join(self.pki, "cpe-ca.crt")))
        srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.load_cert_chain(crt, key)
        srv.verify_mode = ssl.CERT_OPTIONAL
        srv.load_verify_locations(os.path.join(self.pki, "ca.crt"))
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        seen = {}

        def mitm():
            conn, _ = listener.accept()
            with srv.wrap_socket(conn, server_side=True) as dev_side:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += dev_side.recv(65536)
                head, body = data.split(b"\r\n\r\n", 1)
                length = int([h.split(b":")[1] for h in head.split(b"\r\n")
                              if h.lower().startswith(b"content-length")][0])
                while len(body) < length:
                    body += dev_side.recv(65536)
                seen["body"] = body
                st, doc, _ = odmtest.request(self.port("sd-if-agent"),
                                             odmtest.client_ctx(self.pki, "app",
                                                                ca=os.path.join(self.pki,
                                                                                "ca.crt")),
                                             "POST", "/v1/pairing/pair", body)
                seen["status"] = st
                out = json.dumps(doc).encode()
                dev_side.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" %
                                 (st, len(out), out))

        t = threading.Thread(target=mitm, daemon=True)
        t.start()
        dev = self.device()
        dev.cfg["cpe"]["pairing_url"] = "https://127.0.0.1:%d" % listener.getsockname()[1]
        dev.write()
        r = dev.pair()
        t.join(30)
        listener.close()
        self.assertIn("body", seen, "the device did not talk to the MITM")
        self.assertEqual(seen["status"], 403)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("wrong_pin", r.stderr)
        self.assertFalse(dev.paired)
        self.assertEqual(self.db_pairings(dev.hw_id), 0)


class Relay(SdifBase):
    """Both flows through the relay, which cannot read or alter them; its refusals and limits."""

    cpe_overrides = {"relay": {"max_tunnels_per_device": 4}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.stack.fig5_setup()
            cls.stack.set_entitlements(cls.home, ["basic", "premium"])
        except Exception:
            cls.tearDownClass()
            raise

    def test_fig4_and_fig5_through_the_relay(self):
        dev = self.paired_device()
        r = dev.install(paired=True)
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertIsNotNone(dev.dm_id)
        show = json.loads(self.dmctl("--json", "device", "show", dev.hw_id).stdout)["device"]
        self.assertEqual(show["account"], self.home)
        r, doc = dev.cdcs_sync()
        self.assertEqual(r.returncode, OK, r.stdout + r.stderr)
        plain = os.path.join(self.workdir, self.uniq("p"))
        with open(plain, "wb") as f:
            f.write(os.urandom(20000))
        self.stack.encrypt_content(CA, "premium", plain, plain + ".jwe")
        r = dev.play(plain + ".jwe", out=plain + ".out")
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(read(plain, "rb"), read(plain + ".out", "rb"))
        # Every head-end daemon of both flows was reached through tunnels of this device.
        text = self.stack.log_text("sd-if-agent")
        for role in ("dm-mss", "dm-iss", "cdcs-pss", "cdcs-mss", "cdcs-iss"):
            self.assertIn("127.0.0.1:%d" % self.port(role), text, role)
        self.assertIn(dev.hw_id, text)
        self.assertEqual(len(flow_steps(self.log_files(dev), subject=dev.hw_id)), 12)

    def test_curl_through_the_relay(self):
        dev = self.paired_device()
        link = os.path.join(dev.state_dir, "link")
        r = subprocess.run(
            ["curl", "-sS", "--fail", "--proxy", self.stack.daemons["sd-if-agent"].relay_url,
             "--proxy-cert", os.path.join(link, "cert.pem"),
             "--proxy-key", os.path.join(link, "key.pem"),
             "--proxy-cacert", os.path.join(self.pki, "cpe-ca.crt"),
             "--cert", os.path.join(self.pki, "operator.crt"),
             "--key", os.path.join(self.pki, "operator.key"),
             "--cacert", os.path.join(self.pki, "ca.crt"),
             self.stack.url("dm-mss") + "/v1/health"], capture_output=True, text=True,
            timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["role"], "dm-mss")

    def test_relay_cannot_read_or_alter(self):
        # Record every byte between the device and the relay while both flows run.
        dev = self.paired_device()
        fwd = Forwarder(self.relay_port, on_data=self.record)
        self.recorded = []
        try:
            pj = os.path.join(dev.state_dir, "link", "pairing.json")
            p = load(pj)
            p["relay_url"] = fwd.url
            with open(pj, "w") as f:
                json.dump(p, f)
            self.assertEqual(dev.install(paired=True).returncode, OK)
            r, _ = dev.cdcs_sync()
            self.assertEqual(r.returncode, OK, r.stderr)
        finally:
            fwd.close()
        blob = b"".join(self.recorded)
        self.assertGreater(len(blob), 100000)
        secrets = []
        for k in load(os.path.join(self.pki, "entitlement-keys.json"))["keys"]:
            secrets.append(k["k"].encode())
            secrets.append(base64.urlsafe_b64decode(k["k"] + "=="))
        key_pem = read(os.path.join(dev.state_dir, "identity", "key.pem"))
        secrets += [x.encode() for x in key_pem.splitlines() if x and "-----" not in x]
        for root, _, files in os.walk(os.path.join(dev.state_dir, "cdcs")):
            for n in files:
                if "store" in root:
                    data = read(os.path.join(root, n), "rb")
                    secrets += [data[i:i + 24] for i in range(0, len(data) - 24, 97)]
        for sec in secrets:
            self.assertNotIn(sec, blob)
        self.assertNotIn(b"personalization_data", blob)
        self.assertNotIn(b"BEGIN CERTIFICATE REQUEST", blob)

    def record(self, fwd, n, direction, data):
        self.recorded.append(data)
        return None

    def test_relay_flipping_a_byte_fails_cleanly(self):
        dev = self.paired_device(retry_max_s=3)

        counts, flipped = {}, []

        def flip(fwd, n, direction, data):
            # Past the handshakes, flip one bit of what comes back from the head-end.
            if direction != "s2c":
                return None
            seen = counts.get(n, 0)
            counts[n] = seen + len(data)
            if seen < 6000 <= seen + len(data):
                data = bytearray(data)
                data[6000 - seen] ^= 0x20
                flipped.append(n)
                return bytes(data)
            return None

        fwd = Forwarder(self.relay_port, on_data=flip)
        try:
            pj = os.path.join(dev.state_dir, "link", "pairing.json")
            p = load(pj)
            p["relay_url"] = fwd.url
            with open(pj, "w") as f:
                json.dump(p, f)
            r = dev.install(paired=True)
        finally:
            fwd.close()
        self.assertTrue(flipped, "no byte was flipped (rc %s, %s): %s %s" % (r.returncode, counts, r.stdout,
                                                                       r.stderr[-3000:]))
        self.assertIn(r.returncode, (REFUSED, UNREACHABLE), r.stderr)
        self.assertFalse(os.path.exists(os.path.join(dev.state_dir, "agent", "dm-agent")))
        self.assertFalse(os.path.exists(os.path.join(dev.state_dir, "identity", "cert.pem")))

    def test_refusals(self):
        target = "127.0.0.1:%d" % self.port("dm-mss")
        # A device that never paired (a self-signed link cert the CPE does not know).
        crt, key = write_key_cert(os.path.join(self.workdir, self.uniq("stranger")), "hw-x")
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.load_verify_locations(os.path.join(self.pki, "cpe-ca.crt"))
        c.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        c.load_cert_chain(crt, key)
        s, status, head = self.tunnel(c, target)
        s.close()
        self.assertEqual(status, 403, head)
        self.assertIn(b"not_paired", head)
        # A paired device: a target off the allow-list, an over-long preamble, GET.
        dev = self.paired_device()
        ctx = self.link_ctx(dev)
        s, status, head = self.tunnel(ctx, "127.0.0.1:22")
        s.close()
        self.assertEqual(status, 403, head)
        s, status, head = self.tunnel(ctx, target, preamble=b"CONNECT " + target.encode() +
                                      b" HTTP/1.1\r\nX-Pad: " + b"a" * 8000 + b"\r\n\r\n")
        s.close()
        self.assertEqual(status, 431, head)
        s, status, head = self.tunnel(ctx, target, preamble=b"GET / HTTP/1.1\r\n\r\n")
        s.close()
        self.assertEqual(status, 405, head)
        # More tunnels than the device may have (4 here).
        held = []
        try:
            for _ in range(4):
                s, status, head = self.tunnel(ctx, target)
                held.append(s)
                self.assertEqual(status, 200, head)
            s, status, head = self.tunnel(ctx, target)
            s.close()
            self.assertEqual(status, 503, head)
        finally:
            for s in held:
                s.close()
        # Working, then unpaired at the CPE: refused at once.
        self.assertEqual(self.health_through(dev)[0], 200)
        self.stack.cpe_ctl("unpair", dev.hw_id)
        s, status, head = self.tunnel(ctx, target)
        s.close()
        self.assertEqual(status, 403, head)

    def test_assertion_refusals(self):
        """dm-mss refuses an assertion that is expired, for another device, from an
        unregistered or deactivated CPE."""
        dev = self.device()
        cpe_key = os.path.join(self.pki, "sd-if-agent.key")
        chain = read(os.path.join(self.pki, "sd-if-agent.crt"))
        now = int(time.time())

        def try_install(claims, cert=chain, key=cpe_key):
            token = sign_jws(key, dict({"iss": "cpe-0001", "aud": "dm-mss", "sub": dev.hw_id,
                                        "link_fp": "00" * 32, "iat": now, "exp": now + 300,
                                        "jti": os.urandom(16).hex()}, **claims))
            return odmtest.request(self.port("dm-mss"), odmtest.client_ctx(self.pki, "app"),
                                   "POST", "/v1/agent/download-request",
                                   {"hw_id": dev.hw_id, "capability": devstack.CAPABILITY,
                                    "installed_version": 0,
                                    "pairing": {"assertion": token, "cpe_certificate": cert}},
                                   timeout=30)

        st, doc, _ = try_install({"iat": now - 900, "exp": now - 600})
        self.assertEqual(st, 401, doc)
        st, doc, _ = try_install({"sub": "hw-someone-else"})
        self.assertEqual((st, doc["error"]["code"]), (403, "wrong_subject"), doc)
        # A certificate that is not from the CPE CA (dm-mss's own, with its key).
        st, doc, _ = try_install({"iss": "dm-mss"},
                                 cert=read(os.path.join(self.pki, "dm-mss.crt")),
                                 key=os.path.join(self.pki, "dm-mss.key"))
        self.assertEqual(st, 403, doc)
        # A CPE of the CPE CA that no subscriber registered.
        cpe_ca_key = load_pem_key(os.path.join(self.pki, "cpe-ca.key"))
        cpe_ca = load_pem_cert(os.path.join(self.pki, "cpe-ca.crt"))
        crt, key = write_key_cert(os.path.join(self.workdir, self.uniq("cpe9")), "cpe-0009",
                                  issuer_key=cpe_ca_key, issuer_name=cpe_ca.subject)
        st, doc, _ = try_install({"iss": "cpe-0009"}, cert=read(crt) + read(
            os.path.join(self.pki, "cpe-ca.crt")), key=key)
        self.assertEqual((st, doc["error"]["code"]), (403, "cpe_unknown"), doc)
        # The registered CPE, deactivated.
        self.dmctl("cpe", "deactivate", "cpe-0001")
        try:
            st, doc, _ = try_install({})
            self.assertEqual((st, doc["error"]["code"]), (403, "cpe_inactive"), doc)
        finally:
            self.dmctl("cpe", "activate", "cpe-0001")
        st, doc, _ = try_install({})
        self.assertEqual(st, 200, doc)
        self.assertEqual(db_query(self.db("dm-mss"), "SELECT COUNT(*) FROM device"
                                  " WHERE hw_id = ?", (dev.hw_id,)), [(1,)])


class Many(SdifBase):
    """200 paired devices working through one relay at once: each gets a pairing assertion
    from the CPE and runs Figure 4 steps 1-4 with dm-mss through its own tunnel."""

    DEVICES = 200

    def download_request(self, dev):
        now = int(time.time())
        proof = sign_jws(os.path.join(dev.state_dir, "link", "key.pem"),
                         {"iss": dev.hw_id, "sub": dev.hw_id, "aud": "cpe-0001", "iat": now,
                          "exp": now + 60, "jti": os.urandom(16).hex()})
        st, doc, _ = odmtest.request(self.port("sd-if-agent"), odmtest.client_ctx(self.pki, "app"),
                                     "POST", "/v1/pairing/assertion",
                                     {"hw_id": dev.hw_id, "link_proof": proof}, timeout=60)
        if st != 200:
            raise AssertionError("assertion: %s %s" % (st, doc))
        body = json.dumps({"hw_id": dev.hw_id, "capability": devstack.CAPABILITY,
                           "installed_version": 0,
                           "pairing": {"assertion": doc["assertion"],
                                       "cpe_certificate": doc["cpe_certificate"]}}).encode()
        s, status, head = self.tunnel(self.link_ctx(dev), "127.0.0.1:%d" % self.port("dm-mss"),
                                      timeout=60)
        try:
            if status != 200:
                raise AssertionError("tunnel: %r" % head)
            st, out = tls_inside(s, odmtest.client_ctx(self.pki, "app"),
                                 b"POST /v1/agent/download-request HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                                 % len(body) + body)
            return st, json.loads(out)
        finally:
            s.close()

    def test_200_devices_at_once(self):
        devs = [self.paired_device() for _ in range(self.DEVICES)]
        results, errors = [], []
        lock = threading.Lock()
        start = threading.Barrier(len(devs))

        def work(dev):
            try:
                start.wait(60)
                st, doc = self.download_request(dev)
                with lock:
                    results.append((st, doc.get("hw_id") == dev.hw_id,
                                    doc.get("account"), "enrolment_token" in doc))
            except Exception as e:  # noqa: BLE001 - collected and reported below
                with lock:
                    errors.append("%s: %r" % (dev.hw_id, e))

        threads = [threading.Thread(target=work, args=(d,)) for d in devs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        self.assertEqual(errors, [])
        self.assertEqual(results, [(200, True, self.home, True)] * len(devs))
        # Every one of them recorded by dm-mss for the CPE's subscriber, through the relay.
        n = db_query(self.db("dm-mss"), "SELECT COUNT(*) FROM device d JOIN subscriber s"
                     " ON s.id = d.subscriber_id WHERE s.account = ?", (self.home,))[0][0]
        self.assertEqual(n, len(devs))
        self.assertEqual(self.stack.log_text("sd-if-agent").count("sdif=tunnel open"),
                         len(devs))


if __name__ == "__main__":
    odmtest.main()
