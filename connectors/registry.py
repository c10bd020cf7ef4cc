"""Which connector class runs a config of a given `type`.

Built-in connectors are listed in `BUILTINS` (type -> "module:Class", imported only when
used, so a broker without PostgreSQL connectors never imports psycopg). Third-party
packages add connectors through the entry-point group `handoff.connectors`; the entry
point's name is the type and its value the connector class:

    [project.entry-points."handoff.connectors"]
    acme_cms = "handoff_acme_cms.connector:AcmeCmsSource"

A built-in type cannot be replaced by an entry point of the same name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from connectors.base import ConnectorConfig, SinkConnector, SourceConnector
from connectors.errors import ConnectorConfigError

ENTRY_POINT_GROUP = "handoff.connectors"

BUILTINS: dict[str, str] = {
    "file_drop": "connectors.file_drop:FileDropSource",
    "postgres_outbox": "connectors.postgres_source:PostgresSource",
    "postgres_sink": "connectors.postgres_sink:PostgresSink",
    "fhir_r4": "connectors.fhir_source:FhirSource",
}
"""Every built-in connector type. Add yours here, one line."""

ConnectorClass = type[SourceConnector[Any]] | type[SinkConnector[Any]]


def _import(target: str, what: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConnectorConfigError(
            f"connector type '{what}': cannot load {target} ({type(exc).__name__}: {exc}); "
            "is its package installed?"
        ) from exc


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_types() -> list[str]:
    """Every connector type this installation can run: built-ins and entry points."""
    return sorted(set(BUILTINS) | set(_entry_points()))


def connector_class(connector_type: str) -> ConnectorClass:
    """The class registered for `connector_type`; `ConnectorConfigError` if none is."""
    if connector_type in BUILTINS:
        cls = _import(BUILTINS[connector_type], connector_type)
    else:
        ep = _entry_points().get(connector_type)
        if ep is None:
            raise ConnectorConfigError(
                f"unknown connector type '{connector_type}'; available: "
                f"{', '.join(available_types())}"
            )
        try:
            cls = ep.load()
        except (ImportError, AttributeError) as exc:
            raise ConnectorConfigError(
                f"connector type '{connector_type}': cannot load entry point {ep.value} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    if not (isinstance(cls, type) and issubclass(cls, SourceConnector | SinkConnector)):
        raise ConnectorConfigError(
            f"connector type '{connector_type}' is registered as {cls!r}, which is not a "
            "SourceConnector or SinkConnector subclass"
        )
    if not issubclass(getattr(cls, "config_model", object), ConnectorConfig):
        raise ConnectorConfigError(
            f"connector type '{connector_type}': {cls.__name__}.config_model must be a "
            "ConnectorConfig subclass"
        )
    return cls


def parse_config(raw: Mapping[str, Any], where: str = "") -> ConnectorConfig:
    """Validate one connector's settings (a mapping with at least `type` and `name`)
    against its class's config model. Errors name the connector and the field."""
    prefix = f"{where}: " if where else ""
    connector_type = raw.get("type")
    if not isinstance(connector_type, str):
        raise ConnectorConfigError(f"{prefix}each connector needs a 'type' "
                                   f"(one of {', '.join(available_types())})")
    try:
        cls = connector_class(connector_type)
    except ConnectorConfigError as exc:
        raise ConnectorConfigError(f"{prefix}{exc}") from exc
    try:
        return cls.config_model.model_validate(dict(raw))
    except ValidationError as exc:
        name = raw.get("name", "?")
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<config>'}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConnectorConfigError(f"{prefix}connector '{name}': {problems}") from exc


def build_connector(config: ConnectorConfig) -> SourceConnector[Any] | SinkConnector[Any]:
    """A fresh, unstarted connector instance for a validated config."""
    return connector_class(config.type)(config)
