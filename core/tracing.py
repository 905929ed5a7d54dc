"""OpenTelemetry traces when an exporter is configured; nothing at all otherwise.

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
is set, or ``IMPERFECT_OTEL=1`` (the exporter then uses its own default endpoint), and the
optional packages are installed (``pip install 'imperfect-api[otel]'``). ``OTEL_SDK_DISABLED=true``
or ``OTEL_TRACES_EXPORTER=none`` turn it off. The exporter is OTLP over HTTP/protobuf, or gRPC
when ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL=grpc``; every other ``OTEL_*`` variable
(headers, service name, resource attributes, sampler) is read by the SDK as usual. The
service name defaults to ``imperfect-api``.

Core's request pipeline opens one server span per request, named ``<METHOD> <route
template>`` with the route, family, status and request id, continuing a W3C
``traceparent`` the client sent; :class:`~core.clients.ServiceClient` opens one client
span per upstream attempt (service, method, status) and sends its ``traceparent`` on.
When tracing is off, :func:`active` is ``None`` and the pipeline and clients do no
tracing work at all: the OpenTelemetry packages are not even imported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib import import_module
from typing import Any

log = logging.getLogger("imperfect.tracing")

ENABLE_ENV = "IMPERFECT_OTEL"
SERVICE_NAME = "imperfect-api"


class Tracing:
    """The tracer core's pipeline and clients use, bound to one tracer provider."""

    def __init__(self, provider: Any) -> None:
        trace = import_module("opentelemetry.trace")
        self.provider = provider
        self.tracer = provider.get_tracer("imperfect-api")
        self._context = import_module("opentelemetry.context")
        self._propagate = import_module("opentelemetry.propagate")
        self._trace = trace
        self._server = trace.SpanKind.SERVER
        self._client = trace.SpanKind.CLIENT
        self._error = trace.Status(trace.StatusCode.ERROR)

    # --- requests we serve ---------------------------------------------------------------

    def start_request(self, method: str, headers: Any) -> tuple[Any, Any]:
        """A server span for a request (continuing the client's ``traceparent``), made current."""
        parent = self._propagate.extract(headers)
        span = self.tracer.start_span(
            method, context=parent, kind=self._server, attributes={"http.request.method": method}
        )
        token = self._context.attach(self._trace.set_span_in_context(span, parent))
        return span, token

    def end_request(
        self,
        handle: tuple[Any, Any],
        method: str,
        route: str,
        family: str,
        status: int,
        request_id: str,
    ) -> None:
        span, token = handle
        try:
            span.update_name(f"{method} {route}")
            span.set_attributes(
                {
                    "http.route": route,
                    "http.response.status_code": status,
                    "imperfect.family": family,
                    "imperfect.request_id": request_id,
                }
            )
            if status >= 500:
                span.set_status(self._error)
            span.end()
        finally:
            self._context.detach(token)

    # --- calls to outside services ---------------------------------------------------------

    def start_upstream(self, service: str, method: str, path: str) -> tuple[Any, dict[str, str]]:
        """A client span for one attempt, and the headers that carry it to the service."""
        span = self.tracer.start_span(
            f"{service} {method}",
            kind=self._client,
            attributes={
                "imperfect.service": service,
                "http.request.method": method,
                "url.path": path,
            },
        )
        headers: dict[str, str] = {}
        self._propagate.inject(headers, context=self._trace.set_span_in_context(span))
        return span, headers

    def end_upstream(self, span: Any, status: int | None, outcome: str) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        span.set_attribute("imperfect.outcome", outcome)
        if outcome not in ("ok", "4xx"):
            span.set_status(self._error)
        span.end()

    def current_ids(self) -> tuple[str, str] | None:
        context = self._trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"


_active: Tracing | None = None
_configured = False


def active() -> Tracing | None:
    """The tracer in use, or ``None`` when tracing is off (the cheap, common case)."""
    return _active


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span as hex, when tracing is on and one is open."""
    return None if _active is None else _active.current_ids()


def use(provider: Any) -> Tracing:
    """Trace with ``provider`` (an SDK ``TracerProvider``), such as an in-memory one in tests."""
    global _active
    _active = Tracing(provider)
    return _active


def disable() -> None:
    """Stop tracing (spans already open end normally)."""
    global _active
    _active = None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get(ENABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    )


def configure_from_env() -> Tracing | None:
    """Start tracing once per process when the environment asks for it and the SDK is there.

    Sets the global tracer provider too, so a family's own
    ``opentelemetry.trace.get_tracer(__name__)`` spans join the same traces.
    """
    global _configured
    if _configured or not wanted():
        return _active
    _configured = True
    try:
        trace = import_module("opentelemetry.trace")
        resources = import_module("opentelemetry.sdk.resources")
        sdk_trace = import_module("opentelemetry.sdk.trace")
        export = import_module("opentelemetry.sdk.trace.export")
    except ImportError:
        log.warning(
            "OpenTelemetry is configured but not installed: no traces "
            "(pip install 'imperfect-api[otel]')"
        )
        return None
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    transport = "grpc" if protocol.strip().lower() == "grpc" else "http"
    try:
        exporters = import_module(f"opentelemetry.exporter.otlp.proto.{transport}.trace_exporter")
    except ImportError:
        log.warning(
            "OpenTelemetry is configured but its OTLP exporter (%s) is not installed: no traces "
            "(pip install 'imperfect-api[otel]')",
            protocol,
        )
        return None
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = sdk_trace.TracerProvider(resource=resources.Resource.create(attributes))
    provider.add_span_processor(export.BatchSpanProcessor(exporters.OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("OpenTelemetry traces exported over OTLP (%s)", protocol)
    return use(provider)
