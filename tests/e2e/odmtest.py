"""Shared helpers of the end-to-end tests: where the build is, TLS clients, a test runner.

Every test module starts the real daemons with devstack.Stack in a fresh temporary
directory and stops exactly those processes when it ends, whatever happened.
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("ODM_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ODM_BUILD") or os.path.join(SRC, "build")
sys.path.insert(0, os.path.join(SRC, "scripts"))

import devstack  # noqa: E402  (path set just above)

ROLES = devstack.ROLES


def tmpdir(prefix):
    base = os.environ.get("ODM_TEST_TMP")
    if base:
        os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def client_ctx(pki, name="operator", ca=None, max_version=None):
    """A client TLS context presenting PKI/name.crt (None: no certificate)."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(ca or os.path.join(pki, "ca.crt"))
    if name is not None:
        c.load_cert_chain(os.path.join(pki, name + ".crt"), os.path.join(pki, name + ".key"))
    if max_version is not None:
        c.maximum_version = max_version
    return c


def tls_connect(port, ctx, timeout=5.0):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except Exception:
        raw.close()
        raise


def request(port, ctx, method="GET", path="/v1/health", body=None, headers=None,
            timeout=5.0):
    """One HTTPS request; returns (status, parsed JSON or None, response headers)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return r.status, doc, dict(r.getheaders())
    finally:
        conn.close()


def read_response(sock, limit=1 << 20):
    """Read one HTTP/1.1 response with Content-Length from a raw socket: (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response: %r" % buf[:200])
        buf += chunk
        if len(buf) > limit:
            raise ValueError("response header too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest[:length]


def run_dmctl(args, timeout=30):
    return subprocess.run([os.path.join(BUILD, "dmctl")] + args, capture_output=True,
                          text=True, timeout=timeout)


class StackTest(unittest.TestCase):
    """A test class with its own running stack (cls.stack), stopped in tearDownClass."""

    limits = {}
    log_level = "info"
    roles = ROLES

    @classmethod
    def setUpClass(cls):
        cls.workdir = tmpdir("odm-e2e-")
        cls.stack = devstack.Stack(BUILD, cls.workdir, log_level=cls.log_level,
                                   limits=cls.limits)
        try:
            cls.stack.start_all(cls.roles)
        except Exception:
            # tearDownClass does not run when setUpClass fails: clean up here.
            try:
                cls.stack.stop_all()
            finally:
                if not os.environ.get("ODM_KEEP_TMP"):
                    shutil.rmtree(cls.workdir, ignore_errors=True)
            raise
        cls.pki = cls.stack.pki

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stack.stop_all(check=True)
        finally:
            if not os.environ.get("ODM_KEEP_TMP"):
                shutil.rmtree(cls.workdir, ignore_errors=True)

    def port(self, role):
        return self.stack.daemons[role].port


def main():
    """Run the calling module's tests; end with the 'N passed, N failed' line."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = max(0, result.testsRun - failed - skipped)
    print("e2e: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(0 if failed == 0 and result.testsRun > 0 else 1)


# -- Figure 4 helpers --------------------------------------------------------------------

import sqlite3  # noqa: E402
import threading  # noqa: E402

logfmt = devstack.logfmt
flow_steps = devstack.flow_steps


def db_query(path, sql, params=()):
    """Rows of a read-only query on a daemon's SQLite database (it keeps running)."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def db_tables(path):
    return [r[0] for r in db_query(
        path, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]


def db_snapshot(path):
    """Every row of every table: to prove a refused request recorded nothing."""
    return {t: sorted(db_query(path, 'SELECT * FROM "%s"' % t), key=repr)
            for t in db_tables(path)}


def db_find(path, value):
    """(table, row) of every row with a column equal to value, in any table."""
    found = []
    for t in db_tables(path):
        for row in db_query(path, 'SELECT * FROM "%s"' % t):
            if value in row:
                found.append((t, row))
    return found


class Forwarder:
    """A TCP pass-through on 127.0.0.1 to target_port (TLS goes through untouched), with
    hooks to inject faults. on_data(fwd, conn_no, direction, data) runs for each chunk
    before it is relayed ('c2s' client to server, 's2c' back) and returns how many bytes of
    it to relay, or None for all (fewer than all closes the connection after them), or bytes
    to relay in its place."""

    def __init__(self, target_port, on_data=None):
        self.target_port = target_port
        self.on_data = on_data
        self.lock = threading.Lock()
        self.conns = 0
        self.bytes = {"c2s": 0, "s2c": 0}
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.closing = False
        self.socks = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.conns += 1
                n = self.conns
                self.socks += [client, server]
            for src, dst, d in ((client, server, "c2s"), (server, client, "s2c")):
                threading.Thread(target=self._pump, args=(n, src, dst, d), daemon=True).start()

    def _pump(self, n, src, dst, direction):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                keep = self.on_data(self, n, direction, data) if self.on_data else None
                if isinstance(keep, (bytes, bytearray)):  # relay these bytes instead
                    dst.sendall(keep)
                    with self.lock:
                        self.bytes[direction] += len(keep)
                    continue
                if keep is not None and keep < len(data):
                    if keep > 0:
                        dst.sendall(data[:keep])
                    with self.lock:
                        self.bytes[direction] += keep
                    break
                dst.sendall(data)
                with self.lock:
                    self.bytes[direction] += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closing = True
        self.listener.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass
