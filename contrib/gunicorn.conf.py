"""gunicorn settings for a WSGI app wrapped by SSOMiddleware, behind nginx
(contrib/nginx/webwork-sso.conf) and run by systemd (contrib/systemd/webwork-sso.service).

    gunicorn -c contrib/gunicorn.conf.py mysite.wsgi:application

Every value can be overridden from the environment (GUNICORN_BIND, GUNICORN_WORKERS, ...), so
the file can stay as it is in version control.
"""

from __future__ import annotations

import multiprocessing
import os


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# nginx on the same host talks to gunicorn over loopback only; nothing else should reach it.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")

# Sync workers, one request at a time each. Every piece of SSO state (sessions, replay cache,
# pending sign-ins) is in the database, so workers need not share memory; a deactivation
# reaches all of them within session_recheck_seconds.
workers = _env_int("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 9))
threads = _env_int("GUNICORN_THREADS", 1)

# Build the app in each worker, not in the master: a database engine created before fork()
# would be shared by every worker. Migrations are not left to the workers' start-up either:
# the systemd unit runs "webwork-sso db upgrade" once, with WEBWORK_SSO_AUTO_MIGRATE=false.
preload_app = False

# A request taking longer than this is killed. The slowest SSO request is saving IdP
# metadata by URL, which the middleware fetches with its own, shorter timeout.
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 30
# nginx keeps upstream connections open (keepalive in the upstream block); a little longer
# than nginx's own idle timeout avoids resetting a connection nginx is about to reuse.
keepalive = 75

# Trust X-Forwarded-Proto/-For only from nginx. This decides what the *host app* sees
# (wsgi.url_scheme, REMOTE_ADDR); the middleware builds every SAML and SCIM URL from base_url
# and reads no forwarded header.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# Header lines: room for the host app's cookies beside the session cookie, and for the long
# Referer an IdP's sign-in page can send with the SAML POST. The request line stays at the
# default: /saml/<slug>/login?next=... carries a path, not a SAML message.
limit_request_field_size = 16384
limit_request_fields = 100
limit_request_line = 8190

# Logs to stdout/stderr, which systemd's journal collects.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The access log must not record SAMLResponse or tokens: those travel in POST bodies and the
# Authorization header, which this format leaves out.
access_log_format = '%({x-forwarded-for}i)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
proc_name = "webwork-sso"

# gunicorn >= 27 opens a control socket, by default under $HOME. Under systemd, ProtectHome
# hides $HOME: use the unit's RuntimeDirectory, which systemd passes as $RUNTIME_DIRECTORY.
# (Older gunicorn ignores the setting.)
if os.environ.get("RUNTIME_DIRECTORY"):
    control_socket = os.path.join(os.environ["RUNTIME_DIRECTORY"].split(":")[0], "gunicorn.ctl")
