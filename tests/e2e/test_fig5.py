#!/usr/bin/env python3
"""Figure 5 end to end (J.1020 §10): CDCS authorization, download, installation and
personalization, then content played through the personalized CA/DRM clients.

Real daemons (all six) started by devstack, real devices personalized through Figure 4,
the real sample CDCSs published with dmctl, real dm-app / dm-agent. Every refusal is checked
for its code, for nothing installed on the device, and for the head-end's databases.
"""

import base64
import hashlib
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import threading
import time

import odmtest
from odmtest import Forwarder, db_query, flow_steps
from test_fig4 import OK, REFUSED, Fig4Base, jws_claims, load, read

devstack = odmtest.devstack

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402

CA = "vendor-a/sample-ca"
DRM = "vendor-b/sample-drm"
DEVICE_STEPS = {1, 7, 8, 14, 15, 19}
PSS_STEPS = {2, 3, 4, 6}
MSS_STEPS = {5, 9, 10, 11, 13}
ISS_STEPS = {12, 16, 17, 18, 20}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jws(key_path, claims):
    """A compact ES256 JWS over claims with the PEM private key at key_path (to forge tickets
    signed with the real keys but with claims a daemon must refuse)."""
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    head = b64url(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    der = key.sign(("%s.%s" % (head, body)).encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return "%s.%s.%s" % (head, body, b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")))


def new_public_key():
    key = ec.generate_private_key(ec.SECP256R1())
    return key, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class Fig5Base(Fig4Base):
    """A stack with the sample CDCSs published and the development policy loaded."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.stack.fig5_setup()
        except Exception:
            cls.tearDownClass()
            raise

    def personalized(self, levels, capability=None, vendor_keys=None):
        """A device of a new subscriber with these entitlement levels, through Figure 4."""
        acct = self.account()
        if levels is not None:
            self.stack.set_entitlements(acct, levels)
        kw = {}
        if capability is not None:
            kw["capability"] = dict(devstack.CAPABILITY, **capability)
        if vendor_keys is not None:
            kw["vendor_keys"] = vendor_keys
        dev = self.device(**kw)
        r = dev.install(code=self.code(acct))
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertIsNotNone(dev.dm_id)
        dev.account = acct
        return dev

    def sync(self, dev, ok=True):
        r, doc = dev.cdcs_sync()
        if ok:
            self.assertEqual(r.returncode, OK, r.stdout + r.stderr)
            self.assertIsNotNone(doc, r.stdout)
            self.assertTrue(doc["ok"], doc)
        return r, doc

    def names(self, items):
        return sorted("%s/%s" % (i["vendor"], i["name"]) for i in items)

    def status(self, dev):
        return {"%s/%s" % (c["vendor"], c["name"]): c for c in dev.cdcs_status()["cdcs"]}

    def content(self, system, level, size=50000):
        name = self.uniq("content")
        plain = os.path.join(self.workdir, name + ".bin")
        with open(plain, "wb") as f:
            f.write(os.urandom(size))
        enc = plain + "." + system.replace("/", "_") + "." + level + ".jwe"
        self.stack.encrypt_content(system, level, plain, enc)
        return plain, enc

    def assert_plays(self, dev, system, level):
        plain, enc = self.content(system, level)
        out = enc + ".played"
        r = dev.play(enc, out=out)
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(read(plain, "rb"), read(out, "rb"), "played content differs")

    def assert_no_play(self, dev, system, level, code):
        _, enc = self.content(system, level)
        out = enc + ".played"
        r = dev.play(enc, out=out)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn(code, r.stderr)
        self.assertFalse(os.path.exists(out) and os.path.getsize(out) > 0)

    def cdcs_dir(self, dev, system):
        return os.path.join(dev.state_dir, "cdcs", system)

    def assert_not_installed(self, dev, system):
        """No version of system is current on the device, and no version directory is left."""
        d = self.cdcs_dir(dev, system)
        self.assertFalse(os.path.lexists(os.path.join(d, "current")), d)
        if os.path.isdir(d):
            left = [n for n in os.listdir(d) if n.isdigit()]
            self.assertEqual(left, [], "half-installed version directories in %s" % d)

    def failed_codes(self, doc):
        return {"%s/%s" % (f["vendor"], f["name"]): f["code"] for f in doc.get("failed", [])}

    def all_logs(self, *devs):
        files = [d.log for d in self.stack.daemons.values()]
        for dev in devs:
            files += [dev.app_log, dev.agent_log]
        return files

    def fig5_steps(self, dev):
        return flow_steps(self.all_logs(dev), "fig5", subject=dev.dm_id)

    def device_ctx(self, dev):
        """A TLS client context with the device's DM certificate (Figure 5 identity)."""
        ident = os.path.join(dev.state_dir, "identity")
        c = odmtest.client_ctx(self.pki, name=None)
        c.load_cert_chain(os.path.join(ident, "cert.pem"), os.path.join(ident, "key.pem"))
        return c

    def authorize(self, dev, installed=()):
        status, doc, _ = odmtest.request(
            self.port("cdcs-pss"), self.device_ctx(dev), "POST", "/v1/cdcs/authorize",
            {"capability": dev.cfg["capability"], "installed": list(installed)}, timeout=30)
        self.assertEqual(status, 200, doc)
        return doc

    def ticket_item(self, dev, system=CA):
        doc = self.authorize(dev)
        items = [i for i in doc["install"] if "%s/%s" % (i["vendor"], i["name"]) == system]
        self.assertEqual(len(items), 1, doc)
        return items[0]

    def download(self, dev, ticket, ctx=None):
        return odmtest.request(self.port("cdcs-mss"), ctx or self.device_ctx(dev), "POST",
                               "/v1/cdcs/download", {"download_ticket": ticket}, timeout=30)

    def personalize(self, dev, ticket, vendor="vendor-a", name="sample-ca", ctx=None):
        _, pub = new_public_key()
        return odmtest.request(self.port("cdcs-iss"), ctx or self.device_ctx(dev), "POST",
                               "/v1/cdcs/personalize",
                               {"personalization_ticket": ticket, "public_key": pub,
                                "vendor": vendor, "name": name}, timeout=30)

    def rule(self, name, entitlement, variant, vendor="vendor-a", cdcs="sample-ca",
             grants=("basic",), when=None, priority=1):
        self.stack.add_rule({"name": name, "priority": priority, "entitlement": entitlement,
                             "when": when or {}, "vendor": vendor, "cdcs": cdcs,
                             "variant": variant, "min_version": 1, "grants": list(grants)})

    def own_variant(self, tag):
        """A policy slot of its own for one test: entitlement level = variant = tag, so that
        what the test publishes under that variant reaches only its own devices."""
        self.rule("r-" + tag, tag, tag)
        return tag


class Flow(Fig5Base):
    """The issue's main path: install, personalize, play; then a run with nothing to do."""

    def test_install_personalize_play_and_skip(self):
        dev = self.personalized(["basic", "premium"])
        r, doc = self.sync(dev)
        self.assertEqual(self.names(doc["installed"]), [CA, DRM], doc)
        self.assertEqual(doc["failed"], [], doc)
        st = self.status(dev)
        self.assertEqual(sorted(st), [CA, DRM])
        for system, c in st.items():
            self.assertTrue(c["personalized"], c)
            self.assertEqual(c["version_number"], 1)
        self.assertEqual(st[CA]["variant"], "sw")  # no hardware-secure video path
        self.assertEqual(sorted(st[CA]["rights"]), ["basic", "premium"])

        # The twenty steps: 1-6 once, then 7-19 for each CDCS in order, and each one's step
        # 20 (cdcs-iss reporting to cdcs-pss, asynchronous) after its step 19.
        steps = self.fig5_steps(dev)
        seq = [s["step"] for s in steps]
        text = "\n".join("%s %s %s" % (s["file"], s["step"], s.get("msg")) for s in steps)
        self.assertIn(7, seq, text)
        head = seq[:seq.index(7)]  # step 5 is logged once per CDCS cdcs-mss prepares
        self.assertEqual([x for i, x in enumerate(head) if i == 0 or head[i - 1] != x],
                         [1, 2, 3, 4, 5, 6], text)
        self.assertEqual([x for x in seq if 7 <= x <= 19], list(range(7, 20)) * 2, text)
        self.assertEqual(seq.count(20), 2, text)
        pos19 = [i for i, x in enumerate(seq) if x == 19]
        pos20 = [i for i, x in enumerate(seq) if x == 20]
        self.assertTrue(all(a < b for a, b in zip(pos19, pos20)), text)
        self.assertEqual(set(range(1, 21)), set(seq), text)
        owner = {"dm-agent.log": DEVICE_STEPS, "cdcs-pss.log": PSS_STEPS,
                 "cdcs-mss.log": MSS_STEPS, "cdcs-iss.log": ISS_STEPS}
        for s in steps:
            self.assertIn(s["step"], owner[s["file"]], "step %d logged by %s" %
                          (s["step"], s["file"]))

        # Content of each system plays byte for byte; a level the CDCS has no key for does not.
        self.assert_plays(dev, CA, "premium")
        self.assert_plays(dev, DRM, "basic")
        self.assert_no_play(dev, CA, "uhd", "not_entitled")

        # The head-end recorded the decision and the personalized state (step 20).
        show = json.loads(self.dmctl("--json", "policy", "device", dev.dm_id).stdout)
        states = {"%s/%s" % (c["vendor"], c["name"]): c["state"] for c in show["cdcs"]}
        self.assertEqual(states, {CA: "personalized", DRM: "personalized"}, show)
        self.assertIn("ca-sw", json.dumps(show["decisions"]))

        # Secrets stay where they belong: the CDCS store is private, and no entitlement key
        # appears in any log (daemons, dm-app, dm-agent, CDCS children).
        for system in (CA, DRM):
            store = os.path.join(self.cdcs_dir(dev, system), "current", "store")
            for n in os.listdir(store):
                self.assertEqual(stat.S_IMODE(os.stat(os.path.join(store, n)).st_mode), 0o600)
        keys = [k["k"] for k in load(os.path.join(self.pki, "entitlement-keys.json"))["keys"]]
        for path in self.all_logs(dev):
            if os.path.exists(path):
                text = read(path)
                for k in keys:
                    self.assertNotIn(k, text, "entitlement key in " + path)

        # Step 7 the second time: everything is installed and personalized, nothing moves.
        n8 = seq.count(8)
        r, doc = self.sync(dev)
        self.assertEqual(doc["installed"], [], doc)
        self.assertEqual(self.names(doc["skipped"]), [CA, DRM], doc)
        seq2 = [s["step"] for s in self.fig5_steps(dev)]
        self.assertEqual(seq2.count(8), n8, "a second run downloaded again")
        self.assertEqual(seq2.count(7), seq.count(7) + 2)


class Policy(Fig5Base):
    """Entitlements and hardware capability decide the client, its variant and its keys."""

    def test_secure_video_path_gets_hw_variant_and_uhd(self):
        hw = self.personalized(["basic", "uhd"], capability={"secure_video_path": True})
        sw = self.personalized(["basic", "uhd"], capability={"secure_video_path": False})
        for dev in (hw, sw):
            self.sync(dev)
        self.assertEqual(self.status(hw)[CA]["variant"], "hw")
        self.assertEqual(self.status(sw)[CA]["variant"], "sw")
        self.assertIn("uhd", self.status(hw)[CA]["rights"])
        self.assertNotIn("uhd", self.status(sw)[CA]["rights"])
        self.assert_plays(hw, CA, "uhd")
        self.assert_no_play(sw, CA, "uhd", "not_entitled")
        self.assert_plays(sw, CA, "basic")
        # Neither is premium: no DRM client for them.
        self.assertNotIn(DRM, self.status(hw))
        # The recorded decisions say why.
        for dev, rule in ((hw, "ca-hw"), (sw, "ca-sw")):
            show = json.loads(self.dmctl("--json", "policy", "device", dev.dm_id).stdout)
            self.assertIn(rule, show["decisions"][0]["reason"], show)

    def test_policy_change_removes_a_client(self):
        """Premium lapses: the DRM client is removed at the next run, the CA client stays
        (make-before-break: nothing else had to be installed first)."""
        dev = self.personalized(["basic", "premium"])
        self.sync(dev)
        self.assertEqual(sorted(self.status(dev)), [CA, DRM])
        self.stack.set_entitlements(dev.account, ["basic"])
        _, doc = self.sync(dev)
        self.assertEqual(self.names(doc["removed"]), [DRM], doc)
        self.assertEqual(sorted(self.status(dev)), [CA])
        self.assert_not_installed(dev, DRM)
        self.assert_no_play(dev, DRM, "basic", "no_cdcs")
        self.assert_plays(dev, CA, "basic")
        show = json.loads(self.dmctl("--json", "policy", "device", dev.dm_id).stdout)
        states = {"%s/%s" % (c["vendor"], c["name"]): c["state"] for c in show["cdcs"]}
        self.assertEqual(states.get(DRM), "removed", show)

    def test_not_entitled_content_cannot_be_played(self):
        dev = self.personalized(["basic"])
        _, doc = self.sync(dev)
        self.assertEqual(self.names(doc["installed"]), [CA], doc)
        self.assert_no_play(dev, CA, "premium", "not_entitled")
        self.assert_no_play(dev, DRM, "basic", "no_cdcs")
        self.assert_plays(dev, CA, "basic")


class Refusals(Fig5Base):
    """Every ticket, image and personalization attack the issue names."""

    def test_download_ticket_replay_other_device_expired_wrong_daemon(self):
        dev = self.personalized(["basic"])
        other = self.personalized(["basic"])
        item = self.ticket_item(dev)
        ticket = item["download_ticket"]
        claims = jws_claims(ticket)
        # Another device presenting dev's ticket.
        status, doc, _ = self.download(dev, ticket, ctx=self.device_ctx(other))
        self.assertEqual((status, doc["error"]["code"]), (403, "wrong_subject"), doc)
        # An operator certificate is no device.
        status, doc, _ = self.download(dev, ticket, ctx=odmtest.client_ctx(self.pki))
        self.assertEqual((status, doc["error"]["code"]), (403, "not_device"), doc)
        # Presented to the wrong daemon (cdcs-iss expects its own personalization ticket).
        # (cdcs-iss checks the signature with its own key first: bad_token.)
        status, doc, _ = self.personalize(dev, ticket)
        self.assertEqual(status, 401, doc)
        self.assertIn(doc["error"]["code"], ("bad_token", "wrong_issuer", "wrong_audience"))
        # Expired: the real key, the real claims, exp in the past.
        old = dict(claims, iat=int(time.time()) - 3600, exp=int(time.time()) - 600,
                   jti=os.urandom(16).hex())
        forged = sign_jws(os.path.join(self.pki, "download-ticket-signing.key"), old)
        status, doc, _ = self.download(dev, forged)
        self.assertEqual((status, doc["error"]["code"]), (401, "token_expired"), doc)
        # Signed by another key.
        forged = sign_jws(os.path.join(self.pki, "vendor-a-signing.key"),
                          dict(claims, jti=os.urandom(16).hex()))
        status, doc, _ = self.download(dev, forged)
        self.assertEqual((status, doc["error"]["code"]), (401, "bad_token"), doc)
        # The real ticket works once, then never again.
        status, doc, _ = self.download(dev, ticket)
        self.assertEqual(status, 200, doc)
        self.assertIn("personalization_ticket", doc)
        status, doc2, _ = self.download(dev, ticket)
        self.assertEqual((status, doc2["error"]["code"]), (409, "token_replayed"), doc2)
        # The personalization ticket is no download ticket.
        status, doc3, _ = self.download(dev, doc["personalization_ticket"])
        self.assertEqual(status, 401, doc3)
        # The image session belongs to dev alone.
        url = doc["image_url"].split("/", 3)[3]
        status, doc4, _ = odmtest.request(self.port("cdcs-mss"), self.device_ctx(other), "GET",
                                          "/" + url, timeout=30)
        self.assertEqual(status, 403, doc4)

    def test_personalization_ticket_wrong_reused_other_device(self):
        dev = self.personalized(["basic"])
        other = self.personalized(["basic"])
        status, doc, _ = self.download(dev, self.ticket_item(dev)["download_ticket"])
        self.assertEqual(status, 200, doc)
        pt = doc["personalization_ticket"]
        status, d, _ = self.personalize(dev, "not.a.ticket")
        self.assertEqual(status, 401, d)
        status, d, _ = self.personalize(dev, pt, ctx=self.device_ctx(other))
        self.assertEqual((status, d["error"]["code"]), (403, "wrong_subject"), d)
        status, d, _ = self.personalize(dev, pt, vendor="vendor-b", name="sample-drm")
        self.assertEqual(status, 403, d)
        status, d, _ = self.personalize(dev, pt)
        self.assertEqual(status, 200, d)
        self.assertEqual(len(d["personalization_data"].split(".")), 5)
        status, d, _ = self.personalize(dev, pt)
        self.assertEqual((status, d["error"]["code"]), (409, "token_replayed"), d)
        rows = db_query(self.db("cdcs-iss"), "SELECT COUNT(*) FROM personalization"
                        " WHERE dm_id = ?", (dev.dm_id,))
        self.assertEqual(rows, [(1,)])

    def test_personalization_data_for_another_key(self):
        """The CDCS refuses data sealed to a key that is not its own: run the installed
        sample CDCS in its host, let it make its request, answer with data for another key."""
        dev = self.personalized(["basic"])
        self.sync(dev)
        src = os.path.realpath(os.path.join(self.cdcs_dir(dev, CA), "current"))
        host = os.path.join(self.workdir, self.uniq("host"))
        os.makedirs(host, mode=0o700)
        for n in ("cdcs.so", "manifest.jws", "approval.jws"):
            with open(os.path.join(src, n), "rb") as f, open(os.path.join(host, n), "wb") as g:
                g.write(f.read())
        os.chmod(os.path.join(host, "cdcs.so"), 0o755)
        status, doc, _ = self.download(dev, self.ticket_item(dev)["download_ticket"])
        self.assertEqual(status, 200, doc)
        p = subprocess.Popen([self.stack.bin("dm-agent"), "--cdcs-host", host],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=open(os.path.join(self.workdir, "host.log"), "ab"), text=True)
        try:
            p.stdin.write(json.dumps({"op": "perso_request",
                                      "ticket": doc["personalization_ticket"]}) + "\n")
            p.stdin.flush()
            ans = json.loads(p.stdout.readline())
            self.assertTrue(ans["ok"], ans)
            req = ans["request"]
            self.assertIn("BEGIN PUBLIC KEY", req["public_key"])
            # cdcs-iss seals to whatever key the request names: here, one that is not the
            # CDCS's own.
            _, pub = new_public_key()
            req = dict(req, public_key=pub)
            status, d, _ = odmtest.request(self.port("cdcs-iss"), self.device_ctx(dev), "POST",
                                           "/v1/cdcs/personalize", req, timeout=30)
            self.assertEqual(status, 200, d)
            p.stdin.write(json.dumps({"op": "perso_apply",
                                      "data": d["personalization_data"]}) + "\n")
            p.stdin.flush()
            ans = json.loads(p.stdout.readline())
            self.assertFalse(ans["ok"], ans)
            p.stdin.write(json.dumps({"op": "status"}) + "\n")
            p.stdin.flush()
            st = json.loads(p.stdout.readline())
            self.assertFalse(st["status"].get("personalized"), st)
        finally:
            p.stdin.close()
            p.wait(timeout=15)
        self.assertEqual(p.returncode, 0)

    def test_image_with_one_changed_byte(self):
        v = self.own_variant("onebyte")
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", v)
        image = os.path.join(self.stack.catalogue, "vendor-a", "sample-ca", v,
                             devstack.PLATFORM, "1", "image")
        data = bytearray(read(image, "rb"))
        data[len(data) // 2] ^= 0x01
        with open(image, "wb") as f:
            f.write(data)
        dev = self.personalized([v])
        r, doc = self.sync(dev, ok=False)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertEqual(self.failed_codes(doc), {CA: "bad_digest"}, doc)
        self.assert_not_installed(dev, CA)

    def test_image_not_approved_or_unknown_vendor(self):
        # The catalogue refuses to register them at all.
        r = self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", "noappr", approval=False,
                                    check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not_approved", r.stderr)
        r = self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", "badappr", check=False,
                                    operator_key=os.path.join(self.pki, "vendor-b-signing.key"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not_approved", r.stderr)
        r = self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", "badvendor", check=False,
                                    vendor_key=os.path.join(self.pki, "vendor-b-signing.key"))
        self.assertNotEqual(r.returncode, 0)
        # And the device refuses them too, should a catalogue serve them (a compromised
        # cdcs-mss): an approval by the vendor instead of the operator...
        v = self.own_variant("swapappr")
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", v)
        bad = self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", v + "x", register=False,
                                      operator_key=os.path.join(self.pki,
                                                                "vendor-a-signing.key"))
        self.assertEqual(bad.returncode, 0)
        approval = read(os.path.join(self.stack.catalogue, "vendor-a", "sample-ca", v + "x",
                                     devstack.PLATFORM, "1", "approval.jws"))
        db = self.db("cdcs-mss")
        conn = sqlite3.connect(db, timeout=10)
        try:
            conn.execute("UPDATE image SET approval = ? WHERE variant = ?", (approval, v))
            conn.commit()
        finally:
            conn.close()
        dev = self.personalized([v])
        r, doc = self.sync(dev, ok=False)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn(self.failed_codes(doc).get(CA),
                      ("not_approved", "approval_mismatch", "bad_signature"), doc)
        self.assert_not_installed(dev, CA)
        # ...and a device that does not know vendor-b refuses vendor-b's client.
        keys = {"vendor-a": os.path.join(self.pki, "vendor-a-signing.pub")}
        dev = self.personalized(["basic", "premium"], vendor_keys=keys)
        r, doc = self.sync(dev, ok=False)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertEqual(self.failed_codes(doc), {DRM: "unknown_vendor"}, doc)
        self.assert_not_installed(dev, DRM)
        self.assertTrue(self.status(dev)[CA]["personalized"])

    def test_rollback_never_offered(self):
        """The head-end offers nothing below the installed version (cdcs-pss passes it to
        prepare as a floor); the agent's own anti-rollback check is in test_device."""
        v = self.own_variant("rollback")
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", v, version="2.0.0", number=2)
        dev = self.personalized([v])
        self.sync(dev)
        self.assertEqual(self.status(dev)[CA]["version_number"], 2)
        self.stack.dmctl("cdcs", "withdraw", "vendor-a", "sample-ca", v, devstack.PLATFORM, 2)
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", v, version="1.0.0", number=1)
        r, doc = self.sync(dev)
        self.assertEqual(doc["installed"], [], doc)
        self.assertEqual(self.status(dev)[CA]["version_number"], 2)
        self.assertFalse(os.path.exists(os.path.join(self.cdcs_dir(dev, CA), "1")))
        # A new device, with nothing installed, gets the version that is left.
        other = self.personalized([v])
        self.sync(other)
        self.assertEqual(self.status(other)[CA]["version_number"], 1)

    def test_revoked_dm_certificate(self):
        dev = self.personalized(["basic"])
        self.dmctl("device", "revoke", dev.hw_id)
        r, doc = self.sync(dev, ok=False)
        self.assertEqual(r.returncode, REFUSED, r.stdout + r.stderr)
        self.assertIn("dm_revoked", r.stdout + r.stderr)
        self.assert_not_installed(dev, CA)
        status, doc, _ = odmtest.request(
            self.port("cdcs-pss"), self.device_ctx(dev), "POST", "/v1/cdcs/authorize",
            {"capability": dev.cfg["capability"], "installed": []}, timeout=30)
        self.assertEqual((status, doc["error"]["code"]), (403, "dm_revoked"), doc)


class Faults(Fig5Base):
    """Cut downloads, a crashing CDCS, and head-end daemons killed in the middle of the flow."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Devices reach cdcs-mss through a forwarder that can cut connections.
        cls.cut = {"left": 0, "at": 0, "count": {}}
        cls.fwd = Forwarder(cls.stack.daemons["cdcs-mss"].port, on_data=cls.on_data)
        cls.stack.reconfigure("cdcs-mss", {"cdcs_mss": {"public_url": cls.fwd.url}})
        cls.stack.stop("cdcs-mss")
        cls.stack.start("cdcs-mss")

    @classmethod
    def tearDownClass(cls):
        cls.fwd.close()
        super().tearDownClass()

    @classmethod
    def on_data(cls, fwd, n, direction, data):
        if direction != "s2c" or cls.cut["left"] <= 0:
            return None
        seen = cls.cut["count"].get(n, 0)
        cls.cut["count"][n] = seen + len(data)
        if seen + len(data) > cls.cut["at"]:
            cls.cut["left"] -= 1
            cls.cut["at"] = random.randint(64 * 1024, 2 * 1024 * 1024)
            return max(0, cls.cut["at"] - seen) if seen < cls.cut["at"] else 0
        return None

    def big_image(self, size):
        path = os.path.join(self.workdir, self.uniq("big") + ".so")
        with open(self.stack.bin("cdcs-sample-ca.so"), "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data + os.urandom(size - len(data)))  # trailing bytes: the ELF loads
        return path

    def test_download_cut_several_times_resumes(self):
        v = self.own_variant("cut")
        size = 6 * 1024 * 1024
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", v, image=self.big_image(size))
        dev = self.personalized([v, "basic"])  # its own rule wins (priority 1), grants basic
        with self.fwd.lock:
            self.fwd.bytes["s2c"] = 0
        self.cut.update(left=3, at=random.randint(64 * 1024, 2 * 1024 * 1024), count={})
        self.sync(dev)
        self.assertEqual(self.cut["left"], 0, "the download was not cut three times")
        self.assertTrue(self.status(dev)[CA]["personalized"])
        sent = self.fwd.bytes["s2c"]
        self.assertLessEqual(sent, 1.1 * size, "%d bytes sent for a %d-byte image" %
                             (sent, size))
        inst = os.path.join(self.cdcs_dir(dev, CA), "current", "cdcs.so")
        digest = hashlib.sha256(read(inst, "rb")).hexdigest()
        self.assertEqual(digest, self.status(dev)[CA].get("sha256", digest))
        self.assert_plays(dev, CA, "basic")

    def test_cdcs_crash_during_personalization(self):
        v = self.own_variant("crash")
        flag = os.path.join(self.workdir, "crash-now")
        crashy = os.path.join(odmtest.BUILD, "tests", "cdcs-crashy.so")
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", v, image=crashy)
        with open(flag, "w"):
            pass
        # The agent (started by dm-app during Figure 4) and its CDCS children inherit these:
        # the sample CA client that aborts in perso_apply while the flag file exists.
        os.environ["ODM_TEST_CDCS_CRASH_FILE"] = flag
        os.environ["ODM_TEST_CDCS_REAL"] = self.stack.bin("cdcs-sample-ca.so")
        try:
            dev = self.personalized([v, "basic"])
        finally:
            os.environ.pop("ODM_TEST_CDCS_CRASH_FILE", None)
            os.environ.pop("ODM_TEST_CDCS_REAL", None)
        r, doc = self.sync(dev, ok=False)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertEqual(self.failed_codes(doc), {CA: "cdcs_crashed"}, doc)
        self.assertTrue(dev.status()["agent_running"])
        self.assertNotIn(CA, self.status(dev))
        self.assert_not_installed(dev, CA)
        # The fault is gone: the next run installs and personalizes it.
        os.unlink(flag)
        self.sync(dev)
        self.assertTrue(self.status(dev)[CA]["personalized"])
        self.assert_plays(dev, CA, "basic")

    def kill_when(self, role, needle, restart_after=1.0):
        """SIGKILL role as soon as its log shows needle, restart it after a moment."""
        log = self.stack.daemons[role].log
        start = os.path.getsize(log)
        done = threading.Event()

        def watch():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with open(log, errors="replace") as f:
                    f.seek(start)
                    if needle in f.read():
                        self.stack.daemons[role].proc.send_signal(signal.SIGKILL)
                        self.stack.daemons[role].proc.wait()
                        self.stack.daemons[role].proc = None
                        time.sleep(restart_after)
                        self.stack.start(role)
                        done.set()
                        return
                time.sleep(0.01)

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        return t, done

    def counts(self):
        """(download sessions, tickets spent at cdcs-mss, personalizations, tickets spent at
        cdcs-iss). Spent tickets are purged minutes after they expire, so compare the growth
        over one short test, not the totals."""
        q = lambda role, table: db_query(self.db(role),  # noqa: E731
                                         "SELECT COUNT(*) FROM " + table)[0][0]
        return (q("cdcs-mss", "session"), q("cdcs-mss", "used_token"),
                q("cdcs-iss", "personalization"), q("cdcs-iss", "used_token"))

    def assert_consistent(self, before):
        for role in ("cdcs-pss", "cdcs-mss", "cdcs-iss"):
            self.assertEqual(db_query(self.db(role), "PRAGMA integrity_check"), [("ok",)])
        # Every download session spent exactly one ticket, every personalization one: a kill
        # never leaves a spent ticket without what it bought, or the other way round.
        after = self.counts()
        grew = [a - b for a, b in zip(after, before)]
        self.assertEqual(grew[0], grew[1], "sessions vs spent download tickets: %s" % grew)
        self.assertEqual(grew[2], grew[3], "personalizations vs spent tickets: %s" % grew)
        self.assertGreaterEqual(grew[0], 1)

    def run_until_done(self, dev, tries=3):
        for _ in range(tries):
            r, doc = self.sync(dev, ok=False)
            if r.returncode == OK:
                return doc
            time.sleep(1)
        self.fail("Figure 5 did not complete after restarts: %s" % (r.stdout + r.stderr))

    def test_cdcs_mss_killed_mid_download(self):
        v = self.own_variant("killmss")
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", v,
                                image=self.big_image(4 * 1024 * 1024))
        dev = self.personalized([v])
        before = self.counts()
        t, done = self.kill_when("cdcs-mss", "step=10")
        self.run_until_done(dev)
        t.join(30)
        self.assertTrue(done.is_set(), "cdcs-mss was not killed")
        self.assertTrue(self.status(dev)[CA]["personalized"])
        self.assert_consistent(before)

    def test_cdcs_iss_killed_mid_flow(self):
        v = self.own_variant("killiss")
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", v)
        dev = self.personalized([v])
        before = self.counts()
        t, done = self.kill_when("cdcs-iss", "step=16", restart_after=0.5)
        self.run_until_done(dev)
        t.join(30)
        self.assertTrue(done.is_set(), "cdcs-iss was not killed")
        self.assertTrue(self.status(dev)[CA]["personalized"])
        self.assert_consistent(before)
        # Step 20 still reaches cdcs-pss (the outbox survives the kill).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            show = json.loads(self.dmctl("--json", "policy", "device", dev.dm_id).stdout)
            if any(c["state"] == "personalized" for c in show["cdcs"]):
                break
            time.sleep(0.5)
        else:
            self.fail("cdcs-pss never learnt the personalization: %s" % show)


if __name__ == "__main__":
    odmtest.main()
