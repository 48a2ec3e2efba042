#!/usr/bin/env python3
"""Multi-CA/DRM operations end to end (issue 6): operator roles, dmctl, the audit log,
several CA/DRM clients at once, staged vendor-switch campaigns with make-before-break on the
device, automatic stop on failures, and revocation of CDCS versions and vendor keys.

Real daemons (all six) started by devstack, real devices personalized through Figures 4 and 5,
real dmctl with operator certificates of several roles.
"""

import json
import os
import ssl

import odmtest
from odmtest import db_query
from test_fig4 import OK, REFUSED, USAGE, UNREACHABLE, read
from test_fig5 import Fig5Base

devstack = odmtest.devstack

CA_A = "vendor-a/sample-ca"
CA_B = "vendor-b/sample-ca"
DRM = "vendor-b/sample-drm"
FORBIDDEN, NOT_FOUND = 4, 5
# The head-end: the CPE's sd-if-agent is no head-end daemon (its operators are the
# subscriber's household, through its local control socket), so operators of the service CA
# are not its operators.
HEADEND = ("dm-mss", "dm-iss", "cdcs-pss", "cdcs-mss", "cdcs-iss")


class OpsBase(Fig5Base):
    """Helpers for operator-side tests on top of the Figure 5 ones."""

    def ctl(self, *args, conf=None):
        """dmctl with the admin operator (or conf), not checked: CompletedProcess."""
        return self.dmctl(*args, conf=conf, check=False)

    def ctl_json(self, *args, conf=None):
        r = self.dmctl("--json", *args, conf=conf)
        return json.loads(r.stdout)

    def audit(self, role, **query):
        args = ["audit", "--role", role, "--limit", "1000"]
        for k, v in query.items():
            args += ["--" + k, v]
        doc = self.ctl_json(*args)
        if isinstance(doc, dict) and "entries" in doc:
            return doc["entries"]
        # dmctl audit over one role may print the daemon's answer or a merged list.
        return doc

    def audit_counts(self):
        """Rows in each head-end daemon's audit table (read from the databases)."""
        return {r: db_query(self.db(r), "SELECT count(*) FROM audit")[0][0]
                for r in HEADEND if os.path.exists(self.db(r))}

    def ca_device(self, levels=("basic",)):
        """A device through Figures 4 and 5 with the sample CA of vendor A personalized."""
        dev = self.personalized(list(levels))
        self.sync(dev)
        self.assertIn(CA_A, self.status(dev))
        return dev

    def campaign(self, name):
        return self.ctl_json("campaign", "show", name)

    def assert_state(self, dev, system, present):
        st = self.status(dev)
        if present:
            self.assertIn(system, st, "%s has no %s: %s" % (dev.name, system, sorted(st)))
            self.assertTrue(st[system]["personalized"], st[system])
        else:
            self.assertNotIn(system, st, "%s still has %s" % (dev.name, system))
            self.assert_not_installed(dev, system)


