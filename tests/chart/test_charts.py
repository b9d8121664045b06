"""Offline tests of charts/redmux, charts/redis-paas and deploy/ (no cluster, no network)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import helm_python as helm

from chartlib import (DEPLOY_FILE, EXAMPLE, PAAS_CHART, REDMUX_CHART, ROOT, deploy_render,
                      load_values, notes, objects, render, umbrella_dir)

KUBE_VERSION = "1.33.0"

INLINE = {
    "kind": "DaemonSet",
    "redis": {"password": "redis-Pa55-inline", "user": "proxy"},
    "sentinel": {"password": "sentinel-Pa55-inline"},
    "auth": {"clients": [
        {"mode": "admin", "password": "client-Pa55-admin"},
        {"mode": "read", "anonymous": True, "readKeyPrefix": ["pub:"]},
        {"mode": "write", "existingSecret": "app-secret", "secretKey": "pw", "writeKeyPrefix": ["app:"]},
    ]},
    "metrics": {"serviceMonitor": {"enabled": True}},
    "networkPolicy": {"egress": {"enabled": True}},
    "clientAccess": {"cidrs": ["10.1.0.0/16"], "from": [{"podSelector": {"matchLabels": {"role": "client"}}}]},
    "proxy": {"extraAllow": ["10.244.0.0/16"], "clientTimeout": "1500ms"},
    "sentinels": ["sentinel-a.example:26379", "10.0.0.5:26379"],
}
INLINE_SECRETS = ["redis-Pa55-inline", "sentinel-Pa55-inline", "client-Pa55-admin"]

UMBRELLA_OFF = {"redis-ha": {"enabled": False}}

CASES = {
    "redmux-default": (REDMUX_CHART, {}),
    "redmux-example": (REDMUX_CHART, load_values(EXAMPLE)),
    "redmux-inline": (REDMUX_CHART, INLINE),
    "redmux-hard-antiaffinity": (REDMUX_CHART, {"podAntiAffinity": "hard", "preStopSleepSeconds": 3,
                                                 "redisHa": {"sentinelService": "headless", "namespace": "data",
                                                             "sentinelAuth": True}}),
    "redis-paas": (None, UMBRELLA_OFF),
}


@pytest.fixture(scope="session")
def paas_dir() -> Path:
    return umbrella_dir()


def case_render(name: str, paas_dir: Path) -> dict[str, str]:
    chart, values = CASES[name]
    return render(chart or paas_dir, values, name="redmux" if chart else "paas")


@pytest.fixture(scope="session", params=sorted(CASES))
def rendered(request, paas_dir):
    return request.param, case_render(request.param, paas_dir)


def of_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def workloads(objs):
    return [o for o in objs if o["kind"] in ("Deployment", "DaemonSet")]


def config_toml(objs) -> tuple[str, dict]:
    cms = [o for o in of_kind(objs, "ConfigMap") if "redmux.toml" in o.get("data", {})]
    assert len(cms) == 1
    text = cms[0]["data"]["redmux.toml"]
    return text, tomllib.loads(text)


# ---------------------------------------------------------------- lint

def lint_errors(path, values):
    report = helm.lint(str(path), values, strict=True, kube_version="v" + KUBE_VERSION)
    return [m for m in report["messages"] if m["severity"] >= 2]


@pytest.mark.parametrize("values", [{}, "example", INLINE], ids=["default", "example", "inline"])
def test_helm_lint_redmux(values):
    if values == "example":
        values = load_values(EXAMPLE)
    assert lint_errors(REDMUX_CHART, values) == []


def test_helm_lint_redis_paas(paas_dir):
    problems = lint_errors(paas_dir, UMBRELLA_OFF)
    # redis-ha is fetched by `helm dependency update`, which needs network; nothing else may fail.
    rest = [m for m in problems if "missing these dependencies: redis-ha" not in m["error"]]
    assert rest == []


# ---------------------------------------------------------------- Kubernetes schemas

def test_objects_validate_strict(rendered):
    name, out = rendered
    objs = objects(out)
    assert objs, name
    for obj in objs:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            spec = obj["spec"]
            assert spec["endpoints"] and spec["selector"]["matchLabels"]
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_every_object_named_and_labelled(rendered):
    name, out = rendered
    for obj in objects(out):
        meta = obj["metadata"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"]) and len(meta["name"]) <= 63
        assert "namespace" not in meta, "manifests must follow the release namespace"
        assert meta["labels"]["app.kubernetes.io/name"] == "redmux"


# ---------------------------------------------------------------- wiring

def pod_of(objs):
    (wl,) = workloads(objs)
    return wl, wl["spec"]["template"]


def test_selectors_match_pod_labels(rendered):
    name, out = rendered
    objs = objects(out)
    wl, tpl = pod_of(objs)
    labels = tpl["metadata"]["labels"]
    assert wl["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for svc in of_kind(objs, "Service"):
        assert svc["spec"]["selector"].items() <= labels.items(), svc["metadata"]["name"]
    for np in of_kind(objs, "NetworkPolicy"):
        assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    for pdb in of_kind(objs, "PodDisruptionBudget"):
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    services = of_kind(objs, "Service")
    for sm in of_kind(objs, "ServiceMonitor"):
        sel = sm["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if sel.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert {e["port"] for e in sm["spec"]["endpoints"]} <= ports


def container_ports(tpl):
    (c,) = tpl["spec"]["containers"]
    return {p["name"]: p["containerPort"] for p in c["ports"]}


def test_ports_wired(rendered):
    name, out = rendered
    objs = objects(out)
    _, tpl = pod_of(objs)
    ports = container_ports(tpl)
    _, cfg = config_toml(objs)
    assert cfg["bind"].endswith(f":{ports['redis']}")
    assert cfg["metrics"]["bind"].endswith(f":{ports['metrics']}")
    for svc in of_kind(objs, "Service"):
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports, (svc["metadata"]["name"], p)
    for np in of_kind(objs, "NetworkPolicy"):
        for rule in np["spec"]["ingress"]:
            for p in rule["ports"]:
                assert p["port"] in ports
    (c,) = tpl["spec"]["containers"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == "metrics"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["args"] == ["--config", "/etc/redmux/redmux.toml"]
    (mount,) = c["volumeMounts"]
    assert mount["mountPath"] == "/etc/redmux"
    cm_names = {o["metadata"]["name"] for o in of_kind(objs, "ConfigMap")}
    (vol,) = tpl["spec"]["volumes"]
    assert vol["configMap"]["name"] in cm_names


def test_security_and_lifecycle(rendered):
    name, out = rendered
    objs = objects(out)
    _, tpl = pod_of(objs)
    spec = tpl["spec"]
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert c["resources"]["requests"]
    assert spec["terminationGracePeriodSeconds"] > 30
    assert re.fullmatch(r"[0-9a-f]{64}", tpl["metadata"]["annotations"]["checksum/config"])


def test_checksum_follows_config():
    a = objects(render(REDMUX_CHART, {}))
    b = objects(render(REDMUX_CHART, {"proxy": {"maxClients": 5000}}))
    ann = lambda objs: pod_of(objs)[1]["metadata"]["annotations"]["checksum/config"]  # noqa: E731
    assert ann(a) != ann(b)


# ---------------------------------------------------------------- example deployment

def test_example_nodeport_daemonset():
    out = render(REDMUX_CHART, load_values(EXAMPLE))
    objs = objects(out)
    (np_svc,) = [s for s in of_kind(objs, "Service") if s["spec"]["type"] == "NodePort"]
    assert np_svc["spec"]["externalTrafficPolicy"] == "Local"
    assert [p["nodePort"] for p in np_svc["spec"]["ports"]] == [36379]
    wl, tpl = pod_of(objs)
    assert wl["kind"] == "DaemonSet"
    assert "node-role.kubernetes.io/control-plane" in tpl["spec"]["nodeSelector"]
    assert any(t["key"] == "node-role.kubernetes.io/control-plane" for t in tpl["spec"]["tolerations"])
    _, cfg = config_toml(objs)
    assert cfg["allow"] == ["192.168.22.0/24"]
    assert cfg["sentinel_pool"]["sentinels"] == [
        f"instance01-redis-ha-announce-{i}:26379" for i in range(3)]
    assert [g["name"] for g in cfg["sentinel_pool"]["group"]] == ["mymaster"]
    (netpol,) = of_kind(objs, "NetworkPolicy")
    proxy_rule = [r for r in netpol["spec"]["ingress"] if r["ports"][0]["port"] == "redis"][0]
    assert proxy_rule["from"] == [{"ipBlock": {"cidr": "192.168.22.0/24"}}]
    metrics_rule = [r for r in netpol["spec"]["ingress"] if r["ports"][0]["port"] == "metrics"][0]
    assert metrics_rule["from"], "metrics must be limited to Prometheus"
    egress_peers = [p for r in netpol["spec"]["egress"] for p in r["to"]]
    assert {"podSelector": {"matchLabels": {"app": "redis-ha", "release": "instance01"}}} in egress_peers
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in tpl["spec"]["containers"][0]["env"]}
    assert env["REDMUX_PASSWORD"] == {"name": "instance01-redis-ha", "key": "auth"}
    assert env["REDMUX_AUTH_0_PASSWORD"] == {"name": "redmux-clients", "key": "admin"}
    assert not of_kind(objs, "PodDisruptionBudget")
    text = notes(out)
    assert "36379" in text and "--service-node-port-range" in text and "30000-32767" in text


# ---------------------------------------------------------------- secrets

def test_passwords_only_through_secrets(rendered):
    name, out = rendered
    objs = objects(out)
    _, tpl = pod_of(objs)
    (c,) = tpl["spec"]["containers"]
    env = c.get("env", [])
    for e in env:
        assert "value" not in e, e
        assert set(e["valueFrom"]) == {"secretKeyRef"}
    text, cfg = config_toml(objs)
    # Every placeholder in the file is filled by an env var, and every env var is used.
    placeholders = set(re.findall(r"\$\{([A-Z0-9_]+)\}", text))
    assert placeholders == {e["name"] for e in env}
    for entry in cfg.get("auth", []):
        assert entry["password"] == "" or re.fullmatch(r"\$\{REDMUX_AUTH_\d+_PASSWORD\}", entry["password"])
    pool = cfg["sentinel_pool"]
    assert pool.get("password", "${REDMUX_PASSWORD}") == "${REDMUX_PASSWORD}"
    assert pool.get("sentinel_password", "${REDMUX_SENTINEL_PASSWORD}") == "${REDMUX_SENTINEL_PASSWORD}"
    # Secrets the chart creates hold exactly the keys the pod reads from them.
    own = {s["metadata"]["name"]: s for s in of_kind(objs, "Secret")}
    for e in env:
        ref = e["valueFrom"]["secretKeyRef"]
        if ref["name"] in own:
            assert ref["key"] in own[ref["name"]]["data"]


def test_inline_passwords_stay_out_of_configmaps():
    objs = objects(render(REDMUX_CHART, INLINE))
    for cm in of_kind(objs, "ConfigMap"):
        blob = repr(cm)
        for secret in INLINE_SECRETS:
            assert secret not in blob
    for obj in objs:
        if obj["kind"] != "Secret":
            for secret in INLINE_SECRETS:
                assert secret not in repr(obj), obj["kind"]
    (sec,) = of_kind(objs, "Secret")
    decoded = {base64.b64decode(v).decode() for v in sec["data"].values()}
    assert decoded == set(INLINE_SECRETS)
    _, tpl = pod_of(objs)
    assert "checksum/secret" in tpl["metadata"]["annotations"]
    _, cfg = config_toml(objs)
    assert cfg["auth"][1]["password"] == "" and cfg["auth"][1]["mode"] == "read"
    assert cfg["sentinel_pool"]["user"] == "proxy"
    assert cfg["sentinel_pool"]["sentinels"] == INLINE["sentinels"]
    assert cfg["allow"] == ["10.1.0.0/16", "10.244.0.0/16"]
    assert cfg["client_timeout"] == "1500ms"
    assert of_kind(objs, "ServiceMonitor")


def test_redis_ha_secret_names():
    objs = objects(render(REDMUX_CHART, {"redisHa": {"releaseName": "instance01", "auth": True,
                                                       "sentinelAuth": True}}))
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod_of(objs)[1]["spec"]["containers"][0]["env"]}
    assert env == {
        "REDMUX_PASSWORD": {"name": "instance01-redis-ha", "key": "auth"},
        "REDMUX_SENTINEL_PASSWORD": {"name": "instance01-redis-ha-sentinel", "key": "sentinel-password"},
    }
    objs = objects(render(REDMUX_CHART, {"redisHa": {"releaseName": "my-redis-ha", "auth": True,
                                                       "existingSecret": "mine", "authKey": "pw"}}))
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod_of(objs)[1]["spec"]["containers"][0]["env"]}
    assert env == {"REDMUX_PASSWORD": {"name": "mine", "key": "pw"}}
    _, cfg = config_toml(objs)
    # redis-ha names a release that already contains "redis-ha" just by the release name.
    assert cfg["sentinel_pool"]["sentinels"][0] == "my-redis-ha-announce-0:26379"


# ---------------------------------------------------------------- TOML keys

TOP_KEYS = {"bind", "worker_threads", "log_level", "log_format", "allow", "max_clients",
            "client_timeout", "proxy_protocol", "metrics", "auth", "sentinel_pool"}
POOL_KEYS = {"databases", "hash", "hash_tag", "distribution", "master_read_priority",
             "static_replica_read_priority", "dynamic_replica_read_priority", "refresh_interval",
             "server_timeout", "server_failure_limit", "server_retry_timeout", "keep_alive", "user",
             "password", "sentinel_user", "sentinel_password", "sentinels", "group"}


def test_toml_uses_known_keys(rendered):
    name, out = rendered
    _, cfg = config_toml(objects(out))
    assert set(cfg) <= TOP_KEYS
    assert set(cfg["sentinel_pool"]) <= POOL_KEYS
    assert set(cfg["metrics"]) == {"bind"}
    for entry in cfg.get("auth", []):
        assert set(entry) == {"password", "mode", "read_key_prefix", "write_key_prefix"}
    assert cfg["sentinel_pool"]["sentinels"]
    assert cfg["sentinel_pool"]["group"]


# ---------------------------------------------------------------- schema

BAD_VALUES = {
    "nodePort too high": {"service": {"nodePort": {"enabled": True, "nodePort": 70000}}},
    "nodePort zero": {"service": {"nodePort": {"enabled": True, "nodePort": 0}}},
    "unknown top-level key": {"replicas": 3},
    "unknown nested key": {"proxy": {"prot": 1}},
    "bad auth mode": {"auth": {"clients": [{"mode": "superuser", "password": "x"}]}},
    "auth without password": {"auth": {"clients": [{"mode": "read"}]}},
    "auth with two sources": {"auth": {"clients": [{"mode": "read", "password": "x", "anonymous": True}]}},
    "bad kind": {"kind": "StatefulSet"},
    "bad cidr": {"clientAccess": {"cidrs": ["192.168.22.0"]}},
    "bad log format": {"proxy": {"logFormat": "xml"}},
    "bad duration": {"pool": {"refreshInterval": "1 minute"}},
    "bad traffic policy": {"service": {"nodePort": {"externalTrafficPolicy": "Nearest"}}},
    "no groups": {"pool": {"groups": []}},
    "bad sentinel address": {"sentinels": ["no-port"]},
    "bad serviceMonitor switch": {"metrics": {"serviceMonitor": {"enabled": "yes"}}},
    "negative grace": {"terminationGracePeriodSeconds": 0},
}


@pytest.mark.parametrize("values", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_schema_rejects(values):
    with pytest.raises(helm.HelmValuesError):
        render(REDMUX_CHART, values)


def test_umbrella_schema_rejects(paas_dir):
    with pytest.raises(helm.HelmError):
        render(paas_dir, {"redis-ha": {"enabled": False}, "redmux": {"kind": "Pod"}}, name="paas")
    with pytest.raises(helm.HelmError):
        render(paas_dir, {"redis-ha": {"enabled": False}, "proxy": {}}, name="paas")


# ---------------------------------------------------------------- umbrella

def test_umbrella_wires_redis_ha(paas_dir):
    objs = objects(render(paas_dir, UMBRELLA_OFF, name="paas"))
    assert {o["kind"] for o in objs} >= {"Deployment", "ConfigMap", "Service"}
    _, cfg = config_toml(objs)
    assert cfg["sentinel_pool"]["sentinels"] == [f"paas-redis-ha-announce-{i}:26379" for i in range(3)]
    paas_values = load_values(PAAS_CHART / "values.yaml")
    assert [g["name"] for g in cfg["sentinel_pool"]["group"]] == [
        paas_values["redis-ha"]["redis"]["masterGroupName"]]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod_of(objs)[1]["spec"]["containers"][0]["env"]}
    rha = paas_values["redis-ha"]
    assert env["REDMUX_PASSWORD"] == {"name": rha["existingSecret"], "key": rha["authKey"]}
    assert env["REDMUX_SENTINEL_PASSWORD"] == {"name": rha["sentinel"]["existingSecret"],
                                               "key": rha["sentinel"]["authKey"]}
    assert paas_values["redmux"]["redisHa"]["replicas"] == rha["replicas"]
    # redis-ha's ingress rule admits exactly redmux's pod labels (after its own tpl of the release).
    sel = rha["networkPolicy"]["ingressRules"][0]["selectors"][0]["podSelector"]["matchLabels"]
    labels = pod_of(objs)[1]["metadata"]["labels"]
    assert {k: v.replace("{{ .Release.Name }}", "paas") for k, v in sel.items()}.items() <= labels.items()


def test_no_vendored_charts():
    tracked = subprocess.run(["git", "ls-files", "charts", "deploy"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.splitlines()
    assert not [f for f in tracked if f.startswith("charts/redis-paas/charts/")]
    assert not [f for f in tracked if f.endswith((".tgz", ".tar.gz"))]


# ---------------------------------------------------------------- deploy/

def test_deploy_manifests_are_fresh():
    assert DEPLOY_FILE.read_text() == deploy_render(), (
        "deploy/redmux.yaml differs from a fresh render: run python3 tests/chart/render_deploy.py")


# ---------------------------------------------------------------- redmux --check

def redmux_bin() -> Path:
    if os.environ.get("REDMUX_BIN"):
        path = Path(os.environ["REDMUX_BIN"])
        assert path.is_file(), f"REDMUX_BIN={path} does not exist"
        return path
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    if not target.is_absolute():
        target = ROOT / target
    path = target / "debug" / "redmux"
    if not path.is_file():
        build = subprocess.run(["cargo", "build", "--bin", "redmux"], cwd=ROOT,
                               capture_output=True, text=True, timeout=1800)
        assert build.returncode == 0, f"cargo build failed:\n{build.stderr[-4000:]}"
    assert path.is_file(), f"redmux binary not found at {path} (set REDMUX_BIN or build it)"
    return path


PLACEHOLDER_ENV = {"REDMUX_PASSWORD": 'pw"with\\quotes', "REDMUX_SENTINEL_PASSWORD": "s-pw",
                   **{f"REDMUX_AUTH_{i}_PASSWORD": f"client-{i}" for i in range(8)}}


def run_check(path: Path, env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDMUX_")}
    env.update(env_extra)
    return subprocess.run([str(redmux_bin()), "--check", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, env=env)


def test_rendered_config_passes_redmux_check(rendered, tmp_path):
    name, out = rendered
    text, _ = config_toml(objects(out))
    cfg = tmp_path / "redmux.toml"
    cfg.write_text(text)
    result = run_check(cfg, PLACEHOLDER_ENV)
    assert result.returncode == 0, f"redmux --check rejected the {name} config:\n{result.stdout}{result.stderr}"


def test_unset_placeholder_fails_redmux_check(tmp_path):
    text, _ = config_toml(objects(render(REDMUX_CHART, load_values(EXAMPLE))))
    cfg = tmp_path / "redmux.toml"
    cfg.write_text(text)
    env = dict(PLACEHOLDER_ENV)
    del env["REDMUX_PASSWORD"]
    result = run_check(cfg, env)
    assert result.returncode != 0, "an unset ${VAR} placeholder must make redmux --check fail"
    assert "REDMUX_PASSWORD" in result.stdout + result.stderr


def test_compose_config_passes_redmux_check(tmp_path):
    result = run_check(ROOT / "docker" / "redmux.compose.toml",
                       {"REDMUX_PASSWORD": "x", "REDMUX_SENTINEL_PASSWORD": "y",
                        "REDMUX_AUTH_0_PASSWORD": "z"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_redmux_check_rejects_broken_config(tmp_path):
    # Guards the tests above: a binary that accepts anything would make them pass vacuously.
    cfg = tmp_path / "broken.toml"
    cfg.write_text('bind = "not an address"\n[sentinel_pool]\nhash = "md5"\n')
    result = run_check(cfg, PLACEHOLDER_ENV)
    assert result.returncode != 0, "redmux --check accepted a broken config"
