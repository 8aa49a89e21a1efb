"""Prometheus metrics, when prometheus_client is installed (the ``metrics`` extra); otherwise every
function here is a no-op and :func:`scrape` says so, so that the core never needs the package.

Counters are bumped where the decisions are made (the receiver's intake and commits, the ASGI
commit loop, the handler runner, the provisioning clients) through the small functions below.
Queue depths and ages are read from the store at scrape time (:class:`StoreCollector`), since the
queue is shared by every process and instance.

Several worker processes (``uws-adapter receiver --server uvicorn --workers 2``) report as one:
with ``PROMETHEUS_MULTIPROC_DIR`` set before the workers start (the CLI makes one per run with
:func:`multiprocess_dir` and removes it afterwards), each process writes its values to files there
and a scrape of any worker sums them all (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from uws_adapter.forksafe import ForkSafeLock
from uws_adapter.runfiles import run_folder

__all__ = [
    "CONTENT_TYPE", "MULTIPROC_VARIABLE", "StoreCollector", "available", "bridge_call", "budget_decision",
    "callback_committed", "callback_received", "callback_refused", "callbacks_committed", "commit_group",
    "connection_refused", "dead_letter", "handler_run", "multiprocess_dir", "provisioning_fault",
    "provisioning_outcome_unknown", "provisioning_sent", "scrape",
]  # fmt: skip

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: The name of a run's metrics folder in the temporary directory, before the pid and a random part.
METRICS_PREFIX = "uws-adapter-metrics-"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: At most this many distinct fault codes get their own label value; the rest are counted as "other"
#: (codes come from the server's answers: a broken one must not grow the metrics without bound).
MAX_FAULT_CODES = 50
_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_lock = ForkSafeLock()
_made: Optional[Dict[str, Any]] = None
_missing = False
_fault_codes: Dict[str, None] = {}


def _metrics() -> Optional[Dict[str, Any]]:
    """The metric objects, made on first use; None without prometheus_client."""
    global _made, _missing
    if _made is not None or _missing:
        return _made
    with _lock:
        if _made is not None or _missing:
            return _made
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError:
            _missing = True
            return None
        # Our own registry: the application's default registry is not ours to fill.
        registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, text: str, labels: Tuple[str, ...] = ()) -> Any:
            return Counter(f"uws_adapter_{name}", text, labels, registry=registry)

        def histogram(name: str, text: str, buckets: Tuple[float, ...]) -> Any:
            return Histogram(f"uws_adapter_{name}", text, buckets=buckets, registry=registry)

        _made = {
            "registry": registry,
            "received": counter("callbacks_received", "Callback POSTs that reached the receiver"),
            "stored": counter("callbacks_stored", "Callbacks committed as new events"),
            "duplicate": counter("callbacks_duplicate", "Re-sent callbacks committed as one more attempt"),
            "refused": counter(
                "callbacks_refused", "Callback POSTs answered with an error, by HTTP status", ("reason",)
            ),
            "connections": counter(
                "connections_refused",
                "Requests the server answered itself before the application (header limits, deadlines, "
                "connection limit), by HTTP status",
                ("status",),
            ),
            "dead_letters": counter(
                "dead_letters", "Refused or unstorable documents kept or dropped (over budget)", ("outcome",)
            ),
            "group": histogram("commit_group_size", "Callbacks per group commit (ASGI receiver)", _GROUP_BUCKETS),
            "latency": histogram("commit_seconds", "Duration of one group commit (ASGI receiver)", _LATENCY_BUCKETS),
            "handler": counter("handler_runs", "Handler (and relay) runs by outcome", ("handler", "outcome")),
            "retries": counter("handler_retries", "Handler runs that were a retry of a failed one", ("handler",)),
            "bridge": counter(
                "bridge_soap_calls", "Legacy SOAP calls to the bridge: logins, requests, faults", ("kind",)
            ),
            "sent": counter(
                "provisioning_requests",
                "Provisioning requests by outcome: accepted (a RequestId), fault, unknown, not_sent (never left)",
                ("api", "action", "outcome"),
            ),
            "faults": counter("provisioning_faults", "Provisioning requests refused, by fault code", ("api", "code")),
            "unknown": counter("provisioning_outcome_unknown", "Requests whose outcome is unknown", ("api",)),
            "budget": counter(
                "provisioning_budget",
                "Device-list requests the budget guard refused or let through by --force",
                ("api", "decision"),
            ),
        }
        return _made


def available() -> bool:
    """Whether prometheus_client is installed (metrics are collected and served)."""
    return _metrics() is not None


def _inc(name: str, *labels: str, by: float = 1.0) -> None:
    made = _metrics()
    if made is not None:
        metric = made[name]
        (metric.labels(*labels) if labels else metric).inc(by)


# Callback POSTs received and not yet added to the "received" counter. Every callback POST is counted
# here, at the cost of one next() (atomic under the GIL, so safe from any thread); the count is added
# to prometheus_client's counter (a lock, a pid check that is a system call, a write to the shared
# file) once per group commit, refusal or scrape instead of once per callback: every received
# callback ends in one of those before it is answered, so no scrape of any worker sees an answered
# callback uncounted. Each fold takes one number of its own (skipped: it is no callback).
_received = itertools.count()
_received_upto = 0  # the numbers below it are counted (or were a fold's own); guarded by _lock


def callback_received() -> None:
    next(_received)


def _fold_received() -> None:
    global _received_upto
    with _lock:
        taken = next(_received)  # this fold's own number: the callbacks are those before it
        pending, _received_upto = taken - _received_upto, taken + 1
    if pending:
        _inc("received", by=pending)


def _forget_received() -> None:
    # A forked child starts with none pending: the parent's are the parent's to count.
    global _received, _received_upto
    _received, _received_upto = itertools.count(), 0


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_received)


def callback_refused(status: int) -> None:
    _fold_received()
    _inc("refused", str(status))


def connection_refused(status: int) -> None:
    """A request answered by the bounded server itself (431, 408, 503, 400), before any application."""
    _inc("connections", str(status))


def callback_committed(new: bool) -> None:
    _fold_received()
    _inc("stored" if new else "duplicate")


def callbacks_committed(new: int, duplicate: int) -> None:
    """A group's committed callbacks at once: ``new`` events and ``duplicate`` re-sends (one
    increment per counter, where :func:`callback_committed` per callback costs one each)."""
    _fold_received()
    if new:
        _inc("stored", by=new)
    if duplicate:
        _inc("duplicate", by=duplicate)


def dead_letter(kept: bool) -> None:
    _fold_received()  # a callback whose values could not be stored ends here
    _inc("dead_letters", "kept" if kept else "dropped")


def commit_group(size: int, seconds: float) -> None:
    made = _metrics()
    if made is not None:
        made["group"].observe(size)
        made["latency"].observe(seconds)


def handler_run(handler: str, outcome: str, attempts: int) -> None:
    """One run of ``handler``: ``outcome`` done, failed (due again later) or gave_up."""
    _inc("handler", handler, outcome)
    if attempts > 0:
        _inc("retries", handler)


def bridge_call(kind: str) -> None:
    """A legacy SOAP call to the bridge: ``logins``, ``requests`` or ``faults``."""
    _inc("bridge", kind)


def provisioning_sent(api: str, action: str, outcome: str) -> None:
    _inc("sent", api, action, outcome)


def provisioning_fault(api: str, code: str) -> None:
    _inc("faults", api, _fault_label(code))


def provisioning_outcome_unknown(api: str) -> None:
    _inc("unknown", api)


def budget_decision(api: str, *, forced: bool) -> None:
    """A device-list request over the budget: refused, or sent anyway because of ``force``."""
    _inc("budget", api, "forced" if forced else "refused")


def _fault_label(code: str) -> str:
    plain = 0 < len(code) <= 100 and all(c.isascii() and (c.isalnum() or c in "._:-") for c in code)
    if not plain:
        return "other"
    with _lock:
        if code in _fault_codes:
            return code
        if len(_fault_codes) < MAX_FAULT_CODES:
            _fault_codes[code] = None
            return code
    return "other"


class StoreCollector:
    """Gauges read from the store when scraped: runs queued per handler (the bridge's relay is the
    handler ``legacy-relay``) and the age of the oldest queued event; with ``dead_letters``, the
    bytes the dead letters count against their cap and how many were ever rotated out past it
    (kept in the store, so every process and instance reports the same)."""

    def __init__(
        self,
        backlog: Callable[[], Dict[str, Tuple[int, Optional[float]]]],
        now: Callable[[], float],
        dead_letters: Optional[Callable[[], Optional[Tuple[int, int]]]] = None,
    ) -> None:
        self.backlog = backlog
        self.now = now
        self.dead_letters = dead_letters

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        depth = GaugeMetricFamily("uws_adapter_handler_queue_depth", "Handler runs queued", labels=["handler"])
        age = GaugeMetricFamily(
            "uws_adapter_handler_queue_oldest_seconds", "Age of the oldest queued event", labels=["handler"]
        )
        now = self.now()
        for handler, (queued, oldest) in sorted(self.backlog().items()):
            depth.add_metric([handler], queued)
            age.add_metric([handler], max(0.0, now - oldest) if oldest is not None else 0.0)
        yield depth
        yield age
        totals = self.dead_letters() if self.dead_letters is not None else None
        if totals is not None:
            from prometheus_client.core import CounterMetricFamily

            held = GaugeMetricFamily("uws_adapter_dead_letter_bytes", "Bytes the dead letters count against their cap")
            held.add_metric([], totals[0])
            yield held
            rotated = CounterMetricFamily(
                "uws_adapter_dead_letters_rotated", "Oldest dead letters deleted to stay under the cap"
            )
            rotated.add_metric([], totals[1])
            yield rotated


class _Forward:
    """Collects another registry's metrics into the one being scraped, without the ``_created``
    series (creation times, which multiprocess mode never shows either: one exposition either way)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        for family in self.registry.collect():
            family.samples = [sample for sample in family.samples if not sample.name.endswith("_created")]
            yield family


