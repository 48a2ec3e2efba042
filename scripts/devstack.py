#!/usr/bin/env python3
"""devstack: the whole opendm head-end and a CPE on loopback, for demos and tests.

It makes a fresh development PKI (dmctl pki init), writes one config per daemon with a free
127.0.0.1 port and a database in the work directory, starts each daemon with its own
NOTIFY_SOCKET and waits for its READY=1 (the same sd_notify protocol systemd uses), and
stops exactly the processes it started.

As a command:
    devstack.py up   --build BUILD_DIR --dir WORK_DIR   start everything, leave it running
    devstack.py down --dir WORK_DIR                     stop what 'up' started there
As a module (the end-to-end tests):
    with Stack(build, workdir) as s: s.start_all(); dev = s.device("phone"); ...

The stack is ready for Figure 4: after the PKI it publishes the DM agent package
(dmctl agent-package, version 0.1.0 / 1 of BUILD/dm-agent in WORK/packages) and writes the
dm_mss and dm_iss config sections, whose URLs point at each other (every port is chosen
before any config is written). A Device is a reference secondary device: its device.json,
its state directory, and the dm-app / dm-agent processes it ran, stopped on teardown.
"""

import argparse
import copy
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

ROLES = ["dm-mss", "dm-iss", "cdcs-pss", "cdcs-mss", "cdcs-iss", "sd-if-agent"]
VENDORS = ["vendor-a", "vendor-b"]
# The two sample CDCSs (src/cdcs/): (vendor, name, kind, plug-in file in the build dir).
SAMPLE_CDCS = [("vendor-a", "sample-ca", "ca", "cdcs-sample-ca.so"),
               ("vendor-b", "sample-drm", "drm", "cdcs-sample-drm.so")]
# A second CA vendor's client (the sample CA built as vendor-b/sample-ca): what an operator
# switches to online (dmctl campaign). Published on demand, not by fig5_setup.
OTHER_CDCS = [("vendor-b", "sample-ca", "ca", "cdcs-sample-ca-b.so")]
# The development policy: the CA client for every basic subscriber, in its "hw" variant (with
# UHD keys) on a device with a hardware-secure video path and "sw" otherwise, and the DRM
# client as well for premium subscribers.
DEFAULT_RULES = [
    {"name": "ca-hw", "priority": 10, "entitlement": "basic",
     "when": {"secure_video_path": True}, "vendor": "vendor-a", "cdcs": "sample-ca",
     "variant": "hw", "min_version": 1, "grants": ["basic", "premium", "uhd"]},
    {"name": "ca-sw", "priority": 20, "entitlement": "basic", "when": {},
     "vendor": "vendor-a", "cdcs": "sample-ca", "variant": "sw", "min_version": 1,
     "grants": ["basic", "premium"]},
    {"name": "drm", "priority": 30, "entitlement": "premium", "when": {},
     "vendor": "vendor-b", "cdcs": "sample-drm", "variant": "sw", "min_version": 1,
     "grants": ["basic", "premium"]},
]
PLATFORM = "linux-x86_64"
AGENT_VERSION = ("0.1.0", 1)
UNUSED_URL = "https://127.0.0.1:1"  # in a role section whose peer is not part of the stack
CAPABILITY = {"platform": PLATFORM, "tee": "software", "secure_video_path": False,
              "hdcp": "none", "max_resolution": "fhd"}
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


class StackError(Exception):
    pass


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (the daemon binds it next).

    Chosen below the kernel's ephemeral range, so that no outgoing connection (a test
    client, an agent, curl) can be handed it between this check and the daemon's bind."""
    high = min(_ephemeral_low(), 65536) - 1
    low = max(1024, high - 12000)
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StackError("no free port in %d-%d" % (low, high))


class Daemon:
    def __init__(self, role, port, config, log):
        self.role = role
        self.port = port
        self.config = config
        self.log = log
        self.proc = None
        self.override = {}
        self.relay_port = None  # sd-if-agent: its CONNECT relay listener

    @property
    def relay_url(self):
        return "https://127.0.0.1:%d" % self.relay_port if self.relay_port else None

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port


