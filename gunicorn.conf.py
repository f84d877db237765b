"""gunicorn settings for Lever (Heroku style: everything from the environment).

Worker model: ``WEB_CONCURRENCY`` processes (default 2), each with ``GUNICORN_THREADS``
request threads (default 8) that group-commit the assignments and rewards of the requests in
flight (``app.storage.batching``: on SQLite the request that finds no commit in progress
commits the pending batch itself; on PostgreSQL one writer thread per process does). The worker class is gunicorn's
threaded worker with bounded client reads (``app.web.worker``): a slow or stalled client ties
up one thread for at most ``GUNICORN_BODY_TIMEOUT`` seconds, never a whole process.
"""
import os

bind = f"0.0.0.0:{os.environ['PORT']}" if os.environ.get("PORT") else "127.0.0.1:8000"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "app.web.worker.BoundedThreadWorker")
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 20  # SIGTERM: finish in-flight requests (each commits before it answers)
keepalive = 2
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG", "") else None
errorlog = "-"
loglevel = "info"

#: CPython's GIL switch interval in each worker (ms; empty: the interpreter's 5 ms). For measuring:
#: 1 ms and 20 ms were no better than 5 ms for assign (docs: benchmarks, write path)
switch_interval_ms = os.environ.get("GUNICORN_SWITCH_INTERVAL_MS", "")


def post_fork(server, worker):
    if switch_interval_ms:
        import sys
        sys.setswitchinterval(float(switch_interval_ms) / 1000)
