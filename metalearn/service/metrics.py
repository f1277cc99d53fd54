"""Prometheus metrics of the service (one registry per app, so several apps can live in one process).

* ``metalearn_http_request_duration_seconds{method,route}`` — latency histogram per route template;
* ``metalearn_http_requests_total{method,route,status}`` — requests by final status code;
* ``metalearn_http_errors_total{method,route,status_class}`` — 4xx / 5xx responses;
* ``metalearn_unhandled_exceptions_total{route}`` — bugs that produced a generic 500;
* ``metalearn_searches_running`` / ``metalearn_searches_pending`` — the search worker pool;
* ``metalearn_searches_finished_total{status}`` — finished searches by outcome;
* ``metalearn_model_predictions_total{model,version}`` — rows predicted by each registered model version;
* ``metalearn_model_request_duration_seconds{model,version}`` — latency of its prediction requests;
* ``metalearn_model_errors_total{model,version,status}`` — refused / failed prediction requests (``version``
  is empty when no version was resolved; ``model`` is ``<unknown>`` for a name the registry does not hold);
* ``metalearn_model_drift_share{model,version}``, ``metalearn_model_drift_metafeature_distance{model,version}``,
  ``metalearn_model_concept_drift_change{model,version}`` (relative degradation of the score on feedback) and ``metalearn_model_drift_flag{model,version,flag}``
  (0/1) — the latest drift check of a version (the gauges set when ``GET /models/{name}/drift`` runs; the flags
  read from the registry at scrape time: live versions and flagged ones, whoever checked them);
* ``metalearn_prediction_log_dropped_total`` — logged predictions dropped because the log buffer was full;
* ``metalearn_kb_*`` — KB sizes (``metalearn_kb_runs``, ``metalearn_kb_datasets_by_kind{group}`` ...), read
  from ``kb.stats()`` when scraped (cached for a few seconds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Latency buckets (seconds): fine below 100 ms where the recommendation targets are.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

UNMATCHED_ROUTE = "<unmatched>"


class _Cached:
    """``read()`` at scrape time, cached ``ttl`` seconds; a failed read serves the last value (or ``empty``)."""

    def __init__(self, read: Callable[[], Any], empty: Any, ttl: float = 5.0) -> None:
        self._read = read
        self._empty = empty
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, Any] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def _current(self) -> Any:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self._ttl:
                try:
                    self._cached = (now, self._read())
                except Exception:  # a scrape must never fail because the KB is busy
                    return self._cached[1] if self._cached else self._empty
            return self._cached[1]


class FlagsCollector(_Cached, Collector):
    """``metalearn_model_drift_flag{model,version,flag}`` (0/1) from the registry's flags at scrape time."""

    def __init__(self, flags: Callable[[], list[tuple[str, int, str, bool]]], ttl: float = 5.0) -> None:
        super().__init__(flags, [], ttl)

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "metalearn_model_drift_flag",
            "1 when the version carries the drift flag (as the registry keeps it, whoever checked), else 0",
            labels=["model", "version", "flag"],
        )

    def describe(self) -> Iterator[Metric]:
        """The family without reading the registry (registering a collector describes it: a read then would be
        cached and served stale)."""
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        g = self._family()
        for name, version, flag, raised in self._current():
            g.add_metric([name, str(version), flag], 1.0 if raised else 0.0)
        yield g


