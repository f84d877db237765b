"""gunicorn settings for Lever (Heroku style: everything from the environment)."""
import os

bind = f"0.0.0.0:{os.environ['PORT']}" if os.environ.get("PORT") else "127.0.0.1:8000"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 20  # SIGTERM: finish in-flight requests (each commits before it answers)
keepalive = 2
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG", "") else None
errorlog = "-"
loglevel = "info"