class TestOperators(OpsBase):
    """Roles in operator certificates, dmctl refusals and exit codes, the audit log."""

    def test_roles_decide_what_an_operator_may_do(self):
        viewer = self.stack.operator(self.uniq("viewer"), ["viewer"])
        policy = self.stack.operator(self.uniq("pol"), ["policy"])
        subs = self.stack.operator(self.uniq("subs"), ["subscribers", "viewer"])
        acct = self.uniq("acct")
        before = self.audit_counts()

        # A viewer reads everything and changes nothing.
        self.assertEqual(self.ctl("subscriber", "list", conf=viewer).returncode, OK)
        self.assertEqual(self.ctl("policy", "list", conf=viewer).returncode, OK)
        r = self.ctl("subscriber", "add", acct, conf=viewer)
        self.assertEqual(r.returncode, FORBIDDEN, r.stderr)
        self.assertIn("missing_role", r.stderr)
        self.assertIn("subscribers", r.stderr)
        r = self.ctl("subscriber", "show", acct)
        self.assertEqual(r.returncode, NOT_FOUND, r.stderr)
        self.assertIn("unknown_subscriber", r.stderr)

        # The policy role may not touch subscribers, the subscribers role not the policy.
        r = self.ctl("subscriber", "add", acct, conf=policy)
        self.assertEqual(r.returncode, FORBIDDEN, r.stderr)
        rule = dict(devstack.DEFAULT_RULES[1], name=self.uniq("rule"), priority=900)
        r = odmtest.subprocess.run(
            [os.path.join(odmtest.BUILD, "dmctl"), "-c", subs, "policy", "add", "-"],
            input=json.dumps(rule), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, FORBIDDEN, r.stderr)
        self.assertIn("missing_role", r.stderr)
        self.assertIn("policy", r.stderr)
        self.assertEqual(self.audit_counts(), before, "a refused action left an audit row")
        rules = [x["name"] for x in self.ctl_json("policy", "list")["rules"]]
        self.assertNotIn(rule["name"], rules)

        # Each role does its own job, and the audit log says who did it.
        self.assertEqual(self.ctl("subscriber", "add", acct, conf=subs).returncode, OK)
        r = odmtest.subprocess.run(
            [os.path.join(odmtest.BUILD, "dmctl"), "-c", policy, "policy", "add", "-"],
            input=json.dumps(rule), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, OK, r.stderr)
        rows = [e for e in self.audit("dm-mss", subject=acct) if e["action"] == "subscriber.add"]
        self.assertEqual(len(rows), 1, rows)
        self.assertTrue(rows[0]["actor"].startswith("operator:subs-"), rows[0])
        self.assertRegex(rows[0]["rid"], r"^[A-Za-z0-9._-]{1,64}$")
        rows = [e for e in self.audit("cdcs-pss", subject=rule["name"])
                if e["action"] == "rule.add"]
        self.assertEqual(len(rows), 1, rows)
        self.assertTrue(rows[0]["actor"].startswith("operator:pol-"), rows[0])
        self.assertEqual(self.ctl("policy", "rm", rule["name"]).returncode, OK)

    def test_log_level_needs_admin_and_third_parties_are_not_operators(self):
        name = self.uniq("pol")
        self.stack.operator(name, ["policy"])
        ctx = odmtest.client_ctx(self.pki, "operator-" + name)
        st, doc, _ = odmtest.request(self.port("cdcs-pss"), ctx, "POST", "/v1/admin/log-level",
                                     body={"level": "debug"})
        self.assertEqual(st, 403)
        self.assertEqual(doc["error"]["code"], "missing_role")
        # OU "offline" (a commissioned third party) is no operator role.
        ctx = odmtest.client_ctx(self.pki, "thirdparty")
        st, doc, _ = odmtest.request(self.port("cdcs-pss"), ctx, "GET", "/v1/admin/policy/rules")
        self.assertEqual(st, 403)
        self.assertEqual(doc["error"]["code"], "forbidden")
        r = self.ctl("policy", "list", conf=self.thirdparty_conf)
        self.assertEqual(r.returncode, FORBIDDEN, r.stderr)
        try:
            st, doc, _ = odmtest.request(self.port("sd-if-agent"),
                                         odmtest.client_ctx(self.pki), "GET", "/v1/admin/audit")
        except (ssl.SSLError, OSError):
            st = 403  # refused at the handshake: as good
        self.assertEqual(st, 403)
        # Every head-end daemon serves its audit log to operators only.
        for role in HEADEND:
            st, doc, _ = odmtest.request(self.port(role), ctx, "GET", "/v1/admin/audit")
            self.assertEqual(st, 403, role)
            st, doc, _ = odmtest.request(self.port(role), odmtest.client_ctx(self.pki),
                                         "GET", "/v1/admin/audit?limit=5")
            self.assertEqual(st, 200, role)
            self.assertEqual(doc["role"], role)
            for bad in ("limit=0", "limit=5&limit=6", "subject=a%00b", "after=-1",
                        "action=" + "x" * 200):
                st, doc, _ = odmtest.request(self.port(role), odmtest.client_ctx(self.pki),
                                             "GET", "/v1/admin/audit?" + bad)
                self.assertEqual(st, 400, "%s: %s" % (role, bad))
                self.assertEqual(doc["error"]["code"], "bad_request")

    def test_rule_with_unknown_cdcs_is_refused(self):
        before = self.audit_counts()
        rules = self.ctl_json("policy", "list")["rules"]
        rule = dict(devstack.DEFAULT_RULES[1], name=self.uniq("rule"), vendor="vendor-x",
                    cdcs="no-such-cdcs")
        r = odmtest.subprocess.run(
            [os.path.join(odmtest.BUILD, "dmctl"), "-c", self.dmctl_conf, "policy", "add", "-"],
            input=json.dumps(rule), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("unknown_cdcs", r.stderr)
        self.assertIn("vendor-x/no-such-cdcs", r.stderr)
        self.assertEqual(self.ctl_json("policy", "list")["rules"], rules)
        self.assertEqual(self.audit_counts(), before)
        # A campaign towards an unknown CDCS is refused the same way.
        r = self.ctl("campaign", "create", self.uniq("camp"), "--from", CA_A, "--to",
                     "vendor-x/no-such-cdcs", "--variant", "sw", "--stages", "50,100")
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("unknown_cdcs", r.stderr)
        self.assertEqual(self.audit_counts(), before)

    def test_malformed_input_is_refused_before_anything_is_sent(self):
        before = self.audit_counts()
        bad = [
            ("policy", "add", "/nonexistent/rule.json"),
            ("subscriber", "add", "bad/account"),
            ("subscriber", "add", "acct", "--device-limit", "many"),
            ("campaign", "create", "c1", "--from", CA_A, "--to", CA_B, "--variant", "sw",
             "--stages", "50,40"),
            ("campaign", "create", "c1", "--from", "no-slash", "--to", CA_B, "--variant", "sw",
             "--stages", "50,100"),
            ("campaign", "create", "c1", "--from", CA_A, "--to", CA_B, "--variant", "sw",
             "--stages", "50,100", "--failure-threshold", "101"),
            ("campaign", "create", "c1", "--from", CA_A, "--to", CA_B, "--variant", "sw",
             "--stages", "50,100", "--when", "{not json"),
            ("cdcs", "revoke", "vendor-a/sample-ca", "zero", "--operator-key",
             os.path.join(self.pki, "operator-signing.key")),
            ("device", "show", "bad id!"),
            ("explain", "../etc"),
            ("audit", "--limit", "0"),
            ("frobnicate",),
        ]
        for args in bad:
            r = self.ctl(*args)
            self.assertEqual(r.returncode, USAGE, "%s: %s" % (args, r.stderr))
            self.assertTrue(r.stderr.startswith("dmctl"), r.stderr)
        with open(os.path.join(self.workdir, "bad-rule.json"), "w") as f:
            f.write("{not json")
        r = self.ctl("policy", "add", os.path.join(self.workdir, "bad-rule.json"))
        self.assertEqual(r.returncode, USAGE, r.stderr)
        self.assertEqual(self.audit_counts(), before)

    def test_every_command_has_help_and_exit_codes_mean_something(self):
        for cmd in (["subscriber"], ["code"], ["cpe"], ["device"], ["device", "show"],
                    ["offline-bundle"], ["entitlement"], ["policy"], ["policy", "explain"],
                    ["explain"], ["cdcs"], ["cdcs", "revoke"], ["cdcs", "revoke-key"],
                    ["campaign"], ["campaign", "create"], ["audit"], ["health"], ["pki"],
                    ["content"], ["agent-package"]):
            r = self.ctl(*(cmd + ["--help"]))
            self.assertEqual(r.returncode, OK, "%s --help: %s" % (cmd, r.stderr))
            self.assertIn("usage", r.stdout.lower(), cmd)
        r = self.ctl("--help")
        for code in ("0", "1", "2", "3", "4", "5"):
            self.assertIn(code, r.stdout)
        r = self.ctl("device", "show", "hw-never-seen")
        self.assertEqual(r.returncode, NOT_FOUND, r.stderr)
        r = self.ctl("campaign", "show", "never-made")
        self.assertEqual(r.returncode, NOT_FOUND, r.stderr)
        conf = json.loads(read(self.dmctl_conf))
        conf["endpoints"] = {k: devstack.UNUSED_URL for k in conf["endpoints"]}
        path = os.path.join(self.workdir, "dmctl-unreachable.json")
        with open(path, "w") as f:
            json.dump(conf, f)
        r = self.ctl("subscriber", "list", conf=path)
        self.assertEqual(r.returncode, UNREACHABLE, r.stderr)

    def test_tables_by_default_json_on_request(self):
        acct = self.account()
        r = self.ctl("subscriber", "list")
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertIn("ACCOUNT", r.stdout.splitlines()[0])
        self.assertIn(acct, r.stdout)
        doc = json.loads(self.ctl("subscriber", "list", "--json").stdout)
        self.assertIn(acct, [s["account"] for s in doc["subscribers"]])

    def test_device_show_has_its_whole_history(self):
        dev = self.ca_device()
        r = self.ctl("device", "show", dev.hw_id)
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertIn(dev.dm_id, r.stdout)
        for action in ("device.register", "dm.issue", "cdcs.personalize", "cdcs.state"):
            self.assertIn(action, r.stdout, "history lacks %s:\n%s" % (action, r.stdout))
        # The same history by DM id.
        r2 = self.ctl("device", "history", dev.dm_id)
        self.assertEqual(r2.returncode, OK, r2.stderr)
        self.assertIn("cdcs.state", r2.stdout)
        self.assertIn("device.register", r2.stdout)
        # Listing by subscriber.
        doc = self.ctl_json("device", "list", "--account", dev.account)
        self.assertEqual([d["hw_id"] for d in doc["devices"]], [dev.hw_id])


class TestMultiCdcs(OpsBase):
    """Several CA/DRM clients active at once, and explain agreeing with the device."""

    def test_ca_and_drm_both_active_play_both(self):
        dev = self.personalized(["basic", "premium"])
        self.sync(dev)
        self.assert_state(dev, CA_A, True)
        self.assert_state(dev, DRM, True)
        self.assert_plays(dev, CA_A, "premium")
        self.assert_plays(dev, DRM, "premium")
        self.assert_plays(dev, CA_A, "basic")
        self.assert_plays(dev, DRM, "basic")

    def assert_explain_agrees(self, dev):
        doc = self.ctl_json("explain", dev.dm_id)
        got = {"%s/%s" % (c["vendor"], c["name"]): (c["variant"], sorted(c["rights"]))
               for c in doc["choices"]}
        have = {k: (v["variant"], sorted(v["rights"])) for k, v in self.status(dev).items()}
        self.assertEqual(got, have, "explain disagrees with the device")
        return doc

    def test_explain_agrees_with_the_device(self):
        sw = self.personalized(["basic", "premium"])
        self.sync(sw)
        doc = self.assert_explain_agrees(sw)
        why = {x["name"]: x for x in doc["rules"]}
        self.assertFalse(why["ca-hw"]["matched"])
        self.assertIn("secure_video_path", why["ca-hw"]["why"])
        self.assertTrue(why["ca-sw"]["chosen"])
        self.assertTrue(why["drm"]["chosen"])
        hw = self.personalized(["basic"], capability={"secure_video_path": True})
        self.sync(hw)
        doc = self.assert_explain_agrees(hw)
        why = {x["name"]: x for x in doc["rules"]}
        self.assertTrue(why["ca-hw"]["chosen"])
        self.assertFalse(why["drm"]["matched"])
        self.assertIn("premium", why["drm"]["why"])
        r = self.ctl("explain", hw.dm_id)
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertIn("agree", r.stdout)
        r = self.ctl("explain", "dm-never-seen")
        self.assertEqual(r.returncode, NOT_FOUND, r.stderr)


class CampaignBase(OpsBase):
    """A stack where vendor B's CA client is published next to vendor A's."""

    image_b = None  # the plug-in published as vendor-b/sample-ca (None: the real one)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            for variant in ("sw", "hw"):
                cls.stack.publish_cdcs("vendor-b", "sample-ca", "ca", variant,
                                       image=cls.image_b)
        except Exception:
            cls.tearDownClass()
            raise

    def fleet(self, n):
        devs = [self.ca_device() for _ in range(n)]
        self.contents = {s: self.content(s, "basic") for s in (CA_A, CA_B)}
        return devs

    def plays_current(self, dev):
        """The device plays the live content through the CA it has now (simulcrypt: the
        content is protected for both CA systems)."""
        st = self.status(dev)
        cas = [s for s in (CA_A, CA_B) if s in st]
        self.assertEqual(len(cas), 1, "%s has %s" % (dev.name, sorted(st)))
        plain, enc = self.contents[cas[0]]
        out = enc + "." + dev.name + ".played"
        r = dev.play(enc, out=out)
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(read(plain, "rb"), read(out, "rb"))
        return cas[0]

    def create(self, name, devs, stages="50,100", threshold=20):
        args = ["campaign", "create", name, "--from", CA_A, "--to", CA_B, "--variant", "sw",
                "--stages", stages, "--failure-threshold", str(threshold)]
        for acct in sorted({d.account for d in devs}):
            args += ["--account", acct]
        r = self.ctl(*args)
        self.assertEqual(r.returncode, OK, r.stderr)
        doc = self.campaign(name)
        self.assertEqual(sorted(d["dm_id"] for d in doc["devices"]),
                         sorted(d.dm_id for d in devs))
        return doc

    def by_status(self, doc):
        out = {}
        for d in doc["devices"]:
            out.setdefault(d["status"], set()).add(d["dm_id"])
        return out


class TestCampaign(CampaignBase):

    def test_two_stage_switch_make_before_break(self):
        devs = self.fleet(10)
        by_dm = {d.dm_id: d for d in devs}
        name = self.uniq("to-b")
        doc = self.create(name, devs)
        self.assertEqual(doc["status"], "running")
        self.assertEqual(doc["stage"], 1)
        first = self.by_status(doc)["admitted"]
        self.assertEqual(len(first), 5)
        self.assertEqual(len(self.by_status(doc)["pending"]), 5)
        # A device takes part in one campaign at a time.
        args = ["campaign", "create", self.uniq("again"), "--from", CA_A, "--to", CA_B,
                "--variant", "sw", "--stages", "100"]
        for acct in sorted({d.account for d in devs}):
            args += ["--account", acct]
        r = self.ctl(*args)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("no_devices", r.stderr)
        # Admission follows the documented order: sha256(name/dm_id).
        import hashlib
        order = sorted(by_dm, key=lambda i: hashlib.sha256(
            ("%s/%s" % (name, i)).encode()).hexdigest())
        self.assertEqual(set(order[:5]), first)

        # Before any device has checked in, every device still plays through vendor A.
        for dev in devs:
            self.assertEqual(self.plays_current(dev), CA_A)
        # Explain says what the next check will give.
        doc_x = self.ctl_json("explain", order[0])
        self.assertEqual({"%s/%s" % (c["vendor"], c["name"]) for c in doc_x["choices"]}, {CA_B})
        self.assertEqual(doc_x["choices"][0]["campaign"], name)
        doc_x = self.ctl_json("explain", order[9])
        self.assertEqual({"%s/%s" % (c["vendor"], c["name"]) for c in doc_x["choices"]}, {CA_A})

        for dev in devs:
            self.sync(dev)
        for dm_id, dev in by_dm.items():
            switched = dm_id in first
            self.assert_state(dev, CA_B, switched)
            self.assert_state(dev, CA_A, not switched)
            self.assertEqual(self.plays_current(dev), CA_B if switched else CA_A)
        doc = self.campaign(name)
        self.assertEqual(self.by_status(doc).get("switched"), first)
        self.assertEqual(doc["counts"]["switched"], 5)
        self.assertEqual(doc["failure_rate"], 0)

        # Pause: no more stages until resumed.
        self.assertEqual(self.ctl("campaign", "pause", name).returncode, OK)
        r = self.ctl("campaign", "advance", name)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("campaign_not_running", r.stderr)
        self.assertEqual(self.campaign(name)["counts"]["admitted"], 0)
        self.assertEqual(self.ctl("campaign", "resume", name).returncode, OK)
        self.assertEqual(self.ctl("campaign", "advance", name).returncode, OK)
        doc = self.campaign(name)
        self.assertEqual(doc["stage"], 2)
        self.assertEqual(self.by_status(doc)["admitted"], set(order[5:]))
        r = self.ctl("campaign", "advance", name)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("last_stage", r.stderr)

        for dev in devs:
            self.sync(dev)
        for dev in devs:
            self.assert_state(dev, CA_B, True)
            self.assert_state(dev, CA_A, False)
            self.assertEqual(self.plays_current(dev), CA_B)
        doc = self.campaign(name)
        self.assertEqual(doc["counts"]["switched"], 10)
        self.assertTrue(doc["complete"])
        # Explain agrees with every device.
        for dev in devs:
            doc_x = self.ctl_json("explain", dev.dm_id)
            got = {"%s/%s" % (c["vendor"], c["name"]): c["variant"] for c in doc_x["choices"]}
            have = {k: v["variant"] for k, v in self.status(dev).items()}
            self.assertEqual(got, have)
        # The audit log has the operator's steps and the devices' switches.
        actions = [e["action"] for e in self.audit("cdcs-pss", subject=name)]
        self.assertEqual(actions[:1], ["campaign.create"])
        for a in ("campaign.pause", "campaign.resume", "campaign.advance"):
            self.assertIn(a, actions)
        rows = self.audit("cdcs-pss", subject=order[0])
        self.assertIn("campaign.device", [e["action"] for e in rows])

        # The move made permanent: the rules now choose vendor B, the campaign is archived and
        # its devices are back under the rules alone, with nothing to change on them.
        rule = dict(devstack.DEFAULT_RULES[1], name="ca-sw-b", vendor="vendor-b")
        self.stack.add_rule(rule)
        self.assertEqual(self.ctl("policy", "rm", "ca-sw").returncode, OK)
        r = self.ctl("campaign", "archive", name)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("campaign_not_stopped", r.stderr)
        self.assertEqual(self.ctl("campaign", "stop", name).returncode, OK)
        self.assertEqual(self.ctl("campaign", "archive", name).returncode, OK)
        self.assertEqual(self.campaign(name)["status"], "archived")
        for dev in devs[:3]:
            r, doc = self.sync(dev)
            self.assertEqual((doc["installed"], doc["removed"]), ([], []), doc)
            self.assert_state(dev, CA_B, True)
            doc_x = self.ctl_json("explain", dev.dm_id)
            self.assertEqual([c["rule"] for c in doc_x["choices"]], ["ca-sw-b"])
            self.assertFalse([c for c in doc_x["campaigns"] if c["applies"]], doc_x)
        # Archived, its devices may take part in another campaign (e.g. back to vendor A).
        back = self.uniq("back-to-a")
        args = ["campaign", "create", back, "--from", CA_B, "--to", CA_A, "--variant", "sw",
                "--stages", "10,100"]
        for acct in sorted({d.account for d in devs}):
            args += ["--account", acct]
        self.assertEqual(self.ctl(*args).returncode, OK)
        self.assertEqual(len(self.campaign(back)["devices"]), 10)


class TestCampaignFailures(CampaignBase):
    """Vendor B's client fails personalization on some devices: they keep vendor A's, report
    it, and the campaign stops itself at the threshold."""

    image_b = os.path.join(odmtest.BUILD, "tests", "cdcs-flaky-ca.so")

    @classmethod
    def setUpClass(cls):
        cls.fail_file = os.path.join(odmtest.tmpdir("odm-flaky-"), "fail-ids")
        open(cls.fail_file, "w").close()
        # Agents inherit it from dm-app, and their CDCS children from them.
        os.environ["ODM_TEST_CDCS_FAIL_FILE"] = cls.fail_file
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        os.environ.pop("ODM_TEST_CDCS_FAIL_FILE", None)
        super().tearDownClass()

    def test_failures_keep_the_old_client_and_stop_the_campaign(self):
        devs = self.fleet(10)
        by_dm = {d.dm_id: d for d in devs}
        name = self.uniq("to-b-flaky")
        doc = self.create(name, devs, threshold=20)
        first = [d["dm_id"] for d in doc["devices"] if d["status"] == "admitted"]
        self.assertEqual(len(first), 5)
        with open(self.fail_file, "w") as f:
            f.write("%s\n%s\n" % (first[0], first[1]))

        # One failure in five (20%) is not over the threshold: the campaign goes on.
        r, res = self.sync(by_dm[first[0]], ok=False)
        self.assertIn(CA_B, self.failed_codes(res), res)
        self.assert_state(by_dm[first[0]], CA_A, True)
        self.assert_state(by_dm[first[0]], CA_B, False)
        self.assertEqual(self.plays_current(by_dm[first[0]]), CA_A)
        doc = self.campaign(name)
        self.assertEqual(doc["status"], "running")
        self.assertEqual(self.by_status(doc).get("failed"), {first[0]})
        failed = [d for d in doc["devices"] if d["dm_id"] == first[0]][0]
        self.assertTrue(failed["error"], failed)

        # The second (40%) is: the campaign stops itself.
        self.sync(by_dm[first[1]], ok=False)
        doc = self.campaign(name)
        self.assertEqual(doc["status"], "stopped")
        self.assertIn("threshold", doc["stop_reason"])
        self.assertEqual(self.by_status(doc)["failed"], {first[0], first[1]})
        self.assertEqual(self.by_status(doc)["cancelled"], set(first[2:]))
        r = self.ctl("campaign", "advance", name)
        self.assertEqual(r.returncode, REFUSED, r.stderr)
        self.assertIn("campaign_not_running", r.stderr)
        rows = [e for e in self.audit("cdcs-pss", subject=name) if e["action"] == "campaign.stop"]
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["actor"], "service:cdcs-pss")

        # Nobody else moves; every device keeps vendor A and plays.
        for dev in devs:
            self.sync(dev)
        for dev in devs:
            self.assert_state(dev, CA_A, True)
            self.assert_state(dev, CA_B, False)
            self.assertEqual(self.plays_current(dev), CA_A)
        # The device's report of the failure is on record at cdcs-pss.
        info = self.ctl_json("policy", "device", first[0])
        states = {"%s/%s" % (c["vendor"], c["name"]): c for c in info["cdcs"]}
        self.assertEqual(states[CA_B]["state"], "failed")
        self.assertTrue(states[CA_B]["error"])
        self.assertEqual(states[CA_A]["state"], "personalized")


