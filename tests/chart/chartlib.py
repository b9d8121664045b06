"""Offline rendering helpers for the chart tests (Helm's engine via helm-python-sdk)."""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
import helm_python as helm

ROOT = Path(__file__).resolve().parents[2]
REDMUX_CHART = ROOT / "charts" / "redmux"
PAAS_CHART = ROOT / "charts" / "redis-paas"
EXAMPLE = REDMUX_CHART / "examples" / "nodeport-36379.yaml"
DEPLOY_FILE = ROOT / "deploy" / "redmux.yaml"
DEPLOY_RELEASE = "redmux"
DEPLOY_NAMESPACE = "redis"

DEPLOY_HEADER = """\
# redmux without Helm: `kubectl apply -n <namespace> -f deploy/redmux.yaml`.
# GENERATED from charts/redmux with charts/redmux/examples/nodeport-36379.yaml
# (release "redmux"); do not edit. Regenerate: python3 tests/chart/render_deploy.py
# Create the Secret "redmux-clients" (keys admin, app, readonly) first; the Redis password is
# read from redis-ha's Secret "instance01-redis-ha" (key "auth").
"""


def deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_values(*files: Path, overrides: dict | None = None) -> dict:
    values: dict = {}
    for f in files:
        values = deep_merge(values, yaml.safe_load(Path(f).read_text()) or {})
    if overrides:
        values = deep_merge(values, overrides)
    return values


def umbrella_dir() -> Path:
    """A copy of charts/redis-paas with charts/redmux in its charts/ folder, the way
    `helm dependency update` would lay it out, minus redis-ha (no network here)."""
    tmp = Path(tempfile.mkdtemp(prefix="redis-paas-"))
    dest = tmp / "redis-paas"
    shutil.copytree(PAAS_CHART, dest, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    shutil.copytree(REDMUX_CHART, dest / "charts" / "redmux", ignore=shutil.ignore_patterns("examples"))
    return dest


def render(chart_dir: Path, values: dict | None = None, *, name: str = "redmux",
           namespace: str = "redis") -> dict[str, str]:
    """Template path -> rendered text (schema-checked, as `helm template` does)."""
    chart = helm.Chart.load(str(chart_dir))
    return chart.render(values or {}, name=name, namespace=namespace, is_install=True)


def manifests_text(rendered: dict[str, str]) -> str:
    """The manifests as one multi-document YAML stream, ordered by template path."""
    parts = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in rendered[path].split("\n---\n"):
            body = doc.strip("\n")
            if body.strip() and any(not l.lstrip().startswith("#") for l in body.splitlines() if l.strip()):
                parts.append(f"---\n# Source: {path}\n{body}\n")
    return "".join(parts)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifests_text(rendered)) if d]


def notes(rendered: dict[str, str]) -> str:
    return "".join(v for k, v in rendered.items() if k.endswith("NOTES.txt"))


def deploy_render() -> str:
    rendered = render(REDMUX_CHART, load_values(EXAMPLE), name=DEPLOY_RELEASE,
                      namespace=DEPLOY_NAMESPACE)
    return DEPLOY_HEADER + manifests_text(rendered)
