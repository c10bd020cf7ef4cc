"""The web framework's own OpenTelemetry is off: an operator who configures OpenTelemetry
globally in the broker's process (an agent, a sitecustomize) receives nothing of
Handoff's requests from it, neither spans nor metrics nor log records, and so none of
a request's content, which a validation failure would otherwise put within reach of
every log processor (the request's body and the rejected values).

The providers are set in a process of its own: OpenTelemetry lets a process set its
global providers once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
MARKER = "Zebulon Quartermaine"

SCRIPT = r'''
import json, sys
from contextlib import contextmanager
from pathlib import Path

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import LoggerProvider, NoOpLogger
from opentelemetry.metrics import MeterProvider, NoOpMeter
from opentelemetry.trace import (INVALID_SPAN_CONTEXT, NonRecordingSpan, NoOpTracer,
                                 TracerProvider)

# Providers as an SDK's would be: FastAPI leaves alone the no-op ones of the API.

seen = []


class Span(NonRecordingSpan):
    def __init__(self, name, attributes):
        super().__init__(INVALID_SPAN_CONTEXT)
        seen.append(["span", name, repr(attributes)])

    def set_attribute(self, key, value):
        seen.append(["attribute", key, repr(value)])

    def set_attributes(self, attributes):
        seen.append(["attributes", repr(attributes)])

    def record_exception(self, exception, *args, **kwargs):
        seen.append(["exception", repr(exception)])

    def set_status(self, status, description=None):
        seen.append(["status", repr(status), repr(description)])


class Tracer(NoOpTracer):
    def start_span(self, name, context=None, kind=None, attributes=None, *args, **kwargs):
        return Span(name, attributes)

    @contextmanager
    def start_as_current_span(self, name, context=None, kind=None, attributes=None,
                              *args, **kwargs):
        yield Span(name, attributes)


class Tracers(TracerProvider):
    def get_tracer(self, *args, **kwargs):
        return Tracer()


class Logger(NoOpLogger):
    def emit(self, record=None, **fields):
        # What a log processor may read beside each record while the request runs.
        from fastapi.telemetry import get_telemetry_data
        seen.append(["log", repr(record), repr(fields), repr(get_telemetry_data())])


class Loggers(LoggerProvider):
    def get_logger(self, name, *args, **kwargs):
        return Logger(name)


class Meters(MeterProvider):
    def get_meter(self, name, *args, **kwargs):
        seen.append(["meter", name])
        return NoOpMeter(name)


trace.set_tracer_provider(Tracers())
metrics.set_meter_provider(Meters())
_logs.set_logger_provider(Loggers())

from tests.demo_broker import demo_api
from tests.e2e.harness import demo_keys

marker = sys.argv[2]
admin = {"Authorization": f"Bearer {demo_keys()['admin']}"}
with demo_api(Path(sys.argv[1])) as (client, _):
    invalid = client.post("/v1/explain", headers=admin, json={
        "event_type": "birth", "source": marker * 20, "subscription": "hv-births",
        "event": {"child_name": marker}})
    ready = client.get("/healthz")
print(json.dumps({"invalid": [invalid.status_code, invalid.json()],
                  "ready": ready.status_code, "seen": seen}))
'''


def test_globally_configured_opentelemetry_receives_nothing_of_a_request(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data"), MARKER],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    status, problem = out["invalid"]
    assert status == 422 and problem["type"] == "/problems/invalid-request", problem
    assert out["ready"] == 200
    assert MARKER not in json.dumps(out["seen"])
    assert out["seen"] == [], out["seen"][:10]