class KBCollector(_Cached, Collector):
    """KB size gauges computed at scrape time from ``stats()`` (cached ``ttl`` seconds)."""

    def __init__(self, stats: Callable[[], dict[str, Any]], ttl: float = 5.0) -> None:
        super().__init__(stats, {}, ttl)

    def collect(self) -> Iterator[Metric]:
        """``metalearn_kb_<key>`` for every count in ``stats()``; a dict of counts becomes one gauge
        with a ``group`` label (``metalearn_kb_datasets_by_kind{group="binary"}``)."""
        for key, value in sorted(self._current().items()):
            name = "metalearn_kb_" + "".join(ch if ch.isalnum() else "_" for ch in str(key)).lower()
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                g = GaugeMetricFamily(name, f"Knowledge base: {key}")
                g.add_metric([], float(value))
                yield g
            elif isinstance(value, dict):
                counts = {
                    str(k): v
                    for k, v in value.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
                if counts:
                    g = GaugeMetricFamily(name, f"Knowledge base: {key}", labels=["group"])
                    for k, v in counts.items():
                        g.add_metric([k], float(v))
                    yield g


class ServiceMetrics:
    """The metrics of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "metalearn_http_request_duration_seconds",
            "Request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "metalearn_http_requests",
            "Requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "metalearn_http_errors",
            "Responses with a 4xx or 5xx status",
            ["method", "route", "status_class"],
            registry=self.registry,
        )
        self.exceptions = Counter(
            "metalearn_unhandled_exceptions",
            "Unexpected exceptions (generic 500s)",
            ["route"],
            registry=self.registry,
        )
        self.searches_running = Gauge(
            "metalearn_searches_running", "Searches running now", registry=self.registry
        )
        self.searches_pending = Gauge(
            "metalearn_searches_pending", "Searches waiting for a worker", registry=self.registry
        )
        self.searches_finished = Counter(
            "metalearn_searches_finished", "Finished searches by outcome", ["status"], registry=self.registry
        )
        self.model_predictions = Counter(
            "metalearn_model_predictions",
            "Rows predicted by a registered model version",
            ["model", "version"],
            registry=self.registry,
        )
        self.model_latency = Histogram(
            "metalearn_model_request_duration_seconds",
            "Latency of the prediction requests of a model version (whole request handling)",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_errors = Counter(
            "metalearn_model_errors",
            "Prediction requests refused or failed, by status",
            ["model", "version", "status"],
            registry=self.registry,
        )
        self.drift_share = Gauge(
            "metalearn_model_drift_share",
            "Share of the features with data drift at the latest drift check",
            ["model", "version"],
            registry=self.registry,
        )
        self.drift_distance = Gauge(
            "metalearn_model_drift_metafeature_distance",
            "Meta-feature distance between the training data and the recent inputs at the latest drift check",
            ["model", "version"],
            registry=self.registry,
        )
        self.concept_change = Gauge(
            "metalearn_model_concept_drift_change",
            "Relative change of the score on labelled feedback vs the training score (latest drift check)",
            ["model", "version"],
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "metalearn_prediction_log_dropped",
            "Logged predictions dropped because the prediction log buffer was full",
            registry=self.registry,
        )
        self._kb_collector: KBCollector | None = None
        self._flags_collector: FlagsCollector | None = None

    def watch_kb(self, stats: Callable[[], dict[str, Any]]) -> None:
        if self._kb_collector is not None:
            self.registry.unregister(self._kb_collector)
        self._kb_collector = KBCollector(stats)
        self.registry.register(self._kb_collector)

    def watch_flags(self, flags: Callable[[], list[tuple[str, int, str, bool]]]) -> None:
        """``metalearn_model_drift_flag`` from ``flags()`` at scrape time: (model, version, flag, raised) as the
        registry keeps them, whoever checked (the CLI, another server run), not only this process's checks."""
        if self._flags_collector is not None:
            self.registry.unregister(self._flags_collector)
        self._flags_collector = FlagsCollector(flags)
        self.registry.register(self._flags_collector)

    def observe_drift(self, name: str, version: int, report: dict[str, Any]) -> None:
        """Set the drift gauges of ``name`` ``version`` from a ``check_drift`` report (the flags it set or cleared
        are read from the registry at the next scrape)."""
        v = str(version)
        data = report.get("data") or {}
        concept = report.get("concept") or {}
        for gauge, value in (
            (self.drift_share, data.get("share_drifted")),
            (self.drift_distance, data.get("metafeature_distance")),
            (self.concept_change, _relative_change(concept)),
        ):
            if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
                gauge.labels(name, v).set(float(value))
        if self._flags_collector is not None:
            self._flags_collector.invalidate()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route).observe(seconds)
        self.requests.labels(method, route, str(status)).inc()
        if status >= 400:
            self.errors.labels(method, route, f"{status // 100}xx").inc()


def _relative_change(concept: dict[str, Any]) -> float | None:
    """The concept-drift check's relative change of the score against the training score (its
    ``relative_degradation``: positive when the recent score is worse)."""
    value = concept.get("relative_degradation")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def route_of(scope: Scope) -> str:
    """The route template of a handled request (``/datasets/{dataset_id}``), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED_ROUTE


class HttpMiddleware:
    """Pure ASGI middleware (cheaper than ``BaseHTTPMiddleware``) of the HTTP requests, with the service's
    metrics; other scopes pass through. Subclasses write :meth:`http`."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class MetricsMiddleware(HttpMiddleware):
    """Times every HTTP request."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe(
                scope.get("method", "GET"), route_of(scope), status, time.perf_counter() - start
            )
