"""Prometheus metrics read from the queue backends at scrape time (``oxide queue:metrics``).

One exporter process reads what every worker published (their heartbeats add to
counters in the backend, which only grow and outlive worker restarts), so no
multiprocess files are needed. prometheus_client does the exposition; this module
only says what the figures are. Names (``docs/operations.md``):

- ``oxide_queue_jobs_total{connection,queue,listener,outcome}``: runs ended done, failed (for good) or retried
- ``oxide_queue_job_run_seconds{connection,queue,listener}``: histogram of run times, buckets up to an hour
- gauges ``oxide_queue_ready_jobs``, ``_reserved_jobs``, ``_delayed_jobs``, ``_failed_jobs``,
  ``_oldest_ready_age_seconds``, ``_paused`` per queue; ``oxide_queue_workers`` and ``oxide_queue_backend_up``
  per connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from ..errors import OxideError
from . import BUCKETS_SECS, OUTCOMES, OpsBackend
from .views import failed_counts, queue_stats

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["QueueCollector", "registry_for"]

log = logging.getLogger("oxide.ops")


class QueueCollector:
    """A prometheus_client collector over the operator backends of some connections."""

    def __init__(
        self,
        config: Config,
        backends: Sequence[OpsBackend],
        queues: Callable[[OpsBackend], Sequence[str]] | None = None,
    ) -> None:
        self.config = config
        self.backends = list(backends)
        self._queues = queues or (lambda backend: backend.queues())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        per_queue = ("connection", "queue")
        jobs = CounterMetricFamily(
            "oxide_queue_jobs",
            "Job runs ended, by outcome: done, failed (for good), retried.",
            labels=[*per_queue, "listener", "outcome"],
        )
        runs = HistogramMetricFamily(
            "oxide_queue_job_run_seconds", "How long listeners ran, in seconds.", labels=[*per_queue, "listener"]
        )
        gauges = {
            name: GaugeMetricFamily(f"oxide_queue_{name}", text, labels=list(per_queue))
            for name, text in (
                ("ready_jobs", "Jobs waiting to be taken."),
                ("reserved_jobs", "Jobs in the hands of a worker."),
                ("delayed_jobs", "Jobs waiting for their delay to pass."),
                ("failed_jobs", "Rows of failed_jobs for the queue."),
                ("oldest_ready_age_seconds", "How long the job at the front of the line has waited."),
                ("paused", "1 while the queue is paused."),
            )
        }
        workers = GaugeMetricFamily("oxide_queue_workers", "Live workers (fresh heartbeat).", labels=["connection"])
        up = GaugeMetricFamily(
            "oxide_queue_backend_up", "1 if the backend answered this scrape.", labels=["connection"]
        )
        try:
            failed = failed_counts(self.config)
        except OxideError as exc:
            log.warning("metrics: the failed-job store did not answer: %s", exc)
            failed = None
        for backend in self.backends:
            name = backend.name
            try:
                stats = queue_stats(backend, self._queues(backend), failed)
                metrics = backend.metrics()
                live = len(backend.workers())
            except OxideError as exc:
                log.warning("metrics: connection %r did not answer: %s", name, exc)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            workers.add_metric([name], live)
            for s in stats:
                labels = [name, s.queue]
                gauges["ready_jobs"].add_metric(labels, s.ready)
                gauges["reserved_jobs"].add_metric(labels, s.reserved)
                gauges["delayed_jobs"].add_metric(labels, s.delayed)
                gauges["paused"].add_metric(labels, 1 if s.paused else 0)
                if s.failed is not None:
                    gauges["failed_jobs"].add_metric(labels, s.failed)
                if s.oldest_age_secs is not None:
                    gauges["oldest_ready_age_seconds"].add_metric(labels, s.oldest_age_secs)
            for m in metrics:
                for outcome in OUTCOMES:
                    jobs.add_metric([name, m.queue, m.listener, outcome], m.counts.get(outcome, 0))
                cumulative = list(accumulate(m.buckets))
                # The bounds written as prometheus_client writes its own histograms' (it ships no annotations).
                bounds = [*(floatToGoString(b) for b in BUCKETS_SECS), "+Inf"]  # type: ignore[no-untyped-call]
                runs.add_metric(
                    [name, m.queue, m.listener], list(zip(bounds, cumulative, strict=True)), sum_value=m.seconds
                )
        yield jobs
        yield runs
        yield from gauges.values()
        yield workers
        yield up


def registry_for(collector: QueueCollector) -> Any:
    """A registry holding only ``collector`` (no process metrics: the exporter's own are of no interest)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
