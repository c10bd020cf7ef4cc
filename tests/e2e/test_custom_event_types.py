"""A state's own event type without a restart (docs/policy.md, "Add your own event type"):
the worked example `sud_discharge` of `examples/sud_discharge/`, added to a running
broker either as a file in its schema folder or through the registry, then named by a
reloaded bundle. Publishing it works at once, and the router routes it, on both logs
and with the router in a process of its own."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import DEMO, REPO, BrokerProcess, Client, LogBackend, demo_keys
from tests.waiting import eventually

EXAMPLE = REPO / "examples" / "sud_discharge"
KEYS = demo_keys()


def state_install(root: Path) -> tuple[Path, Path]:
    """A copy of the demo bundle to change and an empty schema folder."""
    policy, schemas = root / "policy", root / "schemas"
    shutil.copytree(DEMO / "policy", policy)
    schemas.mkdir()
    return policy, schemas


def name_the_type_in_the_bundle(policy: Path) -> None:
    """What docs/policy.md does by hand: the agreement, the subscription, and the clinic
    publishing the type."""
    shutil.copy(EXAMPLE / "agreement.yaml", policy / "agreements" / "harbor-sud-discharge.yaml")
    with (policy / "subscriptions.yaml").open("a") as out:
        out.write((EXAMPLE / "subscription.yaml").read_text())
    agencies = policy / "agencies.yaml"
    text = agencies.read_text()
    before = "publishes: [enrollment, referral, consent]"
    assert before in text
    agencies.write_text(text.replace(before, before[:-1] + ", sud_discharge]"))


def add_and_publish(broker: BrokerProcess, policy: Path, schemas: Path, how: str,
                    reload_others: Callable[[], None] = lambda: None) -> None:
    admin, clinic = Client(broker.url, KEYS["admin"]), Client(broker.url, KEYS["recovery-clinic"])
    hv = Client(broker.url, KEYS["hv-nfp"])
    try:
        event = json.loads((EXAMPLE / "discharge.json").read_text())
        # Before: an unknown type, and a bundle naming it is refused.
        assert clinic.publish("sud_discharge", event).status_code == 404
        name_the_type_in_the_bundle(policy)
        refused = admin.http.post("/v1/admin/policy:reload")
        assert refused.status_code == 422, refused.text
        assert "sud_discharge" in refused.text

        if how == "schema folder":
            shutil.copy(EXAMPLE / "sud_discharge.avsc", schemas)
        else:
            response = admin.http.post(
                "/v1/registry/subjects/events.sud_discharge-value/versions",
                json={"schema": (EXAMPLE / "sud_discharge.avsc").read_text()})
            assert response.status_code == 200, response.text
        reload = admin.http.post("/v1/admin/policy:reload")
        assert reload.status_code == 200, reload.text
        reload_others()
        assert "events.sud_discharge-value" in admin.http.get("/v1/registry/subjects").json()

        consent = json.loads((EXAMPLE / "consent.json").read_text())
        clinic.publish_ok("consent", consent)
        placed = clinic.publish_ok("sud_discharge", event)
        assert placed["topic"].endswith("events.sud_discharge")

        (delivered,) = hv.pull_all("hv-sud-discharges", expect=1, timeout=30)
        assert delivered["event_id"] == event["event_id"]
        assert delivered["data"]["first_name"] == "Ana"
        assert delivered["data"]["discharge_reason"] == "COMPLETED"
        assert "level_of_care" not in delivered["data"]      # not in the agreement
        assert delivered["obligations"], "a Part 2 disclosure carries the 2.32 notice"
    finally:
        for client in (admin, clinic, hv):
            client.close()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["schema folder", "registry"])
def test_a_new_event_type_is_published_and_routed_without_a_restart(
        tmp_path, log_backend: LogBackend, how):
    policy, schemas = state_install(tmp_path)
    broker = BrokerProcess(data_dir=tmp_path / "data", policy_dir=policy,
                           backend=log_backend, env={"HANDOFF_SCHEMA_DIR": str(schemas)})
    broker.start()
    try:
        add_and_publish(broker, policy, schemas, how)
    finally:
        broker.stop()


@pytest.mark.slow
def test_the_reload_answers_once_the_router_process_routes_the_new_type(tmp_path):
    # handoff serve --router-process: the reload through the parent's API answers only
    # when its router process decides with the new bundle, so the event published
    # right after it is routed, with no SIGHUP or wait of the caller's own.
    policy, schemas = state_install(tmp_path)
    broker = BrokerProcess(data_dir=tmp_path / "data", policy_dir=policy,
                           env={"HANDOFF_SCHEMA_DIR": str(schemas),
                                "HANDOFF_ROUTER_PROCESS": "1"})
    broker.start()
    try:
        assert broker.router_process() is not None
        add_and_publish(broker, policy, schemas, "schema folder")
    finally:
        broker.stop()


@pytest.mark.slow
def test_a_router_in_another_process_picks_up_the_new_type(tmp_path):
    policy, schemas = state_install(tmp_path)
    api = BrokerProcess(data_dir=tmp_path / "data", policy_dir=policy,
                        env={"HANDOFF_SCHEMA_DIR": str(schemas)}, role="api,delivery")
    router = api.sibling("router")
    api.launch()
    router.launch()
    try:
        api.wait_ready()
        router.wait_ready()
        def reload_the_router() -> None:
            # Every process reloads its policy (docs/operations.md): SIGHUP.
            assert router.proc is not None
            router.proc.send_signal(signal.SIGHUP)
            eventually(lambda: "SIGHUP: policy version" in router.logs(), timeout=15,
                       message=lambda: f"the router never reloaded:\n{router.logs()}")

        add_and_publish(api, policy, schemas, "registry", reload_the_router)
    finally:
        api.stop()
        router.stop()


@pytest.mark.slow
def test_a_broken_schema_file_refuses_the_reload_naming_the_file(tmp_path):
    policy, schemas = state_install(tmp_path)
    broker = BrokerProcess(data_dir=tmp_path / "data", policy_dir=policy,
                           env={"HANDOFF_SCHEMA_DIR": str(schemas)}).start()
    try:
        (schemas / "sud_discharge.avsc").write_text('{"type": "record",\n "name": ')
        admin = Client(broker.url, KEYS["admin"])
        response = admin.http.post("/v1/admin/policy:reload")
        admin.close()
        assert response.status_code == 422
        assert "sud_discharge.avsc:2" in response.text
    finally:
        broker.stop()