def scrape(store_collector: Optional[StoreCollector] = None) -> Optional[bytes]:
    """The Prometheus text exposition of every metric (summed over the processes that share
    ``PROMETHEUS_MULTIPROC_DIR`` when it is set), or None without prometheus_client."""
    made = _metrics()
    if made is None:
        return None
    _fold_received()
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(made["registry"]))
    if store_collector is not None:
        registry.register(store_collector)
    return generate_latest(registry)


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[Optional[str]]:
    """For a run of worker processes: a fresh, empty ``PROMETHEUS_MULTIPROC_DIR`` (made here unless
    the environment names one already, which is then the operator's to manage), removed at exit.
    Yields the folder, or None without prometheus_client."""
    if os.environ.get(MULTIPROC_VARIABLE):
        yield os.environ[MULTIPROC_VARIABLE]
        return
    # Found without importing it: the parent process must not make its metrics before the variable is set.
    if _missing or importlib.util.find_spec("prometheus_client") is None:
        yield None
        return
    # Values of an earlier run must not be summed into this one's: a new folder per run, named
    # by this process so that the next run removes it if this one is killed (runfiles).
    with run_folder(METRICS_PREFIX) as folder:
        os.environ[MULTIPROC_VARIABLE] = str(folder)
        try:
            yield str(folder)
        finally:
            os.environ.pop(MULTIPROC_VARIABLE, None)
