"""gunicorn's settings in production: ``gunicorn --config config/gunicorn.py config.wsgi`` (the systemd unit
in deploy/ and deploy/compose.yaml start it so). gunicorn reads this file before Django starts, so the few
values it needs come from the environment here; everything else is in config/settings.py."""

import os

from config.logs import gunicorn_logconfig

# Where to listen: behind a proxy on the same machine, the loopback; in a container, 0.0.0.0:8000.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Processes answering requests (gunicorn's own variable); each holds one database connection.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Proxies allowed to set X-Forwarded-* (with SECURE_PROXY_SSL_HEADER for HTTPS detection in Django).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
timeout = 60  # a worker stuck this long is restarted
graceful_timeout = 30  # on SIGTERM / HUP, requests in flight get this long to finish
# No access log from gunicorn: with LOG_FORMAT=json Django logs one line per request with its request id.
accesslog = None
logconfig_dict = gunicorn_logconfig(os.environ.get("LOG_FORMAT") or "text")
# No runtime control socket ($HOME/.gunicorn/gunicorn.ctl): systemd or the container runtime manages the
# process, and two instances on one machine would fight over the path.
control_socket_disable = True
