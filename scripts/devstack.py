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
    with Stack(build, workdir) as s: s.start_all(); ...
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROLES = ["dm-mss", "dm-iss", "cdcs-pss", "cdcs-mss", "cdcs-iss", "sd-if-agent"]
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


class StackError(Exception):
    pass


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (the daemon binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, role, port, config, log):
        self.role = role
        self.port = port
        self.config = config
        self.log = log
        self.proc = None

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port


class Stack:
    def __init__(self, build, workdir, log_level="info", limits=None):
        self.build = os.path.abspath(build)
        self.dir = os.path.abspath(workdir)
        self.pki = os.path.join(self.dir, "pki")
        self.log_level = log_level
        self.limits = limits or {}
        self.daemons = {}
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        for sub in ("conf", "log", "db", "notify"):
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
        cfg.update(override)
        return cfg

    def write_config(self, role, cfg):
        path = os.path.join(self.dir, "conf", role + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return path

    def add(self, role, **override):
        port = free_port()
        cfg = self.config_for(role, port, **override)
        d = Daemon(role, port, self.write_config(role, cfg),
                   os.path.join(self.dir, "log", role + ".log"))
        self.daemons[role] = d
        return d

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
        self.write_dmctl_conf()
        for r in roles:
            self.start(r)
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
        """Stop every daemon; with check, any non-zero exit (a crash, or a leak reported by
        LeakSanitizer in a sanitizer build) is an error naming the daemon."""
        errors = []
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()
        return False


def down(workdir):
    """Stop the daemons a previous 'up' recorded, checking each pid is still ours."""
    path = os.path.join(workdir, "stack.json")
    if not os.path.exists(path):
        print("devstack: nothing recorded in %s" % path)
        return 0
    with open(path) as f:
        state = json.load(f)
    pids = []
    for role, s in state.items():
        pid = s.get("pid")
        if not pid:
            continue
        try:
            exe = os.readlink("/proc/%d/exe" % pid)
        except OSError:
            continue
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
    dn = sub.add_parser("down", help="stop what 'up' started")
    dn.add_argument("--dir", required=True)
    a = ap.parse_args()
    if a.cmd == "down":
        return down(a.dir)
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
