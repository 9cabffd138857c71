"""The worker's and beat's Celery app (`celery -A app.jobs.celery_app worker|beat`)."""

from typing import Any

from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown

from app.config import get_settings
from app.jobs.celery_config import make_celery
from app.jobs.heartbeat import WorkerHeartbeat
from app.jobs.runtime import WorkerRuntime
from app.observability.logging import configure_logging
from app.observability.metrics import prepare_worker_metrics

configure_logging()
settings = get_settings()
# Before any task records a metric: the workers count into the API's /metrics directory.
prepare_worker_metrics(settings.metrics)
celery_app = make_celery(settings)
runtime = WorkerRuntime(settings, celery_app)
_heartbeats: list[WorkerHeartbeat] = []


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    name = str(getattr(sender, "hostname", None) or "worker")
    concurrency = int(getattr(getattr(sender, "controller", None), "concurrency", 0) or 0)
    # Beats go to the state Redis (health reads them there), wherever the broker is.
    heartbeat = WorkerHeartbeat(settings.redis.url, name, concurrency)
    heartbeat.start()
    _heartbeats.append(heartbeat)


@worker_process_shutdown.connect
def _close_pool_process(**_: Any) -> None:
    runtime.close()


@worker_shutdown.connect
def _close_solo_worker(**_: Any) -> None:
    # The solo pool runs tasks in the worker itself and sends no process-shutdown signal.
    runtime.close()
    while _heartbeats:
        _heartbeats.pop().stop()
