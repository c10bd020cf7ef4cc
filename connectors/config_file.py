"""The connectors file: which connectors a broker runs, as YAML.

    connectors:
      - name: county-general-births
        type: file_drop
        agency: county-general
        folder: /srv/drop/county-general       # relative paths are relative to this file
        mapping: mappings/births.yaml
      - name: cms-outbox
        type: postgres_outbox
        agency: cw-hotline
        dsn: "host=db.example.org dbname=cms user=handoff"

`handoff connect run FILE` runs them; `handoff serve` runs the file named by the setting
`connectors_file` (`HANDOFF_CONNECTORS_FILE`). Errors name the file, the connector and
the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from connectors.base import ConnectorConfig
from connectors.errors import ConnectorConfigError
from connectors.registry import parse_config


def load_connectors_file(path: Path) -> list[ConnectorConfig]:
    """Read, validate and return every connector's config from `path`."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConnectorConfigError(f"{path}: cannot read connectors file: "
                                   f"{exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConnectorConfigError(f"{path}{line}: invalid YAML") from exc
    except RecursionError:
        raise ConnectorConfigError(f"{path}: invalid YAML: nested too deeply") from None
    entries = doc.get("connectors") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ConnectorConfigError(f"{path}: expected a mapping with a 'connectors' list")
    configs: list[ConnectorConfig] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConnectorConfigError(f"{path}: connectors[{index}] must be a mapping")
        config = parse_config(entry, where=f"{path}: connectors[{index}]")
        configs.append(resolve_paths(config, path.parent))
    names = [c.name for c in configs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConnectorConfigError(f"{path}: connector names must be unique; "
                                   f"{', '.join(twice)} appear more than once")
    return configs


def resolve_paths(config: ConnectorConfig, base: Path) -> ConnectorConfig:
    """The config with every relative `Path` setting made relative to `base`."""
    updates: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, Path) and not value.is_absolute():
            updates[name] = (base / value).resolve()
    return config.model_copy(update=updates) if updates else config
