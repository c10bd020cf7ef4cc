"""A broker runtime in-process for fuzzing: the demo policy, a real embedded log, audit
store and router thread, served through the ASGI app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.api.app import create_app
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings
from tests.e2e.harness import DEMO


@pytest.fixture(scope="module")
def fuzz_runtime(tmp_path_factory) -> Iterator[Broker]:
    settings = load_settings(policy_dir=DEMO / "policy",
                             data_dir=tmp_path_factory.mktemp("fuzz") / "data",
                             keys_file=DEMO / "keys.yaml")
    # No long polls (fuzzed `wait` values would stall the run) and no rate limit (the
    # fuzzer sends thousands of requests with a handful of keys).
    api = settings.api.model_copy(update={"max_wait_seconds": 0,
                                          "rate_limit_per_second": 0})
    runtime = build_broker(settings.model_copy(update={"api": api}))
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def fuzz_app(fuzz_runtime):
    return create_app(fuzz_runtime.api)
