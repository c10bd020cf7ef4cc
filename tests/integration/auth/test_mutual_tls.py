"""Mutual TLS against a real `handoff serve`: client certificates made in the test with
`cryptography`, mapped to agencies by the keys file's `mtls_subject` entries."""

from __future__ import annotations

import ipaddress
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.audit import SqliteAuditStore
from broker.audit.paths import audit_db_path
from broker.audit.store import AuditFilter
from tests.demo_broker import demo_birth
from tests.e2e.harness import DEMO, REPO, free_port
from tests.waiting import eventually

pytestmark = pytest.mark.slow


@dataclass
class Issued:
    cert: Path
    key: Path


class Authority:
    """A throwaway certificate authority writing PEM files into a folder."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = folder / f"{name}.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, sans: list[x509.GeneralName], client: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client \
            else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dane County"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        stem = self.folder / f"{self.pem.stem}-{common_name}"
        issued = Issued(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return issued


@dataclass
class TlsBroker:
    url: str
    ca: Path
    data_dir: Path
    clients: dict[str, Issued]
    admin_key: str

    def client(self, who: str | None, **headers: str) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca))
        if who is not None:
            issued = self.clients[who]
            context.load_cert_chain(str(issued.cert), str(issued.key))
        return httpx.Client(base_url=self.url, verify=context, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory) -> Iterator[TlsBroker]:
    folder = tmp_path_factory.mktemp("mtls")
    ca = Authority(folder, "handoff-test-ca")
    stranger_ca = Authority(folder, "someone-elses-ca")
    server = ca.issue("localhost", [x509.DNSName("localhost"),
                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                      client=False)
    clients = {
        "county-general": ca.issue("ehr.county-general.example.org",
                                   [x509.DNSName("ehr.county-general.example.org")], True),
        "hv-nfp": ca.issue("nfp-gateway",
                           [x509.UniformResourceIdentifier("spiffe://dane/hv-nfp")], True),
        "privacy-office": ca.issue("audit.privacy-office.example.org",
                                   [x509.DNSName("audit.privacy-office.example.org")], True),
        "unmapped": ca.issue("printer.example.org",
                             [x509.DNSName("printer.example.org")], True),
        "stranger": stranger_ca.issue("ehr.county-general.example.org",
                                      [x509.DNSName("ehr.county-general.example.org")],
                                      True),
    }
    keys = folder / "keys.yaml"
    keys.write_text(
        (DEMO / "keys.yaml").read_text()
        + "  - id: cgh-ehr-cert\n    agency: county-general\n    roles: [publish]\n"
        "    mtls_subject: ehr.county-general.example.org\n"
        "  - id: nfp-gateway-cert\n    agency: hv-nfp\n    roles: [subscribe]\n"
        "    mtls_subject: spiffe://dane/hv-nfp\n"
        "  - id: privacy-office-cert\n    agency: state-privacy-office\n    roles: [auditor]\n"
        "    mtls_subject: audit.privacy-office.example.org\n")
    port = free_port()
    data = folder / "data"
    log = (folder / "broker.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker.cli.main", "serve", "--policy", str(DEMO / "policy"),
         "--data", str(data), "--keys", str(keys), "--port", str(port),
         "--tls-cert", str(server.cert), "--tls-key", str(server.key),
         "--tls-client-ca", str(ca.pem)],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=dict(os.environ))
    admin_key = "hk_demo_state_integration_team_df49e89b614626d742396bb3"
    broker = TlsBroker(f"https://127.0.0.1:{port}", ca.pem, data, clients, admin_key)
    try:
        def ready() -> bool:
            assert proc.poll() is None, (folder / "broker.log").read_text()
            with broker.client("county-general") as c:
                return c.get("/readyz").status_code == 200

        eventually(ready, timeout=30, interval=0.2, ignoring=(httpx.TransportError,),
                   message=lambda: (folder / "broker.log").read_text())
        yield broker
    finally:
        proc.terminate()
        proc.wait(20)


def a_birth() -> dict[str, Any]:
    return demo_birth()


def test_a_mapped_client_certificate_acts_for_its_agency(tls_broker):
    with tls_broker.client("county-general") as hospital:
        published = hospital.post("/v1/events/birth", json=a_birth())
        assert published.status_code == 202, published.text
        # The certificate's entry holds only the publish role.
        assert hospital.get("/v1/subscriptions").status_code == 403
    with tls_broker.client("hv-nfp") as nfp:
        listed = nfp.get("/v1/subscriptions")
        assert listed.status_code == 200
        assert {s["id"] for s in listed.json()["subscriptions"]} >= {"hv-births"}
        assert nfp.post("/v1/events/enrollment", json={}).status_code == 403


def test_an_unmapped_certificate_is_unauthenticated_and_audited(tls_broker):
    with tls_broker.client("unmapped") as printer:
        response = printer.post("/v1/events/birth", json=a_birth())
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    store = SqliteAuditStore(audit_db_path(tls_broker.data_dir), create=False)
    try:
        refusals = list(store.iter_records(AuditFilter(kind="access_refused")))
    finally:
        store.close()
    assert any(r.detail["reason"] == "client certificate not mapped to an agency"
               for r in refusals)


def test_a_bearer_key_of_another_agency_over_a_certificate_is_refused(tls_broker):
    other = "hk_demo_medicaid_b99c7404367f66b5319313bc"
    with tls_broker.client("county-general", Authorization=f"Bearer {other}") as mixed:
        assert mixed.get("/v1/subscriptions").status_code == 401
    # The agency's own key over its certificate works as the key.
    own = "hk_demo_county_general_eb4204b9805f4a9229e98967"
    with tls_broker.client("county-general", Authorization=f"Bearer {own}") as hospital:
        assert hospital.get("/v1/subscriptions").status_code == 200


@pytest.mark.parametrize("who", [None, "stranger"])
def test_no_certificate_or_another_cas_certificate_cannot_connect(tls_broker, who):
    with pytest.raises(httpx.TransportError), tls_broker.client(who) as client:
        client.get("/healthz")


def _console_sign_in(client: httpx.Client, url: str) -> httpx.Response:
    form = client.get("/console/login")
    token = form.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
    return client.post("/console/login", data={"login_token": token, "use_certificate": "1"},
                       headers={"Origin": url}, follow_redirects=False)


def test_an_auditor_certificate_signs_in_to_the_console_without_a_key(tls_broker):
    with tls_broker.client("privacy-office") as office:
        assert "Continue with the certificate" in office.get("/console/login").text
        signed = _console_sign_in(office, tls_broker.url)
        assert signed.status_code == 303, signed.text
        assert "Secure" in signed.headers["set-cookie"]  # over HTTPS, the cookie says so
        page = office.get("/console/map")
        assert page.status_code == 200 and "privacy-office-cert" in page.text
    with tls_broker.client("county-general") as hospital:
        assert "Continue with the certificate" not in hospital.get("/console/login").text
        assert _console_sign_in(hospital, tls_broker.url).status_code == 401
