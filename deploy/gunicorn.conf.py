"""gunicorn settings for django-assetcache behind a reverse proxy.

    gunicorn --config deploy/gunicorn.conf.py mysite.wsgi:application

Every value can be changed from the environment (GUNICORN_*), which is how
compose.yaml and the systemd unit set them.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# Threads let one worker send several large files by sendfile at once.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# The proxy in front sets X-Forwarded-Proto; trust it only from there.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
# Keep-alive between the proxy and gunicorn saves a connection per request.
keepalive = 30


def post_fork(server, worker):
    # Each worker loads the warm snapshot, replays newer changes and starts
    # the change listener before it takes its first request.
    import django_assetcache

    django_assetcache.warm()
