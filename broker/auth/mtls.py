"""Mutual TLS: the verified client certificate of a connection, handed to the app.

uvicorn verifies client certificates when given a CA bundle and `ssl.CERT_REQUIRED`, but
it does not put the peer certificate into the ASGI scope. `tls_protocol` wraps uvicorn's
HTTP protocol so each connection's app sees the ASGI TLS extension
(`scope["extensions"]["tls"]`) with `client_cert_name` (the subject, RFC 4514 style) and
`handoff_client_names`: the certificate's common names and subject alternative names,
which the keys file's `mtls_subject:` entries map to an agency.

Behind a TLS-terminating reverse proxy, terminate mutual TLS at the proxy instead and
let it connect to the broker over mutual TLS with its own certificate; docs/security.md
explains why a forwarded-certificate header is not trusted.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from broker.errors import ConfigError

TLS_NAMES = "handoff_client_names"


def certificate_names(peercert: dict[str, Any]) -> list[str]:
    """The common names, then the DNS, URI and e-mail alternative names, of a certificate
    as `ssl.SSLSocket.getpeercert()` decodes it."""
    names: list[str] = []
    for rdn in peercert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                names.append(str(value))
    for kind, value in peercert.get("subjectAltName", ()):
        if kind in ("DNS", "URI", "email"):
            names.append(str(value))
    return names


def subject_text(peercert: dict[str, Any]) -> str:
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}
    parts = [f"{short.get(attr, attr)}={value}"
             for rdn in reversed(peercert.get("subject", ())) for attr, value in rdn]
    return ",".join(parts)


class _WithClientCertificate:
    """The app, seeing one connection's client certificate in every request's scope."""

    def __init__(self, app: ASGIApp, peercert: dict[str, Any]) -> None:
        self.app = app
        self.tls = {"client_cert_name": subject_text(peercert), "client_cert_error": None,
                    TLS_NAMES: certificate_names(peercert)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = {**extensions.get("tls", {}), **self.tls}
        await self.app({**scope, "extensions": extensions}, receive, send)


def tls_protocol() -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol class, extended to pass the client certificate on."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class ClientCertificateProtocol(base):
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            peercert = transport.get_extra_info("peercert")
            if peercert:
                app: ASGIApp = self.app  # type: ignore[has-type]
                self.app = _WithClientCertificate(app, peercert)

    return ClientCertificateProtocol


def client_names(scope: Scope) -> list[str]:
    """The verified client certificate's names for this request, if any."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    names = tls.get(TLS_NAMES)
    return list(names) if names else []


def uvicorn_tls_options(cert: Path | None, key: Path | None, client_ca: Path | None
                        ) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config`: HTTPS, and mutual TLS with a client CA."""
    if cert is None and key is None and client_ca is None:
        return {}
    if cert is None or key is None:
        raise ConfigError("HTTPS needs both api.tls_cert and api.tls_key (--tls-cert, "
                          "--tls-key)")
    for path in (cert, key, client_ca):
        if path is not None and not path.is_file():
            raise ConfigError(f"{path}: TLS file not found")
    options: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if client_ca is not None:
        options.update(ssl_ca_certs=str(client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED,
                       http=tls_protocol())
    return options
