"""`/docs` works without a network: the page names no other host, every asset it names
is served by the broker from the installed package, and the document it loads declares
the security schemes its Authorize button offers."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.api.docs_ui import ASSETS
from broker.bootstrap import build_broker
from broker.config import load_settings
from tests.e2e.harness import DEMO


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    settings = load_settings(policy_dir=DEMO / "policy", keys_file=DEMO / "keys.yaml",
                             data_dir=tmp_path_factory.mktemp("docs") / "data")
    broker = build_broker(settings, router_thread=False)
    try:
        with TestClient(create_app(broker.api)) as test_client:
            yield test_client
    finally:
        broker.stop()


def test_docs_name_no_other_host_and_every_asset_is_served(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    named = re.findall(r"""(?:src|href)="([^"]+)"|url: '([^']+)'""", page.text)
    urls = [a or b for a, b in named]
    assert len(urls) == 4, urls    # stylesheet, icon, script, the OpenAPI document
    assert not [u for u in urls if "//" in u], "the page names another host"
    assert '"validatorUrl": null' in page.text     # no badge fetched from the validator
    kinds = {}
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200 and answer.content, url
        kinds[url.rsplit(".", 1)[-1]] = answer.headers["content-type"]
    assert kinds["js"].startswith(("text/javascript", "application/javascript"))
    assert kinds["css"].startswith("text/css")
    assert kinds["json"].startswith("application/json")


def test_the_vendored_swagger_ui_names_its_source_and_license():
    readme = " ".join((ASSETS / "README.md").read_text().split())
    assert "swagger-ui-dist" in readme and "Apache License 2.0" in readme
    assert "Apache License" in (ASSETS / "LICENSE").read_text()


def test_the_authorize_button_takes_an_api_key_either_way(client):
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert {name: s["scheme"] for name, s in schemes.items()} == {"bearer": "bearer",
                                                                  "basic": "basic"}
    publish = doc["paths"]["/v1/events/birth"]["post"]
    assert publish["security"] == [{"bearer": []}, {"basic": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
