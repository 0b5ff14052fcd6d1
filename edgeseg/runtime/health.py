"""Live health of a run: rates, latencies, reconnects, temperature, for ``/stats`` and ``/metrics``."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.config import file_sha256  # one definition: the sidecar names the same hash

THERMAL = Path("/sys/class/thermal")


def cpu_temperature(root: Path = THERMAL) -> float | None:
    """The CPU's temperature in °C from ``thermal_zone*/temp`` (millidegrees), or None.

    Prefers a zone whose ``type`` names the CPU (``cpu-thermal`` on a Raspberry Pi),
    else the first readable zone.
    """
    zones = sorted(root.glob("thermal_zone*")) if root.is_dir() else []
    zones.sort(key=lambda z: "cpu" not in _read(z / "type").lower())
    for zone in zones:
        try:
            return int(_read(zone / "temp")) / 1000.0
        except ValueError:
            continue
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


class _Window:
    """(time, value) pairs of the last ``seconds``: rates and percentiles over a sliding window."""

    def __init__(self, seconds: float = 10.0, maxlen: int = 4096) -> None:
        self.seconds = seconds
        self.items: deque[tuple[float, float]] = deque(maxlen=maxlen)

    def add(self, t: float, value: float) -> None:
        self.items.append((t, value))

    def _recent(self, now: float) -> list[float]:
        return [v for t, v in self.items if now - t <= self.seconds]

    def rate(self, now: float) -> float:
        """Per second, of a running total sampled into the window: (newest − oldest sample)
        over the time since the oldest, so the first seconds of a run aren't under-reported
        and frames counted before the first sample don't show as a burst; 0 once all
        samples have aged out."""
        recent = [(t, v) for t, v in self.items if now - t <= self.seconds]
        if len(recent) < 2:
            return 0.0
        (t0, v0), (_, v1) = recent[0], recent[-1]
        return (v1 - v0) / max(now - t0, 1e-3)

    def percentile(self, q: float, now: float) -> float | None:
        recent = self._recent(now)
        return float(np.percentile(recent, q)) if recent else None


class Health:
    """What ``/stats`` and ``/metrics`` report, updated by the frame loop (thread-safe).

    Args:
        model: The model's path (its name and SHA-256 are reported).
        reader: The :class:`~edgeseg.runtime.reader.FrameReader` (frames in, dropped,
            reconnects, stalls); may be set later.
        window_s: Seconds over which rates and latency percentiles are computed.
    """

    def __init__(self, model: str, reader: Any = None, window_s: float = 10.0) -> None:
        self.model_name = Path(model).name
        self.model_sha256 = file_sha256(model)
        self.reader = reader
        self.started = time.monotonic()
        self.frames_out = 0
        self.confidence: dict[str, Any] | None = None  # set by runtime.confidence
        self.instances: Any = None  # a runtime.tracking.InstanceCounter, for instance runs
        self._in = _Window(window_s)
        self._out = _Window(window_s)
        self._invoke = _Window(window_s)
        self._e2e = _Window(window_s)
        self._lock = threading.Lock()

    def frame(self, invoke_ms: float, e2e_ms: float) -> None:
        """Record one frame out: its invoke time and capture → output latency (ms)."""
        now = time.monotonic()
        with self._lock:
            self.frames_out += 1
            self._out.add(now, float(self.frames_out))
            self._in.add(now, float(getattr(self.reader, "captured", 0)))
            self._invoke.add(now, invoke_ms)
            self._e2e.add(now, e2e_ms)

    def snapshot(self) -> dict[str, Any]:
        """The ``/stats`` JSON: rates per second over the window, latencies in ms."""
        now = time.monotonic()
        r = self.reader
        with self._lock:
            out: dict[str, Any] = {
                "model": self.model_name, "model_sha256": self.model_sha256,
                "uptime_s": round(now - self.started, 1),
                "frames_in": int(getattr(r, "captured", 0)), "frames_out": self.frames_out,
                "fps_in": round(self._in.rate(now), 2), "fps_out": round(self._out.rate(now), 2),
                "dropped": int(getattr(r, "dropped", 0)),
                "reconnects": int(getattr(r, "reconnects", 0)),
                "stalls": int(getattr(r, "stalls", 0)),
                "source_state": getattr(r, "state", "streaming"),
                "invoke_ms": {"p50": _r(self._invoke.percentile(50, now)),
                              "p99": _r(self._invoke.percentile(99, now))},
                "e2e_ms": {"p50": _r(self._e2e.percentile(50, now)),
                           "p99": _r(self._e2e.percentile(99, now))},
                "cpu_temp_c": cpu_temperature(),
            }
        if self.confidence is not None:
            out["confidence"] = self.confidence
        if self.instances is not None:
            out["instances"] = self.instances.snapshot()
        return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def prometheus_text(health: Health) -> bytes:
    """``/metrics``: the snapshot as Prometheus gauges and counters (prometheus_client)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

    snap = health.snapshot()

    class _Collector:
        def collect(self) -> Any:
            yield InfoMetricFamily("edgeseg_model", "The model being run",
                                   value={"name": snap["model"], "sha256": snap["model_sha256"]})
            for name in ("frames_in", "frames_out", "dropped", "reconnects", "stalls"):
                yield CounterMetricFamily(f"edgeseg_{name}", f"{name.replace('_', ' ')} so far",
                                          value=snap[name])
            yield GaugeMetricFamily("edgeseg_uptime_seconds", "Seconds since start",
                                    value=snap["uptime_s"])
            for name in ("fps_in", "fps_out"):
                yield GaugeMetricFamily(f"edgeseg_{name}", "Frames per second over the window",
                                        value=snap[name])
            for key in ("invoke_ms", "e2e_ms"):
                g = GaugeMetricFamily(f"edgeseg_{key.replace('_ms', '')}_latency_ms",
                                      "Latency percentile over the window (ms)",
                                      labels=["quantile"])
                for q, label in (("p50", "0.5"), ("p99", "0.99")):
                    if snap[key][q] is not None:
                        g.add_metric([label], snap[key][q])
                yield g
            if snap["cpu_temp_c"] is not None:
                yield GaugeMetricFamily("edgeseg_cpu_temperature_celsius", "CPU temperature",
                                        value=snap["cpu_temp_c"])
            conf = snap.get("confidence")
            if conf:
                for key in ("top1", "margin"):
                    if conf.get(key) is not None:
                        yield GaugeMetricFamily(f"edgeseg_confidence_{key}",
                                                f"Rolling mean of the per-frame mean {key}",
                                                value=conf[key])
                yield GaugeMetricFamily("edgeseg_confidence_drift",
                                        "1 while the rolling window is outside the convert-time "
                                        "distribution", value=1.0 if conf.get("drift") else 0.0)

            inst = snap.get("instances")
            if inst:
                g = GaugeMetricFamily("edgeseg_instances", "Objects of each class in the last frame",
                                      labels=["class", "kind"])
                c = CounterMetricFamily("edgeseg_instances_seen", "Distinct tracked objects of each "
                                        "class so far", labels=["class", "kind"])
                for name in sorted(set(inst["current"]) | set(inst["seen"])):
                    g.add_metric([name, inst["kind"]], inst["current"].get(name, 0))
                    c.add_metric([name, inst["kind"]], inst["seen"].get(name, 0))
                yield g
                yield c

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())  # type: ignore[arg-type]
    return generate_latest(registry)
