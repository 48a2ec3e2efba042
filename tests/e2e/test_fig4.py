#!/usr/bin/env python3
"""Figure 4 end to end (J.1020 §9): DM agent download, installation and personalization.

Real daemons (dm-mss, dm-iss) started by devstack, real devices (dm-app, dm-agent) with
their own state directories, real dmctl. Every refusal is checked for its exit status, its
`dm-app: <code>` line, nothing installed on the device and nothing recorded by the head-end.
"""

import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import threading
import time

import odmtest
from odmtest import Forwarder, db_query, db_snapshot, flow_steps

devstack = odmtest.devstack

# Exit statuses of dm-app.
OK, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3


def read(path, mode="r"):
    with open(path, mode, **({} if "b" in mode else {"errors": "replace"})) as f:
        return f.read()


def load(path):
    return json.loads(read(path))


def dump(doc, path):
    with open(path, "w") as f:
        json.dump(doc, f)


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def jws_claims(jws):
    return b64url_json(jws.split(".")[1])


def new_csr(workdir, name, cn):
    """(CSR PEM, key path) for a fresh P-256 key, made with the openssl tool."""
    key = os.path.join(workdir, name + ".key")
    r = subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-subj",
                        "/CN=" + cn], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return r.stdout, key


def cert_field(pem_path, what):
    r = subprocess.run(["openssl", "x509", "-noout", what, "-in", pem_path],
                       capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


class Fig4Base(odmtest.StackTest):
    """Helpers shared by the Figure 4 test classes."""

    counter = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dmctl_conf = os.path.join(cls.workdir, "dmctl.json")
        # A third party commissioned to make offline bundles (OU "offline").
        conf = load(cls.dmctl_conf)
        conf["tls"] = {"cert": os.path.join(cls.pki, "thirdparty.crt"),
                       "key": os.path.join(cls.pki, "thirdparty.key"),
                       "ca": os.path.join(cls.pki, "ca.crt")}
        cls.thirdparty_conf = os.path.join(cls.workdir, "dmctl-thirdparty.json")
        with open(cls.thirdparty_conf, "w") as f:
            json.dump(conf, f)

    def setUp(self):
        # Registered first, so it runs last: after the devices' agents have stopped.
        self.addCleanup(self.check_sanitizer_reports)

    def check_sanitizer_reports(self):
        """dm-agent is not our child: its exit status is lost, so read its log (and dm-app's)
        for what AddressSanitizer, LeakSanitizer or UBSan would have said."""
        for dev in self.stack.devices:
            for path in (dev.app_log, dev.agent_log):
                if os.path.exists(path):
                    text = read(path)
                    for needle in ("Sanitizer", "runtime error:"):
                        self.assertNotIn(needle, text, path)

    @classmethod
    def uniq(cls, prefix):
        Fig4Base.counter += 1
        return "%s-%d-%d" % (prefix, os.getpid() % 10000, Fig4Base.counter)

    def db(self, role):
        return os.path.join(self.workdir, "db", role + ".db")

    def dmctl(self, *args, conf=None, check=True):
        r = odmtest.run_dmctl(["-c", conf or self.dmctl_conf] + list(args), timeout=120)
        if check:
            self.assertEqual(r.returncode, 0, "dmctl %s: %s" % (" ".join(args), r.stderr))
        return r

    def account(self, limit=3):
        name = self.uniq("acct")
        self.dmctl("subscriber", "add", name, "--device-limit", str(limit))
        return name

    def code(self, account, ttl=None):
        args = ["--json", "code", "issue", account] + (["--ttl", str(ttl)] if ttl else [])
        doc = json.loads(self.dmctl(*args).stdout)
        self.assertRegex(doc["code"], r"^[A-Z0-9-]{6,64}$")
        return doc["code"]

    def device(self, name=None, **kw):
        dev = self.stack.device(name or self.uniq("dev"), **kw)
        self.addCleanup(dev.stop)
        return dev

    def snapshots(self):
        return {r: db_snapshot(self.db(r)) for r in ("dm-mss", "dm-iss")}

    def assert_installed(self, dev, result, version=1):
        self.assertEqual(result.returncode, OK, result.stderr)
        line = [x for x in (result.stdout + result.stderr).splitlines()
                if "dm-app: personalized" in x]
        self.assertEqual(len(line), 1, result.stdout + result.stderr)
        kv = odmtest.logfmt(line[0].split("dm-app: personalized", 1)[1])
        self.assertEqual(kv["hw_id"], dev.hw_id)
        st = dev.status()
        self.assertEqual(st["hw_id"], dev.hw_id)
        self.assertEqual(st["dm_id"], kv["dm_id"])
        self.assertEqual(st["installed_version"], version)
        self.assertTrue(st["agent_running"])
        return kv["dm_id"]

    def assert_refused(self, dev, result, code, before=None, statuses=(REFUSED,),
                       unchanged=("dm-mss", "dm-iss")):
        """Refused with `dm-app: <code>: ...`, nothing installed, no db row changed."""
        self.assertIn(result.returncode, statuses, result.stderr)
        errs = [x for x in result.stderr.splitlines() if x.startswith("dm-app: ")]
        self.assertTrue(errs, result.stderr)
        if code is not None:
            self.assertTrue(errs[-1].startswith("dm-app: %s:" % code),
                            "expected %s, got %r" % (code, errs[-1]))
        self.assertFalse(os.path.exists(os.path.join(dev.state_dir, "agent", "dm-agent")))
        self.assertFalse(os.path.exists(os.path.join(dev.state_dir, "identity", "cert.pem")))
        if before is not None:
            for role in unchanged:
                self.assertEqual(db_snapshot(self.db(role)), before[role],
                                 "%s recorded something for a refused install" % role)

    def log_files(self, *devs):
        files = [self.stack.daemons[r].log for r in ("dm-mss", "dm-iss")]
        for dev in devs:
            files += [dev.app_log, dev.agent_log]
        return files

    def capability_file(self):
        path = os.path.join(self.workdir, "capability.json")
        with open(path, "w") as f:
            json.dump(devstack.CAPABILITY, f)
        return path

    def bundle(self, hw_id, account, name=None):
        out = os.path.join(self.workdir, (name or self.uniq("bundle")) + ".json")
        r = self.dmctl("offline-bundle", "--hw-id", hw_id, "--account", account,
                       "--capability", self.capability_file(), "--out", out,
                       conf=self.thirdparty_conf)
        self.assertIn(hw_id, r.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600)
        return out

    def closed_url(self):
        return "https://127.0.0.1:%d" % devstack.free_port()


class Online(Fig4Base):
    """The issue's main path and the refusals of steps 2, 5 and 8."""

    def test_online_install_and_personalize(self):
        acct = self.account()
        dev = self.device()
        r = dev.install(code=self.code(acct))
        dm_id = self.assert_installed(dev, r)
        ident = os.path.join(dev.state_dir, "identity")
        # The certificate chains to the device CA under the operator root, CN = DM id.
        cert = os.path.join(ident, "cert.pem")
        v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(self.pki, "ca.crt"),
                            "-untrusted", os.path.join(self.pki, "device-ca.crt"), cert],
                           capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertRegex(cert_field(cert, "-subject"), r"CN ?= ?%s(,|$)" % dm_id)
        self.assertIn("Device CA", cert_field(cert, "-issuer"))
        self.assertIn("urn:opendm:dm:" + dm_id, subprocess.run(
            ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", cert],
            capture_output=True, text=True).stdout)
        self.assertEqual(load(os.path.join(ident, "identity.json"))["dm_id"], dm_id)
        # The key stays private: 0600, and its content is in no log of the work dir.
        key = os.path.join(ident, "key.pem")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        body = [x for x in read(key).splitlines() if x and not x.startswith("-----")]
        self.assertTrue(body)
        for root, _, files in os.walk(self.workdir):
            for f in files:
                if f.endswith((".log", ".out")):
                    text = read(os.path.join(root, f))
                    for chunk in body:
                        self.assertNotIn(chunk, text, "key material in " + f)
        # The head-end recorded the device (dm-mss) and the certificate (dm-iss).
        show = json.loads(self.dmctl("--json", "device", "show", dev.hw_id).stdout)["device"]
        self.assertEqual((show["account"], show["status"]), (acct, "active"))
        self.assertEqual(db_query(self.db("dm-mss"),
                                  "SELECT s.account, d.status FROM device d JOIN subscriber s"
                                  " ON s.id = d.subscriber_id WHERE d.hw_id = ?",
                                  (dev.hw_id,)), [(acct, "active")])
        self.assertEqual(db_query(self.db("dm-mss"), "SELECT COUNT(*) FROM activation_code"
                                  " WHERE used_by_hw_id = ? AND used_at IS NOT NULL",
                                  (dev.hw_id,)), [(1,)])
        rows = db_query(self.db("dm-iss"),
                        "SELECT dm_id, serial FROM issued_cert WHERE hw_id = ?", (dev.hw_id,))
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0][0], dm_id)
        serial = cert_field(cert, "-serial").split("=", 1)[1]
        self.assertEqual(int(rows[0][1], 16), int(serial, 16))
        # All twelve steps, once each, in order, under one request id.
        steps = flow_steps(self.log_files(dev), subject=dev.hw_id)
        self.assertEqual([s["step"] for s in steps], list(range(1, 13)),
                         "\n".join("%s %s %s" % (s["file"], s["step"], s.get("msg"))
                                   for s in steps))
        self.assertEqual(len({s["rid"] for s in steps}), 1, steps)
        self.assertEqual({s["file"] for s in steps if s["step"] in (1, 5, 6)}, {"dm-app.log"})
        self.assertEqual({s["file"] for s in steps if s["step"] in (2, 3, 4)}, {"dm-mss.log"})
        self.assertEqual({s["file"] for s in steps if s["step"] in (8, 9, 10)}, {"dm-iss.log"})
        self.assertEqual({s["file"] for s in steps if s["step"] in (7, 11, 12)},
                         {"dm-agent.log"})
        # The installed binary is exactly the published one.
        pkg = os.path.join(self.stack.packages, devstack.PLATFORM, "1", "dm-agent")
        inst = os.path.join(dev.state_dir, "agent", "dm-agent")
        self.assertEqual(read(pkg, "rb"), read(inst, "rb"))

    def test_refused_unknown_code(self):
        self.account()
        dev = self.device()
        before = self.snapshots()
        r = dev.install(code="ZZZZ-ZZZZ-ZZZZ")
        self.assert_refused(dev, r, "activation_code_unknown", before)

    def test_refused_used_code(self):
        acct = self.account()
        code = self.code(acct)
        first = self.device()
        self.assert_installed(first, first.install(code=code))
        dev = self.device()
        before = self.snapshots()
        self.assert_refused(dev, dev.install(code=code), "activation_code_used", before)

    def test_refused_expired_code(self):
        acct = self.account()
        code = self.code(acct, ttl=1)
        time.sleep(2.5)
        dev = self.device()
        before = self.snapshots()
        self.assert_refused(dev, dev.install(code=code), "activation_code_expired", before)

    def test_refused_suspended_subscriber(self):
        acct = self.account()
        code = self.code(acct)
        self.dmctl("subscriber", "suspend", acct)
        dev = self.device()
        before = self.snapshots()
        self.assert_refused(dev, dev.install(code=code), "subscriber_inactive", before)
        # Reactivated, the same code (still unused) works.
        self.dmctl("subscriber", "activate", acct)
        self.assert_installed(dev, dev.install(code=code))

    def test_refused_not_application_certificate(self):
        acct = self.account()
        p = lambda n: os.path.join(self.pki, n)  # noqa: E731
        dev = self.device(tls={"cert": p("operator.crt"), "key": p("operator.key"),
                               "ca": p("ca.crt")})
        code = self.code(acct)
        before = self.snapshots()
        self.assert_refused(dev, dev.install(code=code), "not_application", before)

    def test_refused_foreign_application_certificate(self):
        acct = self.account()
        other = os.path.join(self.workdir, "pki-foreign")
        if not os.path.exists(os.path.join(other, "root-ca.key")):
            r = odmtest.run_dmctl(["pki", "init", other], timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
        dev = self.device(tls={"cert": os.path.join(other, "app.crt"),
                               "key": os.path.join(other, "app.key"),
                               "ca": os.path.join(self.pki, "ca.crt")}, retry_max_s=2)
        code = self.code(acct)
        before = self.snapshots()
        self.assert_refused(dev, dev.install(code=code), None, before,
                            statuses=(REFUSED, UNREACHABLE))

    def test_refused_household_limit(self):
        acct = self.account(limit=1)
        first = self.device()
        self.assert_installed(first, first.install(code=self.code(acct)))
        dev = self.device()
        code = self.code(acct)
        before = self.snapshots()
        self.assert_refused(dev, dev.install(code=code), "household_limit", before)

    def test_refused_revoked_device(self):
        acct = self.account()
        first = self.device()
        self.assert_installed(first, first.install(code=self.code(acct)))
        r = self.dmctl("device", "revoke", first.hw_id)
        self.assertIn("revoked", r.stdout)
        show = json.loads(self.dmctl("--json", "device", "show", first.hw_id).stdout)["device"]
        self.assertEqual(show["status"], "revoked")
        # The same hardware, wiped (fresh state), tries again with a new code.
        again = self.device(hw_id=first.hw_id)
        code = self.code(acct)
        before = self.snapshots()
        self.assert_refused(again, again.install(code=code), "device_revoked", before)

    def test_refused_manifest_signed_by_another_key(self):
        acct = self.account()
        dev = self.device(agent_pubkey=os.path.join(self.pki, "vendor-a-signing.pub"))
        code = self.code(acct)
        before = self.snapshots()
        # dm-mss did its part (steps 1-4); the device refuses at step 5, dm-iss saw nothing.
        self.assert_refused(dev, dev.install(code=code), "bad_signature", before,
                            unchanged=("dm-iss",))

    def test_refused_token_replay_and_mismatch(self):
        """dm-iss alone (steps 8-10), with a python client holding the app certificate."""
        acct = self.account(limit=10)
        app = odmtest.client_ctx(self.pki, "app")

        def token_for(hw_id):
            st, doc, _ = odmtest.request(
                self.port("dm-mss"), app, "POST", "/v1/agent/download-request",
                {"hw_id": hw_id, "capability": devstack.CAPABILITY,
                 "activation_code": self.code(acct), "installed_version": 0})
            self.assertEqual(st, 200, doc)
            self.assertEqual(jws_claims(doc["enrolment_token"])["sub"], hw_id)
            return doc["enrolment_token"]

        def personalize(hw_id, token, csr):
            return odmtest.request(self.port("dm-iss"), app, "POST", "/v1/agent/personalize",
                                   {"hw_id": hw_id, "csr": csr,
                                    "capability": devstack.CAPABILITY,
                                    "agent": {"version": "0.1.0", "version_number": 1},
                                    "enrolment_token": token})

        hw = self.uniq("hw")
        token = token_for(hw)
        csr1, _ = new_csr(self.workdir, hw + "-1", hw)
        st, first, _ = personalize(hw, token, csr1)
        self.assertEqual(st, 200, first)
        # The same token and key again: the certificate already issued (a lost answer).
        st, again, _ = personalize(hw, token, csr1)
        self.assertEqual(st, 200, again)
        self.assertEqual((again["dm_id"], again["certificate"]),
                         (first["dm_id"], first["certificate"]))
        # The same token with another key: a replay.
        before = db_snapshot(self.db("dm-iss"))
        csr2, _ = new_csr(self.workdir, hw + "-2", hw)
        st, doc, _ = personalize(hw, token, csr2)
        self.assertEqual((st, doc["error"]["code"]), (409, "token_replayed"))
        self.assertEqual(db_snapshot(self.db("dm-iss")), before)
        # A token for another hardware id.
        hw2, hw3 = self.uniq("hw"), self.uniq("hw")
        token2 = token_for(hw2)
        csr3, _ = new_csr(self.workdir, hw3, hw3)
        st, doc, _ = personalize(hw3, token2, csr3)
        self.assertEqual((st, doc["error"]["code"]), (403, "wrong_subject"))
        # A CSR whose subject is not the hardware id of the token and request.
        csr4, _ = new_csr(self.workdir, hw2 + "-x", "someone-else")
        st, doc, _ = personalize(hw2, token2, csr4)
        self.assertEqual((st, doc["error"]["code"]), (403, "csr_mismatch"))
        self.assertEqual(db_snapshot(self.db("dm-iss")), before)
        # Neither refusal spent the token: it still personalizes hw2.
        csr5, _ = new_csr(self.workdir, hw2 + "-ok", hw2)
        st, doc, _ = personalize(hw2, token2, csr5)
        self.assertEqual(st, 200, doc)
        # A forged token: the signature no longer matches.
        sig = token2.rsplit(".", 1)[1]
        forged = token2[:-len(sig)] + ("A" if sig[0] != "A" else "B") + sig[1:]
        st, doc, _ = personalize(hw2, forged, csr5)
        self.assertEqual((st, doc["error"]["code"]), (401, "bad_token"))

    def test_agent_package(self):
        out = os.path.join(self.workdir, self.uniq("pkgs"))
        src = self.stack.bin("dm-agent")
        r = self.dmctl("--json", "agent-package", "--binary", src, "--platform",
                       devstack.PLATFORM, "--version", "9.9.9", "--version-number", "9",
                       "--key", os.path.join(self.pki, "dm-agent-signing.key"), "--out", out)
        doc = json.loads(r.stdout)
        d = os.path.join(out, devstack.PLATFORM, "9")
        binary = read(os.path.join(d, "dm-agent"), "rb")
        self.assertEqual(binary, read(src, "rb"))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, "dm-agent")).st_mode), 0o755)
        claims = jws_claims(read(os.path.join(d, "manifest.jws")))
        for k, v in {"iss": "opendm-agent-signer", "aud": "opendm-dm-app", "sub": "dm-agent",
                     "platform": devstack.PLATFORM, "version": "9.9.9", "version_number": 9,
                     "sha256": hashlib.sha256(binary).hexdigest(), "size": len(binary)}.items():
            self.assertEqual(claims[k], v, k)
            self.assertEqual(doc[k], v, k)
        self.assertGreater(claims["exp"] - claims["iat"], 4 * 365 * 86400)
        # A key others can read is refused; so are a bad platform and version number.
        loose = os.path.join(self.workdir, "loose.key")
        with open(loose, "w") as f:
            f.write(read(os.path.join(self.pki, "dm-agent-signing.key")))
        os.chmod(loose, 0o644)
        base = ["agent-package", "--binary", src, "--version", "1", "--out", out]
        for extra in (["--platform", devstack.PLATFORM, "--version-number", "1", "--key", loose],
                      ["--platform", "../x", "--version-number", "1", "--key", loose],
                      ["--platform", devstack.PLATFORM, "--version-number", "0", "--key",
                       os.path.join(self.pki, "dm-agent-signing.key")]):
            r = self.dmctl(*(base + extra), check=False)
            self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(sorted(os.listdir(os.path.join(out, devstack.PLATFORM))), ["9"])

    def test_dmctl_errors(self):
        r = self.dmctl("subscriber", "add", "x", "--device-limit", "0", check=False)
        self.assertEqual(r.returncode, 2)
        r = self.dmctl("device", "show", "no-such-device", check=False)
        self.assertEqual(r.returncode, 5)
        self.assertIn("dmctl: unknown_device:", r.stderr)
        acct = self.account()
        r = self.dmctl("subscriber", "add", acct, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("dmctl: subscriber_exists:", r.stderr)
        # A device certificate is not an operator.
        conf = load(self.dmctl_conf)
        conf["tls"]["cert"] = os.path.join(self.pki, "app.crt")
        conf["tls"]["key"] = os.path.join(self.pki, "app.key")
        bad = os.path.join(self.workdir, "dmctl-app.json")
        dump(conf, bad)
        r = self.dmctl("code", "issue", acct, conf=bad, check=False)
        self.assertEqual(r.returncode, 4)
        self.assertIn("dmctl: forbidden:", r.stderr)
        # Nobody listening.
        conf = load(self.dmctl_conf)
        conf["endpoints"]["dm-mss"] = self.closed_url()
        down = os.path.join(self.workdir, "dmctl-down.json")
        dump(conf, down)
        r = self.dmctl("code", "issue", acct, conf=down, check=False)
        self.assertEqual(r.returncode, 3)
        self.assertIn("dmctl: unreachable:", r.stderr)


class Offline(Fig4Base):
    """Offline bundles: steps 5-12 with no contact with dm-mss."""

    def test_offline_install(self):
        acct = self.account()
        hw = self.uniq("hw")
        path = self.bundle(hw, acct)
        doc = load(path)
        self.assertEqual(doc["format"], "opendm-offline-bundle/1")
        self.assertEqual(jws_claims(doc["bundle_sig"])["sub"], hw)
        dev = self.device(hw_id=hw, dm_mss_url=self.closed_url())
        self.assert_installed(dev, dev.install(offline=path))
        steps = [s["step"] for s in flow_steps(self.log_files(dev), subject=hw)]
        self.assertEqual(steps[-8:], list(range(5, 13)), steps)

    def test_refused_bundle_for_another_device(self):
        acct = self.account()
        path = self.bundle(self.uniq("hw"), acct)
        dev = self.device(dm_mss_url=self.closed_url())
        before = self.snapshots()
        self.assert_refused(dev, dev.install(offline=path), "wrong_device", before)

    def test_refused_package_with_one_changed_byte(self):
        acct = self.account()
        hw = self.uniq("hw")
        path = self.bundle(hw, acct)
        doc = load(path)
        pkg = bytearray(base64.b64decode(doc["package"]))
        pkg[len(pkg) // 2] ^= 0x01
        doc["package"] = base64.b64encode(bytes(pkg)).decode()
        tampered = path + ".tampered"
        with open(tampered, "w") as f:
            json.dump(doc, f)
        dev = self.device(hw_id=hw, dm_mss_url=self.closed_url())
        before = self.snapshots()
        self.assert_refused(dev, dev.install(offline=tampered), "bad_digest", before)
        self.assertEqual(os.listdir(os.path.join(dev.state_dir, "agent", ".download"))
                         if os.path.isdir(os.path.join(dev.state_dir, "agent", ".download"))
                         else [], [])
        # The genuine bundle still installs (the refusal spent nothing).
        self.assert_installed(dev, dev.install(offline=path))

    def test_refused_tampered_bundle_signature(self):
        acct = self.account()
        hw = self.uniq("hw")
        doc = load(self.bundle(hw, acct))
        other = load(self.bundle(self.uniq("hw"), acct))
        doc["enrolment_token"] = other["enrolment_token"]  # not the one bundle_sig binds
        tampered = os.path.join(self.workdir, self.uniq("swapped") + ".json")
        dump(doc, tampered)
        dev = self.device(hw_id=hw, dm_mss_url=self.closed_url())
        before = self.snapshots()
        self.assert_refused(dev, dev.install(offline=tampered), None, before)


class Versions(Fig4Base):
    """A newer agent is published; an older one is refused (rollback)."""

    def test_refused_older_version(self):
        acct = self.account()
        dev = self.device()
        old = self.bundle(dev.hw_id, acct, "bundle-v1")
        self.assertEqual(jws_claims(load(old)["manifest"])["version_number"], 1)
        # Version 2 published; dm-mss picks it up at its next start.
        self.stack.publish_agent(self.stack.bin("dm-agent"), "0.2.0", 2)
        self.stack.stop("dm-mss")
        self.stack.start("dm-mss")
        self.assert_installed(dev, dev.install(code=self.code(acct)), version=2)
        before = self.snapshots()
        r = dev.install(offline=old)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("dm-app: rollback:", r.stderr)
        self.assertEqual(db_snapshot(self.db("dm-iss")), before["dm-iss"])
        st = dev.status()
        self.assertEqual(st["installed_version"], 2)
        self.assertTrue(st["agent_running"])
        manifest = jws_claims(read(os.path.join(dev.state_dir, "agent", "manifest.jws")).strip())
        self.assertEqual(manifest["version_number"], 2)
        # Online, nothing newer than what is installed: dm-mss says so, spends nothing.
        code = self.code(acct)
        before = self.snapshots()
        r = dev.install(code=code)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("dm-app: already_installed:", r.stderr)
        self.assertEqual(self.snapshots(), before)
        self.assertEqual(dev.status()["installed_version"], 2)


class Faults(Fig4Base):
    """A download cut half-way, and dm-iss killed during personalization."""

    def test_download_cut_halfway_resumes(self):
        pkg = os.path.join(self.stack.packages, devstack.PLATFORM, "1", "dm-agent")
        size = os.path.getsize(pkg)
        cut_at = size // 2
        state = {"cut": False}

        def on_data(fwd, n, direction, data):
            # The first connection to carry more than half the package is cut there, once.
            if direction != "s2c" or state["cut"]:
                return None
            seen = state.setdefault(n, 0)
            state[n] = seen + len(data)
            if state[n] > cut_at:
                state["cut"] = True
                return max(0, cut_at - seen)
            return None

        fwd = Forwarder(self.port("dm-mss"), on_data)
        self.addCleanup(fwd.close)
        acct = self.account()
        dev = self.device(dm_mss_url=fwd.url)
        self.assert_installed(dev, dev.install(code=self.code(acct)))
        self.assertTrue(state["cut"], "the forwarder never cut the download")
        # Resumed, not restarted: well under two packages went through.
        self.assertLess(fwd.bytes["s2c"], size + cut_at // 2, fwd.bytes)
        inst = os.path.join(dev.state_dir, "agent", "dm-agent")
        manifest = jws_claims(read(os.path.join(dev.state_dir, "agent", "manifest.jws")).strip())
        data = read(inst, "rb")
        self.assertEqual(hashlib.sha256(data).hexdigest(), manifest["sha256"])
        self.assertEqual(len(data), manifest["size"])
        dl = os.path.join(dev.state_dir, "agent", ".download")
        leftovers = os.listdir(dl) if os.path.isdir(dl) else []
        self.assertEqual([x for x in leftovers if x.endswith(".part")], [])

    def test_dm_iss_killed_during_personalization(self):
        iss = self.stack.daemons["dm-iss"]
        killed = threading.Event()
        phases = {}

        def on_data(fwd, n, direction, data):
            # TLS 1.3 with no session tickets alternates: ClientHello, the server's flight,
            # the client's flight with the request right behind it, then the response. So
            # the second burst from dm-iss is its answer: dm-iss has done the work. Lose
            # the answer and SIGKILL dm-iss, as a crash at the worst moment would.
            if killed.is_set():
                return None
            st = phases.setdefault(n, {"last": None, "s2c": 0})
            if direction == "s2c" and st["last"] != "s2c":
                st["s2c"] += 1
            st["last"] = direction
            if direction == "s2c" and st["s2c"] >= 2:
                os.kill(iss.proc.pid, signal.SIGKILL)
                killed.set()
                return 0
            return None

        fwd = Forwarder(iss.port, on_data)
        self.addCleanup(fwd.close)
        self.stack.reconfigure("dm-mss", {"dm_mss": {"dm_iss_url": fwd.url}})
        self.addCleanup(self.restore_dm_mss)
        self.stack.stop("dm-mss")
        self.stack.start("dm-mss")
        acct = self.account()
        dev = self.device()
        code = self.code(acct)
        result = {}
        t = threading.Thread(target=lambda: result.update(r=dev.install(code=code)))
        t.start()
        try:
            self.assertTrue(killed.wait(60), "dm-iss never answered through the forwarder")
            iss.proc.wait(10)
            iss.proc = None
            time.sleep(1.0)
            self.stack.start("dm-iss")
        finally:
            t.join(150)
        self.assertFalse(t.is_alive())
        dm_id = self.assert_installed(dev, result["r"])
        self.assertGreaterEqual(fwd.conns, 2, "the agent did not retry")
        # Exactly one certificate for this device; no DM id or serial issued twice.
        rows = db_query(self.db("dm-iss"), "SELECT dm_id FROM issued_cert WHERE hw_id = ?",
                        (dev.hw_id,))
        self.assertEqual(rows, [(dm_id,)])
        for col in ("dm_id", "serial"):
            self.assertEqual(db_query(self.db("dm-iss"),
                                      "SELECT %s FROM issued_cert GROUP BY %s"
                                      " HAVING COUNT(*) > 1" % (col, col)), [])
        steps = [s["step"] for s in flow_steps(self.log_files(dev), subject=dev.hw_id)]
        self.assertEqual(steps.count(12), 1, steps)
        self.assertEqual(steps.count(11), 1, steps)

    def restore_dm_mss(self):
        self.stack.reconfigure("dm-mss", {})
        self.stack.stop("dm-mss")
        self.stack.start("dm-mss")


if __name__ == "__main__":
    odmtest.main()
