"""What `handoff serve` needs to run the router in a supervised process: the settings
reach the child exactly, restarts back off, exits are described without guesswork."""

from __future__ import annotations

import signal

import pytest
from pydantic import SecretStr

from broker.cli.router_supervisor import Backoff, describe_exit
from broker.config import load_settings, settings_from_json, settings_to_json
from broker.errors import ConfigError
from broker.roles import Roles


def test_settings_reach_the_router_process_exactly_secrets_included(monkeypatch, tmp_path):
    config = tmp_path / "handoff.yaml"
    config.write_text("router: {batch_size: 50}\nretention: {events: {birth: 30d}}\n")
    monkeypatch.setenv("HANDOFF_API__PORT", "9123")
    monkeypatch.setenv("HANDOFF_KAFKA__SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("HANDOFF_WEBHOOKS__SECRETS", '{"hv-births": ["whsec_abc"]}')
    settings = load_settings(config, policy_dir=tmp_path / "policy", data_dir=tmp_path / "d")
    line = settings_to_json(settings)
    assert "\n" not in line

    monkeypatch.setenv("HANDOFF_API__PORT", "1")  # the child's environment is not read
    again = settings_from_json(line)
    assert again == settings
    assert again.api.port == 9123 and again.router.batch_size == 50
    assert again.retention.events == {"birth": 30 * 86_400}
    assert again.kafka.sasl_password == SecretStr("s3cret")
    assert again.webhooks.secrets["hv-births"][0].get_secret_value() == "whsec_abc"


def test_settings_that_are_not_json_are_refused_as_a_configuration_problem():
    with pytest.raises(ConfigError, match="not valid"):
        settings_from_json("{not json")


def test_restarts_back_off_doubling_to_a_ceiling_and_reset_after_a_steady_run():
    backoff = Backoff(first=0.5, longest=30, steady=60)
    assert [backoff.after(1) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.after(61) == 0.5
    assert backoff.after(2) == 1


def test_exits_are_described_by_code_or_signal():
    assert describe_exit(2) == "exit code 2"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"


def test_the_router_runs_apart_from_the_roles_that_serve_clients():
    assert Roles.all().without_router() == Roles.parse("api,delivery")
    assert str(Roles.parse("api,router").without_router()) == "api"
