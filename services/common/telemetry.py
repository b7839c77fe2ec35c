"""OpenTelemetry set-up and context propagation across HTTP, NATS and Temporal.

Spans go over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, otherwise to
`var/traces/<process>.jsonl`, which `waybill trace <trace-id>` reads back as a tree.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

_lock = threading.Lock()
_provider: TracerProvider | None = None


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per finished span to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_to_dict(s), separators=(",", ":")) + "\n" for s in spans]
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    parent = span.parent
    assert ctx is not None
    return {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "service": span.resource.attributes.get("service.name", "?"),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name.lower(),
        "attributes": {k: _jsonable(v) for k, v in (span.attributes or {}).items()},
        "events": [e.name for e in span.events],
        "links": [format(link.context.trace_id, "032x") for link in span.links],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return [v if isinstance(v, str | int | float | bool) else str(v) for v in value]


def trace_dir(var_dir: str | Path) -> Path:
    return Path(os.environ.get("WAYBILL_TRACE_DIR", Path(var_dir) / "traces"))


def setup_tracing(process: str, var_dir: str | Path) -> TracerProvider:
    """Install this process's tracer provider once; later calls return the same one."""
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        provider = TracerProvider(resource=Resource.create({"service.name": f"waybill-{process}"}))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter: SpanExporter = OTLPSpanExporter()
        else:
            exporter = JsonLinesSpanExporter(trace_dir(var_dir) / f"{process}.jsonl")
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        trace.set_tracer_provider(provider)
        _provider = provider
        return provider


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


def tracer(name: str = "waybill") -> trace.Tracer:
    return trace.get_tracer(name)


def inject(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The current trace context as W3C headers (traceparent, tracestate)."""
    out: dict[str, str] = dict(carrier or {})
    propagate.inject(out)
    return out


def extract(carrier: Mapping[str, str] | None) -> Context:
    return propagate.extract(dict(carrier or {}))


def attach(ctx: Context) -> object:
    return otel_context.attach(ctx)


def detach(token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


# --- reading spans back -------------------------------------------------------


def load_spans(directory: Path, trace_id: str | None = None) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    if not directory.exists():
        return spans
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    span = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line still being written
                if trace_id is None or span["trace_id"] == trace_id:
                    spans.append(span)
    return spans


def group_traces(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Spans by trace id, traces in the order they started."""
    traces: dict[str, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        traces.setdefault(span["trace_id"], []).append(span)
    return traces


def root_name(spans: list[dict[str, Any]]) -> str:
    """The name of a trace's root span (its earliest span when the root was not kept)."""
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_id"] not in ids]
    return str(min(roots or spans, key=lambda s: s["start_ns"])["name"])


def traces_about(spans: list[dict[str, Any]], entity_id: str) -> dict[str, list[dict[str, Any]]]:
    """The traces that did something to `entity_id` (an order id, say): any span with
    the id in an attribute value (HTTP paths, workflow ids, message subjects). Traces
    that only read (a root `GET` request) are left out: polling would drown the story."""
    about: dict[str, list[dict[str, Any]]] = {}
    for trace_id, members in group_traces(spans).items():
        mentions = any(
            entity_id in str(value) for s in members for value in s["attributes"].values()
        )
        if mentions and not root_name(members).startswith("GET "):
            about[trace_id] = members
    return about


def render_tree(spans: list[dict[str, Any]]) -> str:
    """The spans of one trace as an indented tree, children in start order."""
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in by_id else None
        children.setdefault(parent, []).append(s)
    for group in children.values():
        group.sort(key=lambda s: s["start_ns"])
    t0 = min((s["start_ns"] for s in spans), default=0)
    lines: list[str] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        ms = (span["end_ns"] - span["start_ns"]) / 1e6
        offset = (span["start_ns"] - t0) / 1e6
        flag = "  !" if span["status"] == "error" else ""
        lines.append(
            f"{'  ' * depth}{span['name']}  [{span['service']}]  +{offset:.1f}ms  {ms:.1f}ms{flag}"
        )
        for child in children.get(span["span_id"], []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    return "\n".join(lines)
