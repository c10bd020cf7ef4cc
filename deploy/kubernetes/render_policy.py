#!/usr/bin/env python3
"""Render a policy bundle folder as the `handoff-policy` ConfigMap and its volume patch.

    python deploy/kubernetes/render_policy.py examples/demo/policy

writes, beside this script (or into `--out`):

- `policy-bundle.yaml`: a ConfigMap holding every `*.yaml` file of the bundle. ConfigMap
  keys cannot contain `/`, so `agreements/hv-nfp.yaml` is stored as
  `agreements__hv-nfp.yaml`.
- `policy-volume.yaml`: a kustomize patch for every Handoff Deployment that maps those
  keys back to their folders in the `policy` volume, and stamps the bundle version on the
  pod template, so that applying a changed bundle rolls the pods onto it.

The bundle is loaded and checked first, as the broker would; a bundle with problems is
refused (exit 1) and nothing is written. Only the standard library, PyYAML and the pure
`policy` and `schemas` packages are used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from policy import BundleError, load_bundle
from schemas.catalog import SchemaCatalog

HERE = Path(__file__).resolve().parent
CONFIGMAP_NAME = "handoff-policy"
VERSION_ANNOTATION = "handoff/policy-version"
KEY_SEPARATOR = "__"
# A ConfigMap is stored in etcd, whose objects are capped at about 1 MiB.
MAX_CONFIGMAP_BYTES = 900 * 1024
LABELS = {"app.kubernetes.io/name": "handoff", "app.kubernetes.io/part-of": "handoff"}


class _Literal(str):
    """A string written as a YAML block literal, so policy files stay readable."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def config_key(relative: str) -> str:
    """The ConfigMap key for a file of the bundle (`agreements/x.yaml` → `agreements__x.yaml`)."""
    return relative.replace("/", KEY_SEPARATOR)


def bundle_files(folder: Path) -> dict[str, str]:
    """Every YAML file of the bundle by its path relative to `folder` (POSIX form)."""
    return {
        path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(folder.rglob("*.yaml"))
    }


def render(folder: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The ConfigMap, the Deployment patch and the bundle version for `folder`.

    Raises `BundleError` if the bundle does not load, `ValueError` if it cannot be a
    ConfigMap (a file name that is not a valid key, or too large).
    """
    version = load_bundle(folder, SchemaCatalog.load()).version
    files = bundle_files(folder)
    data: dict[str, str] = {}
    for relative, text in files.items():
        key = config_key(relative)
        if key in data or not all(c.isalnum() or c in "-._" for c in key):
            raise ValueError(f"{relative}: cannot be stored as ConfigMap key {key!r}")
        data[key] = _Literal(text) if "\n" in text.rstrip("\n") else text
    size = sum(len(k) + len(v.encode()) for k, v in data.items())
    if size > MAX_CONFIGMAP_BYTES:
        raise ValueError(f"the bundle is {size} bytes; a ConfigMap holds about 1 MiB")
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP_NAME,
            "namespace": "handoff",
            "labels": dict(LABELS),
            "annotations": {VERSION_ANNOTATION: version},
        },
        "data": data,
    }
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "handoff-all-roles"},
        "spec": {"template": {
            "metadata": {"annotations": {VERSION_ANNOTATION: version}},
            "spec": {"volumes": [{
                "name": "policy",
                "configMap": {
                    "name": CONFIGMAP_NAME,
                    "items": [{"key": config_key(rel), "path": rel} for rel in files],
                },
            }]},
        }},
    }
    return configmap, patch, version


def _write(path: Path, header: str, document: dict[str, Any]) -> None:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100,
                     allow_unicode=True)
    path.write_text(header + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the policy bundle folder")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="where to write the two files (default: beside this script)")
    args = parser.parse_args(argv)
    try:
        configmap, patch, version = render(args.folder)
    except BundleError as exc:
        print(f"render_policy: the bundle is refused ({len(exc.problems)} problem(s)):",
              file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"render_policy: {exc}", file=sys.stderr)
        return 1
    source = args.folder.as_posix()
    header = (f"# Generated by deploy/kubernetes/render_policy.py from {source}: "
              "regenerate, do not edit.\n")
    _write(args.out / "policy-bundle.yaml", header, configmap)
    _write(args.out / "policy-volume.yaml", header +
           "# Applied by kustomization.yaml to every Handoff Deployment.\n", patch)
    print(f"policy version {version}: {len(configmap['data'])} files in "
          f"{args.out / 'policy-bundle.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
