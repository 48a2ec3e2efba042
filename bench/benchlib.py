"""What the download benchmarks share: nginx serving one file over TLS 1.3 with mutual
authentication, configured the same way for every comparison (bench-cdcs.py, bench-relay.py)."""

import os
import subprocess

NGINX_CONF = """{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
	access_log off;
	sendfile off;
	client_header_timeout 300s;
	client_body_temp_path {tmp}/body;
	proxy_temp_path {tmp}/proxy;
	fastcgi_temp_path {tmp}/fastcgi;
	uwsgi_temp_path {tmp}/uwsgi;
	scgi_temp_path {tmp}/scgi;
	server {{
		listen 127.0.0.1:{port} ssl;
		ssl_protocols TLSv1.3;
		ssl_ecdh_curve X25519:prime256v1;
		ssl_certificate {pki}/{cert}.crt;
		ssl_certificate_key {pki}/{cert}.key;
		ssl_client_certificate {pki}/ca.crt;
		ssl_verify_client on;
		ssl_verify_depth 3;
		ssl_session_tickets off;
		ssl_session_cache off;
		location = /file {{ alias {path}; default_type application/octet-stream; }}
	}}
}}
"""


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def start_nginx(nginx, workdir, port, pki, cert, path, cpu=None):
    """nginx (one worker, optionally pinned to cpu) serving path as /file on 127.0.0.1:port
    with pki/cert.{crt,key}, client certificates required. Returns the Popen."""
    ndir = os.path.join(workdir, "nginx")
    os.makedirs(ndir, exist_ok=True)
    conf = os.path.join(ndir, "nginx.conf")
    with open(conf, "w") as f:
        # As root, nginx's worker would drop to nobody, who cannot read the private work
        # directory: keep it as the user that made the files.
        f.write(NGINX_CONF.format(user="user root;\n" if os.geteuid() == 0 else "",
                                  tmp=ndir, port=port, pki=pki, cert=cert, path=path))
    cmd = [nginx, "-c", conf, "-p", ndir]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