_LOGFMT = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt(line):
    """The key=value pairs of one log line (quoted values unescaped)."""
    out = {}
    for k, v in _LOGFMT.findall(line):
        if v.startswith('"'):
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[k] = v
    return out


def flow_steps(paths, flow="fig4", subject=None, rid=None):
    """The flow=FLOW step lines of the given log files, as dicts with 'step' an int and
    'file' the source, sorted by ts then step; filtered by subject and rid when given."""
    steps = []
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            continue
        for line in lines:
            if "flow=" + flow not in line:
                continue
            kv = logfmt(line)
            if kv.get("flow") != flow or "step" not in kv:
                continue
            if subject is not None and kv.get("subject") != subject:
                continue
            if rid is not None and kv.get("rid") != rid:
                continue
            kv["step"] = int(kv["step"])
            kv["file"] = os.path.basename(path)
            kv["line"] = line.rstrip("\n")
            steps.append(kv)
    steps.sort(key=lambda kv: (kv.get("ts", ""), kv["step"]))
    return steps


def log_files(workdir):
    """Every log of a work dir: the daemons', and each device's dm-app and agent logs."""
    files = []
    for base, _, names in os.walk(workdir):
        files += [os.path.join(base, n) for n in sorted(names) if n.endswith(".log")]
    return files


def merge(base, extra):
    """base updated with extra, recursively for nested dicts (neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class Stack:
    def __init__(self, build, workdir, log_level="info", limits=None, overrides=None):
        """overrides: {role: {config keys}} merged into that role's config, e.g.
        {"dm-mss": {"dm_mss": {"dm_iss_url": "https://127.0.0.1:9999"}}}."""
        self.build = os.path.abspath(build)
        self.dir = os.path.abspath(workdir)
        self.pki = os.path.join(self.dir, "pki")
        self.packages = os.path.join(self.dir, "packages")
        self.catalogue = os.path.join(self.dir, "catalogue")
        self.log_level = log_level
        self.limits = limits or {}
        self.overrides = dict(overrides or {})
        self.daemons = {}
        self.devices = []
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        for sub in ("conf", "log", "db", "notify", "catalogue"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)

    # -- setup -------------------------------------------------------------------------
    def bin(self, name):
        return os.path.join(self.build, name)

    def init_pki(self):
        if os.path.exists(os.path.join(self.pki, "root-ca.key")):
            return
        r = subprocess.run([self.bin("dmctl"), "pki", "init", self.pki],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise StackError("dmctl pki init failed: " + r.stderr.strip())
        self.publish_agent(self.bin("dm-agent"), *AGENT_VERSION)

    def publish_agent(self, binary, version, number, key=None, out=None):
        """dmctl agent-package: the DM agent binary as a signed package dm-mss serves."""
        r = subprocess.run([self.bin("dmctl"), "agent-package", "--binary", binary,
                            "--platform", PLATFORM, "--version", version,
                            "--version-number", str(number),
                            "--key", key or os.path.join(self.pki, "dm-agent-signing.key"),
                            "--out", out or self.packages],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise StackError("dmctl agent-package failed: " + r.stderr.strip())
        return os.path.join(out or self.packages, PLATFORM, str(number))

    # -- operator actions (dmctl) -------------------------------------------------------
    def dmctl(self, *args, check=True, input=None, timeout=60):
        """Run dmctl -c WORK/dmctl.json ARGS; CompletedProcess, StackError if check and it
        fails."""
        r = subprocess.run([self.bin("dmctl"), "-c", os.path.join(self.dir, "dmctl.json")] +
                           [str(a) for a in args], capture_output=True, text=True,
                           input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise StackError("dmctl %s failed (%d): %s" % (" ".join(map(str, args)),
                                                           r.returncode, r.stderr.strip()))
        return r

    def publish_cdcs(self, vendor, name, kind, variant, version="1.0.0", number=1,
                     image=None, vendor_key=None, operator_key=None, approval=True,
                     register=True, check=True):
        """dmctl cdcs publish: a CDCS image into the catalogue, signed by its vendor and
        approved by the operator (other keys, or no approval, for negative tests)."""
        if image is None:
            image = self.bin(next(s[3] for s in SAMPLE_CDCS + OTHER_CDCS
                                  if s[0] == vendor and s[1] == name))
        args = ["cdcs", "publish", "--image", image, "--vendor", vendor, "--name", name,
                "--kind", kind, "--variant", variant, "--platform", PLATFORM,
                "--version", version, "--version-number", number,
                "--vendor-key", vendor_key or os.path.join(self.pki, vendor + "-signing.key"),
                "--operator-key", operator_key or os.path.join(self.pki,
                                                               "operator-signing.key"),
                "--catalogue", self.catalogue]
        if not approval:
            args.append("--no-approval")
        if not register:
            args.append("--no-register")
        return self.dmctl(*args, check=check)

    def operator(self, name, roles):
        """An operator certificate with these roles (dmctl pki operator) and a dmctl config
        using it: the config's path."""
        self.dmctl("pki", "operator", self.pki, "--name", name, "--role", ",".join(roles))
        conf = json.loads(open(os.path.join(self.dir, "dmctl.json")).read())
        conf["tls"]["cert"] = os.path.join(self.pki, "operator-%s.crt" % name)
        conf["tls"]["key"] = os.path.join(self.pki, "operator-%s.key" % name)
        path = os.path.join(self.dir, "dmctl-%s.json" % name)
        with open(path, "w") as f:
            json.dump(conf, f, indent=2)
        return path

    def cpe_ctl(self, *args, check=True):
        """sd-if-agent -c CONF ctl ARGS: the CPE's local admin command (what its TV menu does)."""
        d = self.daemons["sd-if-agent"]
        r = subprocess.run([self.bin("sd-if-agent"), "-c", d.config, "ctl"] + list(args),
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise StackError("sd-if-agent ctl %s failed (%d): %s" % (" ".join(args),
                                                                     r.returncode, r.stderr))
        return r

    def cpe_pin(self):
        """Put the CPE in pairing mode; its PIN."""
        return json.loads(self.cpe_ctl("pair", "--json").stdout)["pin"]

    def register_cpe(self, account, cn="cpe-0001"):
        """dmctl cpe add: the dev PKI's CPE belongs to this subscriber (dm-mss)."""
        return self.dmctl("cpe", "add", cn, account)

    def add_rule(self, rule):
        return self.dmctl("policy", "add", "-", input=json.dumps(rule))

    def set_entitlements(self, account, levels):
        return self.dmctl("entitlement", "set", account, ",".join(levels))

    def fig5_setup(self, rules=DEFAULT_RULES):
        """Publish the sample CDCSs (sample-ca as "sw" and "hw", sample-drm as "sw") and
        load the development policy, so that Figure 5 can run."""
        for vendor, name, kind, _ in SAMPLE_CDCS:
            variants = ("sw", "hw") if kind == "ca" else ("sw",)
            for variant in variants:
                self.publish_cdcs(vendor, name, kind, variant)
        for rule in rules:
            self.add_rule(rule)

    def encrypt_content(self, system, level, src, dst):
        """dmctl content encrypt: src protected for an entitlement level of a sample
        CA/DRM system ("vendor-a/sample-ca")."""
        return self.dmctl("content", "encrypt", "--keys",
                          os.path.join(self.pki, "entitlement-keys.json"), "--system", system,
                          "--level", level, "--in", src, "--out", dst)

    def url(self, role):
        d = self.daemons.get(role)
        return d.url if d else UNUSED_URL

    def role_section(self, role):
        """The role's own config section (Figure 4 roles), or {}."""
        p = lambda name: os.path.join(self.pki, name)  # noqa: E731
        if role == "dm-mss":
            return {"dm_mss": {
                "app_ca": p("app-ca.crt"),
                "enrolment_key": p("enrolment-signing.key"),
                "agent_pubkey": p("dm-agent-signing.pub"),
                "packages_dir": self.packages,
                "dm_iss_url": self.url("dm-iss"),
                "cpe_ca": p("cpe-ca.crt"),
            }}
        if role == "dm-iss":
            return {"dm_iss": {
                "app_ca": p("app-ca.crt"),
                "enrolment_pubkey": p("enrolment-signing.pub"),
                "device_ca_cert": p("device-ca.crt"),
                "device_ca_key": p("device-ca.key"),
                "trust_bundle": p("ca.crt"),
                "dm_mss_url": self.url("dm-mss"),
                "cdcs_pss_url": self.url("cdcs-pss"),
            }}
        if role == "cdcs-pss":
            return {"cdcs_pss": {
                "device_ca": p("device-ca.crt"),
                "dm_iss_url": self.url("dm-iss"),
                "cdcs_mss_url": self.url("cdcs-mss"),
            }}
        if role == "cdcs-mss":
            return {"cdcs_mss": {
                "device_ca": p("device-ca.crt"),
                "catalogue_dir": self.catalogue,
                "vendor_keys": self.vendor_keys(),
                "operator_pubkey": p("operator-signing.pub"),
                "ticket_key": p("download-ticket-signing.key"),
                "public_url": self.url("cdcs-mss"),
                "cdcs_iss_url": self.url("cdcs-iss"),
            }}
        if role == "cdcs-iss":
            return {"cdcs_iss": {
                "device_ca": p("device-ca.crt"),
                "ticket_key": p("perso-ticket-signing.key"),
                "entitlement_keys": p("entitlement-keys.json"),
                "cdcs_pss_url": self.url("cdcs-pss"),
                "public_url": self.url("cdcs-iss"),
            }}
        if role == "sd-if-agent":
            d = self.daemons.get(role)
            return {"sd_if_agent": {
                "app_ca": p("app-ca.crt"),
                "control_socket": os.path.join(self.dir, "sd-if-agent.sock"),
                "relay_public_url": d.relay_url if d else UNUSED_URL,
                "relay": {
                    "address": "127.0.0.1",
                    "port": d.relay_port if d else 1,
                    # The head-end daemons a paired device may reach through the CPE.
                    "allow": ["127.0.0.1:%d" % x.port for r, x in sorted(self.daemons.items())
                              if r != "sd-if-agent"] or ["127.0.0.1:1"],
                },
            }}
        return {}

    def vendor_keys(self):
        """The sample CDCS vendors' public keys, as cdcs-mss and devices are configured."""
        return {v: os.path.join(self.pki, v + "-signing.pub") for v in VENDORS}

    def config_for(self, role, port, **override):
        cert = role  # every daemon's certificate is named after it in the dev PKI
        cfg = {
            "listen": {"address": "127.0.0.1", "port": port},
            "database": os.path.join(self.dir, "db", role + ".db"),
            "tls": {
                "cert": os.path.join(self.pki, cert + ".crt"),
                "key": os.path.join(self.pki, cert + ".key"),
                "ca": os.path.join(self.pki, "ca.crt"),
            },
            "log_level": self.log_level,
        }
        if self.limits:
            cfg["limits"] = dict(self.limits)
        cfg.update(self.role_section(role))
        cfg = merge(cfg, self.overrides.get(role))
        cfg.update(override)
        return cfg

    def write_config(self, role, cfg):
        path = os.path.join(self.dir, "conf", role + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return path

    def add(self, role, **override):
        port = free_port()
        d = Daemon(role, port, os.path.join(self.dir, "conf", role + ".json"),
                   os.path.join(self.dir, "log", role + ".log"))
        if role == "sd-if-agent":
            d.relay_port = free_port()
        d.override = override
        self.daemons[role] = d
        self.write_config(role, self.config_for(role, port, **override))
        return d

    def write_configs(self):
        """(Re)write every config, now that every daemon's port is known."""
        for role, d in self.daemons.items():
            self.write_config(role, self.config_for(role, d.port, **d.override))

    def reconfigure(self, role, overrides):
        """Replace the role's overrides and rewrite its config (restart it to apply)."""
        self.overrides[role] = overrides
        d = self.daemons[role]
        self.write_config(role, self.config_for(role, d.port, **d.override))

    def write_dmctl_conf(self):
        conf = {
            "tls": {
                "cert": os.path.join(self.pki, "operator.crt"),
                "key": os.path.join(self.pki, "operator.key"),
                "ca": os.path.join(self.pki, "ca.crt"),
            },
            "endpoints": {r: d.url for r, d in self.daemons.items()},
        }
        path = os.path.join(self.dir, "dmctl.json")
        with open(path, "w") as f:
            json.dump(conf, f, indent=2)
        return path

    # -- processes ---------------------------------------------------------------------
    def start(self, role, extra_env=None):
        """Start one daemon and wait for READY=1; raise with its log tail if it fails."""
        d = self.daemons[role]
        sock_path = os.path.join(self.dir, "notify", role + ".sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(sock_path)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path)
        if extra_env:
            env.update(extra_env)
        log = open(d.log, "ab")
        try:
            d.proc = subprocess.Popen([self.bin(role), "-c", d.config], stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env)
        finally:
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while True:
                if d.proc.poll() is not None:
                    raise StackError("%s exited with %d before it was ready:\n%s" %
                                     (role, d.proc.returncode, self.log_tail(role)))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StackError("%s not ready after %.0fs:\n%s" %
                                     (role, READY_TIMEOUT, self.log_tail(role)))
                ns.settimeout(min(left, 0.2))
                try:
                    msg = ns.recv(4096).decode(errors="replace")
                except socket.timeout:
                    continue
                if "READY=1" in msg.split("\n"):
                    return d
        finally:
            ns.close()
            os.unlink(sock_path)

    def start_all(self, roles=ROLES):
        self.init_pki()
        for r in roles:
            if r not in self.daemons:
                self.add(r)
        # Another test run may bind a port between our check and the daemon's bind: then
        # start again on fresh ports (configs refer to each other, so all of them move).
        for attempt in range(3):
            self.write_configs()
            self.write_dmctl_conf()
            try:
                for r in roles:
                    self.start(r)
                break
            except StackError as e:
                if "Address already in use" not in str(e) or attempt == 2:
                    raise
                self.stop_all()
                for d in self.daemons.values():
                    d.port = free_port()
                    if d.relay_port:
                        d.relay_port = free_port()
        self.save_state()

    def stop(self, role, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal one daemon we started and reap it; returns its exit status."""
        d = self.daemons[role]
        if d.proc is None:
            return None
        if d.proc.poll() is None:
            d.proc.send_signal(sig)
            try:
                d.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
                raise StackError("%s did not stop within %.0fs of signal %d" %
                                 (role, timeout, sig))
        rc = d.proc.returncode
        d.proc = None
        return rc

    def stop_all(self, check=False):
        """Stop every device's agent, then every daemon; with check, any non-zero exit (a
        crash, or a leak reported by LeakSanitizer in a sanitizer build) is an error naming
        the daemon."""
        errors = []
        for dev in self.devices:
            try:
                dev.stop()
            except StackError as e:
                errors.append(str(e))
        for r in list(self.daemons):
            try:
                rc = self.stop(r)
                if check and rc not in (None, 0):
                    errors.append("%s exited with %d:\n%s" % (r, rc, self.log_tail(r, 40)))
            except StackError as e:
                errors.append(str(e))
        state = os.path.join(self.dir, "stack.json")
        if os.path.exists(state):
            os.unlink(state)
        if errors:
            raise StackError("; ".join(errors))

    def log_tail(self, role, n=20):
        try:
            with open(self.daemons[role].log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_text(self, role):
        with open(self.daemons[role].log, errors="replace") as f:
            return f.read()

    def save_state(self):
        state = {r: {"pid": d.proc.pid if d.proc else None, "port": d.port,
                     "exe": self.bin(r), "url": d.url}
                 for r, d in self.daemons.items()}
        with open(os.path.join(self.dir, "stack.json"), "w") as f:
            json.dump(state, f, indent=2)

    def device(self, name, **kw):
        """A new reference device WORK/devices/<name> (see Device)."""
        dev = Device(self, name, **kw)
        self.devices.append(dev)
        return dev

    @classmethod
    def attach(cls, workdir):
        """The stack an earlier 'up' left running in workdir (no process handles)."""
        with open(os.path.join(workdir, "stack.json")) as f:
            state = json.load(f)
        build = os.path.dirname(next(iter(state.values()))["exe"])
        s = cls(build, workdir)
        for role, st in state.items():
            s.daemons[role] = Daemon(role, st["port"], os.path.join(s.dir, "conf", role + ".json"),
                                     os.path.join(s.dir, "log", role + ".log"))
        return s

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()
        return False


class Device:
    """A reference secondary device: WORK/devices/<name>/device.json and state/, driven with
    BUILD/dm-app. dm-app's stderr (Figure 4 steps 1, 5, 6) is appended to dm-app.log; the
    agent logs to state/log/dm-agent.log."""

    APP_TIMEOUT = 120

    def __init__(self, stack, name, hw_id=None, dm_mss_url=None, tls=None,
                 agent_pubkey=None, bundle_pubkey=None, capability=None, **extra):
        self.stack = stack
        self.name = name
        self.dir = os.path.join(stack.dir, "devices", name)
        self.state_dir = os.path.join(self.dir, "state")
        self.config = os.path.join(self.dir, "device.json")
        self.app_log = os.path.join(self.dir, "dm-app.log")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        p = lambda n: os.path.join(stack.pki, n)  # noqa: E731
        self.cfg = {
            "hw_id": hw_id or "hw-" + name,
            "state_dir": self.state_dir,
            "capability": dict(capability or CAPABILITY),
            "tls": tls or {"cert": p("app.crt"), "key": p("app.key"), "ca": p("ca.crt")},
            "dm_mss_url": dm_mss_url or stack.url("dm-mss"),
            "agent_pubkey": agent_pubkey or p("dm-agent-signing.pub"),
            "bundle_pubkey": bundle_pubkey or p("enrolment-signing.pub"),
            "retry_max_s": 20,
            "operator_pubkey": p("operator-signing.pub"),
            "vendor_keys": stack.vendor_keys(),
        }
        if "sd-if-agent" in stack.daemons:
            self.cfg["cpe"] = {"pairing_url": stack.url("sd-if-agent"), "ca": p("cpe-ca.crt")}
        self.cfg.update(extra)
        self.write()

    @property
    def hw_id(self):
        return self.cfg["hw_id"]

    @property
    def agent_pid_file(self):
        return os.path.join(self.state_dir, "agent.pid")

    @property
    def agent_log(self):
        return os.path.join(self.state_dir, "log", "dm-agent.log")

    def write(self):
        with open(self.config, "w") as f:
            json.dump(self.cfg, f, indent=2)

    def app(self, *args, timeout=None):
        """Run dm-app -c device.json ARGS; returns CompletedProcess (stdout, stderr text).
        Output goes through files, not pipes: an agent dm-app starts may inherit them."""
        out_path = os.path.join(self.dir, "dm-app.out")
        with open(self.app_log, "ab") as err, open(out_path, "wb") as out:
            start = err.tell()
            try:
                proc = subprocess.run([self.stack.bin("dm-app"), "-c", self.config] +
                                      list(args), stdout=out, stderr=err,
                                      stdin=subprocess.DEVNULL,
                                      timeout=timeout or self.APP_TIMEOUT)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = None
        with open(self.app_log, "rb") as f:
            f.seek(start)
            stderr = f.read().decode(errors="replace")
        with open(out_path, "rb") as f:
            stdout = f.read().decode(errors="replace")
        if rc is None:
            raise StackError("dm-app %s timed out:\n%s" % (" ".join(args), stderr))
        return subprocess.CompletedProcess(args, rc, stdout, stderr)

    def identity(self):
        """identity.json of a personalized device (Figure 4 step 11), or None."""
        try:
            with open(os.path.join(self.state_dir, "identity", "identity.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    @property
    def dm_id(self):
        ident = self.identity()
        return ident["dm_id"] if ident else None

    def cdcs_sync(self, timeout=None):
        """dm-app cdcs sync --json: Figure 5 now; (CompletedProcess, parsed answer or
        None)."""
        r = self.app("cdcs", "sync", "--json", timeout=timeout)
        try:
            doc = json.loads(r.stdout) if r.stdout.strip() else None
        except ValueError:
            doc = None
        return r, doc

    def cdcs_status(self):
        r = self.app("cdcs", "status", "--json", timeout=30)
        if r.returncode != 0:
            raise StackError("dm-app cdcs status failed (%d): %s" % (r.returncode, r.stderr))
        return json.loads(r.stdout)

    def play(self, path, out=None):
        """dm-app play FILE [--out OUT]: CompletedProcess."""
        args = ["play", path] + (["--out", out] if out else [])
        return self.app(*args, timeout=60)

    def pair(self, pin=None):
        """dm-app pair --pin PIN (a fresh PIN from the CPE unless given): CompletedProcess."""
        return self.app("pair", "--pin", pin or self.stack.cpe_pin(), timeout=60)

    @property
    def paired(self):
        return os.path.exists(os.path.join(self.state_dir, "link", "pairing.json"))

    def install(self, code=None, offline=None, timeout=None, paired=False):
        if paired:
            return self.app("install", "--paired", timeout=timeout)
        if offline is not None:
            return self.app("install", "--offline", offline, timeout=timeout)
        return self.app("install", "--code", code, timeout=timeout)

    def status(self):
        r = self.app("status", "--json", timeout=30)
        if r.returncode != 0:
            raise StackError("dm-app status failed (%d): %s" % (r.returncode, r.stderr))
        return json.loads(r.stdout)

    def agent_pids(self):
        """Every live process running this device's installed agent (state/agent/dm-agent,
        even if a newer install has replaced the file since): only our dm-app starts those."""
        return _agent_pids(os.path.join(self.state_dir, "agent"))

    def agent_pid(self):
        """The pid recorded in agent.pid if that process is this device's agent, else None."""
        try:
            with open(self.agent_pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if pid in self.agent_pids() else None

    def stop(self):
        """dm-app stop, then make sure no agent of this device is left (SIGKILL, and an
        error naming it, if one is)."""
        if not self.agent_pids():
            return
        if os.path.exists(self.config):
            try:
                self.app("stop", timeout=30)
            except StackError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.agent_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.agent_pids()
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        if left:
            raise StackError("agent(s) of device %s still running after 'dm-app stop' "
                             "(pids %s); killed" % (self.name, left))


def down(workdir):
    """Stop the daemons a previous 'up' recorded, checking each pid is still ours."""
    path = os.path.join(workdir, "stack.json")
    if not os.path.exists(path):
        print("devstack: nothing recorded in %s" % path)
        return 0
    with open(path) as f:
        state = json.load(f)
    pids = []
    for role, pid in _device_agents(workdir):
        os.kill(pid, signal.SIGTERM)
        pids.append((role, pid))
    for role, s in state.items():
        pid = s.get("pid")
        if not pid:
            continue
        try:
            exe = os.readlink("/proc/%d/exe" % pid)
        except OSError:
            continue
        if exe.endswith(" (deleted)"):  # the binary was rebuilt since 'up': still ours
            exe = exe[:-len(" (deleted)")]
        if os.path.realpath(exe) != os.path.realpath(s["exe"]):
            continue  # the pid was reused by someone else: not ours to stop
        os.kill(pid, signal.SIGTERM)
        pids.append((role, pid))
    deadline = time.monotonic() + STOP_TIMEOUT
    status = 0
    for role, pid in pids:
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if os.path.exists("/proc/%d" % pid) and not _is_zombie(pid):
            print("devstack: %s (pid %d) ignored SIGTERM; killing it" % (role, pid))
            os.kill(pid, signal.SIGKILL)
            status = 1
    os.unlink(path)
    return status


def _agent_pids(agent_dir):
    """Live processes whose executable is in agent_dir (a device's state/agent)."""
    agent_dir = os.path.realpath(agent_dir)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % entry)
        except OSError:
            continue
        if exe.endswith(" (deleted)"):  # the binary was replaced by a newer install
            exe = exe[:-len(" (deleted)")]
        if os.path.dirname(exe) == agent_dir and not _is_zombie(int(entry)):
            pids.append(int(entry))
    return pids


def _device_agents(workdir):
    """(name, pid) of the DM agents that devices of this work dir are running."""
    found = []
    base = os.path.join(workdir, "devices")
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        for pid in _agent_pids(os.path.join(base, name, "state", "agent")):
            found.append(("dm-agent of " + name, pid))
    return found


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1].startswith("Z")
    except OSError:
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the head-end and a CPE")
    up.add_argument("--build", required=True, help="the CMake build directory")
    up.add_argument("--dir", required=True, help="work directory (PKI, configs, logs, dbs)")
    up.add_argument("--log-level", default="info")
    dn = sub.add_parser("down", help="stop what 'up' started (and the devices' agents)")
    dn.add_argument("--dir", required=True)
    dv = sub.add_parser("device", help="write a reference device's config; print its path")
    dv.add_argument("--dir", required=True)
    dv.add_argument("--name", required=True)
    dv.add_argument("--hw-id")
    st = sub.add_parser("steps", help="print the step lines of a flow from every log, in order")
    st.add_argument("--dir", required=True)
    st.add_argument("--flow", default="fig4")
    st.add_argument("--subject")
    f5 = sub.add_parser("fig5-setup", help="publish the sample CDCSs and the development policy")
    f5.add_argument("--dir", required=True)
    a = ap.parse_args()
    if a.cmd == "down":
        return down(a.dir)
    if a.cmd == "device":
        print(Stack.attach(a.dir).device(a.name, hw_id=a.hw_id).config)
        return 0
    if a.cmd == "fig5-setup":
        try:
            Stack.attach(a.dir).fig5_setup()
        except StackError as e:
            print("devstack: %s" % e, file=sys.stderr)
            return 1
        return 0
    if a.cmd == "steps":
        for kv in flow_steps(log_files(a.dir), a.flow, subject=a.subject):
            print("%-12s step %2d  %s  %s" % (kv["file"].replace(".log", ""), kv["step"],
                                              kv.get("subject", ""), kv.get("msg", "")))
        return 0
    s = Stack(a.build, a.dir, log_level=a.log_level)
    try:
        s.start_all()
    except StackError as e:
        print("devstack: %s" % e, file=sys.stderr)
        try:
            s.stop_all()
        except StackError:
            pass
        return 1
    for r, d in s.daemons.items():
        print("devstack: %-12s pid %-7d %s  log %s" % (r, d.proc.pid, d.url, d.log))
    print("devstack: dmctl config %s" % os.path.join(s.dir, "dmctl.json"))
    # The daemons outlive this script; 'down' stops them by the pids in stack.json.
    for d in s.daemons.values():
        d.proc = None
    return 0


if __name__ == "__main__":
    sys.exit(main())