class TestRevocation(OpsBase):
    """A revoked CDCS version or vendor key is replaced or removed at the next check."""

    def revoke(self, *args, key="operator-signing.key"):
        return self.ctl("cdcs", *args, "--operator-key", os.path.join(self.pki, key))

    def test_revoked_version_is_replaced_at_next_check(self):
        dev = self.ca_device()
        self.assertEqual(self.status(dev)[CA_A]["version_number"], 1)
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", "sw", version="2.0.0", number=2)
        self.sync(dev)
        self.assertEqual(self.status(dev)[CA_A]["version_number"], 2)

        # v2 revoked with nothing newer: removed (never rolled back to v1), and not played.
        r = self.revoke("revoke", CA_A, "2")
        self.assertEqual(r.returncode, OK, r.stderr)
        r, doc = self.sync(dev, ok=False)
        removed = {"%s/%s" % (x["vendor"], x["name"]) for x in doc.get("removed", [])}
        self.assertIn(CA_A, removed, doc)
        self.assert_state(dev, CA_A, False)
        self.assert_no_play(dev, CA_A, "basic", "no_cdcs")
        self.assertTrue(os.path.exists(os.path.join(dev.state_dir, "cdcs", "revocations.jws")))
        images = self.ctl_json("cdcs", "list")["images"]
        v2 = [i for i in images if i["vendor"] == "vendor-a" and i["version_number"] == 2]
        self.assertTrue(v2 and all(i["revoked"] for i in v2), v2)
        # Revoking it again changes nothing.
        r = self.revoke("revoke", CA_A, "2")
        self.assertEqual(r.returncode, OK, r.stderr)

        # The fixed v3 replaces it at the next check; a new device gets v3 straight away.
        self.stack.publish_cdcs("vendor-a", "sample-ca", "ca", "sw", version="3.0.0", number=3)
        self.sync(dev)
        self.assertEqual(self.status(dev)[CA_A]["version_number"], 3)
        self.assert_plays(dev, CA_A, "basic")
        other = self.ca_device()
        self.assertEqual(self.status(other)[CA_A]["version_number"], 3)
        rows = self.audit("cdcs-mss", action="revocations.update")
        self.assertTrue(rows and rows[-1]["actor"] == "operator:operator", rows)

    def test_revoked_vendor_key_removes_its_clients(self):
        dev = self.personalized(["basic", "premium"])
        self.sync(dev)
        self.assert_state(dev, DRM, True)
        r = self.revoke("revoke-key", "vendor-b", "--key",
                        os.path.join(self.pki, "vendor-b-signing.pub"))
        self.assertEqual(r.returncode, OK, r.stderr)
        r, doc = self.sync(dev, ok=False)
        self.assert_state(dev, DRM, False)
        self.assert_state(dev, CA_A, True)
        self.assert_no_play(dev, DRM, "basic", "no_cdcs")
        self.assert_plays(dev, CA_A, "premium")
        # Nothing signed with that key is accepted into the catalogue any more.
        r = self.stack.publish_cdcs("vendor-b", "sample-drm", "drm", "sw", version="9.0.0",
                                    number=9, check=False)
        self.assertNotEqual(r.returncode, OK)
        self.assertIn("revoked", r.stderr)

    def test_a_revocation_list_not_signed_by_the_operator_is_refused(self):
        before = self.ctl_json("cdcs", "revocations")
        r = self.revoke("revoke", CA_A, "7", key="vendor-a-signing.key")
        self.assertNotEqual(r.returncode, OK)
        self.assertEqual(self.ctl_json("cdcs", "revocations")["serial"], before["serial"])


if __name__ == "__main__":
    odmtest.main()
