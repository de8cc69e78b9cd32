"""Prometheus metrics of one daemon, read from what the daemon already records.

Nothing counts on the side: session counts come from the store's live sessions; logons,
log-offs by reason and audit entries from the audit log and the ended-session history
(read incrementally, past the last row seen, so a scrape costs only what is new); the
thumbnail figures from the Thumbnailer; request latency from the web middleware
(web/metrics.py), the one thing observed as it happens. Counters read from the store are
totals since the state database was created, so they survive daemon restarts.

prometheus_client (not a hand-written exposition) because the text and OpenMetrics formats
have escaping and content-negotiation details that are easy to get subtly wrong, and its
process collector gives CPU, memory and file descriptors for free. Its global registry is
not used: each Metrics has its own, so two daemons (or tests) in one process never mix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from importlib import metadata

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from polydesk.core.model import EndReason, SessionState
from polydesk.store.store import Store
from polydesk.thumbnails.feed import Thumbnailer

# Seconds; from a cached thumbnail (~1 ms) to a log-off that waits for its sessions (~10 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LIVE_STATES = [s for s in SessionState if s != SessionState.ENDED]


class _Totals:
    """Running totals of an append-only table, folded in past the last row seen."""

    def __init__(self) -> None:
        self.last = 0
        self.counts: Counter[tuple[str, ...]] = Counter()


class _Collector:
    """Computes the store and thumbnail metrics at each scrape."""

    def __init__(self, store: Store, thumbnails: Thumbnailer) -> None:
        self.store = store
        self.thumbnails = thumbnails
        self.audit = _Totals()
        self.logons = _Totals()
        self.ended = _Totals()

    def _fold(self) -> None:
        seq, entries, logons = self.store.audit_counts(self.audit.last)
        self.audit.last = seq
        for action, allowed, n in entries:
            self.audit.counts[(action, "true" if allowed else "false")] += n
        for status, n in logons:
            self.logons.counts[(status,)] += n
        row, reasons = self.store.ended_counts(self.ended.last)
        self.ended.last = row
        for reason, n in reasons:
            self.ended.counts[(reason,)] += n

    def collect(self) -> Iterator[Metric]:
        self._fold()
        sessions = self.store.sessions()
        by_state = Counter(str(s.state) for s in sessions)
        gauge = GaugeMetricFamily("polydesk_sessions", "Sessions now, by state.", labels=["state"])
        for state in LIVE_STATES:
            gauge.add_metric([str(state)], by_state.get(str(state), 0))
        yield gauge
        yield GaugeMetricFamily("polydesk_sessions_blocked", "Sessions now blocked.",
                                value=sum(1 for s in sessions if s.blocked))

        logons = CounterMetricFamily(
            "polydesk_logons", "Logons by result: started (a new session), resumed (an existing one "
            "taken over), failed (the host could not start it).", labels=["result"])
        for status in sorted({"started", "resumed", "failed"} | {k[0] for k in self.logons.counts}):
            logons.add_metric([status], self.logons.counts.get((status,), 0))
        yield logons

        logoffs = CounterMetricFamily(
            "polydesk_logoffs", "Sessions ended, by reason: logoff (asked for), logout (the user left "
            "the desktop), crashed (its display server died), recovered (a log-off finished by a "
            "restarted daemon).", labels=["reason"])
        for reason in EndReason:
            logoffs.add_metric([str(reason)], self.ended.counts.get((str(reason),), 0))
        yield logoffs

        audit = CounterMetricFamily("polydesk_audit_entries", "Audit log entries, by action and whether "
                                    "the action was allowed.", labels=["action", "allowed"])
        for (action, allowed), n in sorted(self.audit.counts.items()):
            audit.add_metric([action, allowed], n)
        yield audit

        yield CounterMetricFamily("polydesk_thumbnail_frames", "Thumbnails made (new pictures of a "
                                  "screen that changed).", value=self.thumbnails.frames)
        yield CounterMetricFamily("polydesk_thumbnail_cpu_seconds", "CPU time the daemon spent "
                                  "capturing, scaling and encoding thumbnails.",
                                  value=self.thumbnails.cpu_seconds)
        yield GaugeMetricFamily("polydesk_thumbnail_feeds", "Sessions whose screen is being followed for "
                                "thumbnails now.", value=len(self.thumbnails.capturing()))
        info = GaugeMetricFamily("polydesk_build_info", "Polydesk's version.", labels=["version"])
        info.add_metric([_version()], 1)
        yield info


def _version() -> str:
    try:
        return metadata.version("polydesk")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class Metrics:
    """One daemon's metrics and their registry."""

    def __init__(self, store: Store, thumbnails: Thumbnailer) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(store, thumbnails))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, memory, open fds
        self.latency = Histogram(
            "polydesk_http_request_duration_seconds",
            "Time to answer an HTTP request (REST API, pages, thumbnails), by route template.",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, str(status)).observe(seconds)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The metrics in the format the scraper's Accept header asks for: (body, content type)."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type
