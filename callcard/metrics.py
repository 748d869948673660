"""Prometheus metrics: every callcard metric is defined here, in one place.

The web app serves them on `/metrics`; the other processes on CALLCARD_METRICS_PORT. The bridge's
figures are read from its own counters when scraped (`watch_bridge`), so the AMI hot path pays
nothing for them. Several uvicorn workers share one view through prometheus_client's multiprocess
mode: `callcard run web` sets PROMETHEUS_MULTIPROC_DIR before the workers start (`render`).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, start_http_server

if TYPE_CHECKING:
    from ami_bridge.service import Bridge

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

POPS_SENT = Counter("callcard_pops_sent", "Pops sent to operators' desks over their websockets")
POP_LATENCY = Histogram(
    "callcard_pop_latency_seconds", "From the bridge seeing a phone ring (the event's `at`) to its pop leaving "
    "for the desk", buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
STREAM_LAG = Gauge("callcard_stream_lag", "Call events in the stream not yet acknowledged by the call logger",
                   multiprocess_mode="max")
DIALLER_CALLS = Counter("callcard_dialler_calls_placed", "Campaign calls the dialler originated")

_bridges: weakref.WeakSet[Bridge] = weakref.WeakSet()


def watch_bridge(bridge: Bridge) -> None:
    """Report this bridge's counters and AMI connection state (summed over the process's bridges)."""
    _bridges.add(bridge)


class _BridgeCollector:
    def collect(self) -> Iterator[Metric]:
        bridges = list(_bridges)
        if not bridges:
            return
        counters = [b.counters for b in bridges]
        for name, doc, attr in (
            ("callcard_ami_events", "AMI events read from Asterisk", "events_in"),
            ("callcard_call_events", "Call events the bridge published", "call_events_out"),
            ("callcard_queue_events", "Queue events the bridge published", "queue_events_out"),
            ("callcard_ami_parse_errors", "AMI frames dropped as unreadable", "parse_errors"),
            ("callcard_bus_publish_errors", "Events the bridge could not publish", "publish_errors"),
            ("callcard_ami_resyncs", "Resynchronisations after an AMI login", "resyncs"),
        ):
            yield CounterMetricFamily(name, doc, value=sum(getattr(c, attr) for c in counters))
        yield GaugeMetricFamily("callcard_ami_connected", "1 while the bridge is logged in to Asterisk",
                                value=sum(1 for b in bridges if b.client.connected.is_set()))


REGISTRY.register(_BridgeCollector())


def render() -> bytes:
    """The text exposition: this process's registry, or every web worker's in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def serve_metrics(host: str, port: int) -> object:
    """Expose this process's metrics on host:port (a daemon thread); returns the server to shut down."""
    server, _thread = start_http_server(port, addr=host)
    return server
