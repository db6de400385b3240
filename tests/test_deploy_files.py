"""The deployment files (Dockerfile, docker-compose.yaml, deploy/) agree with the gateway they deploy.

No Docker, Kubernetes or Prometheus runs here (CI is offline), so each file is
parsed and checked against the real thing: the commands they run use flags that
`gateway up --help` lists and are run as written against a real gateway, every
probe path answers on it, every metric the dashboard queries is in its /metrics
with the labels queried, the ports line up from EXPOSE to Service, and every
environment variable a config reads is provided where that config is mounted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fnmatch import fnmatch
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import DEFAULT_PORT, ConfigError, load_config

from conftest import CODE_PROMPT, SMALL_TALK, FakeProvider, RunningGateway, free_port, stop, wait_ready

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gateway.json"
ENV_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
TEST_KEY = "gw-deploy-test-key-7f3a"


# -- reading the files ---------------------------------------------------------


def dockerfile(path: Path = REPO / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined, comments dropped."""
    lines: list[str] = []
    for raw in path.read_text().splitlines():
        if raw.strip().startswith("#"):
            continue
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1] + " " + raw.strip()
        elif raw.strip():
            lines.append(raw.strip())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def one(instructions: list[tuple[str, str]], name: str) -> str:
    found = [args for n, args in instructions if n == name]
    assert len(found) == 1, f"expected one {name} in the final stage, found {found}"
    return found[0]


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, args in instructions:
        if name == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def image_command() -> list[str]:
    """ENTRYPOINT + CMD of the image, as the container runs them."""
    stage = final_stage(dockerfile())
    return json.loads(one(stage, "ENTRYPOINT")) + json.loads(one(stage, "CMD"))


def healthcheck_command() -> list[str]:
    args = one(final_stage(dockerfile()), "HEALTHCHECK")
    return json.loads(args.split(" CMD ", 1)[1])


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml_docs(path)
             if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/kubernetes, found {len(found)}"
    return found[0]


def gateway_container() -> dict[str, Any]:
    (container,) = [c for c in k8s("Deployment", "pinning-gateway")["spec"]["template"]["spec"]["containers"]]
    return container


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def gateway_services() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    return {name: svc for name, svc in services.items() if svc.get("build") or "gateway" in str(svc.get("image"))}


def option(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def env_refs(text: str) -> set[str]:
    """The environment variables a config reads (`$VAR` / `${VAR}` values, comments ignored)."""
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and node.strip().startswith("$"):
            refs.update(ENV_REF.findall(node))

    walk(yaml.safe_load(text))
    return refs


def shell_lines(text: str) -> list[str]:
    """Shell commands in a text, also in `#` comments, with backslash continuations joined."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip().lstrip("#").strip()
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1].rstrip() + " " + line
        else:
            lines.append(line)
    return lines


def gateway_key_vars(text: str) -> set[str]:
    """The environment variables a config's gateway keys (auth.keys) come from."""
    keys = (yaml.safe_load(text).get("auth") or {}).get("keys") or []
    return {var for item in keys for var in ENV_REF.findall(str(item.get("key", "")))}


@lru_cache(maxsize=1)
def up_flags() -> frozenset[str]:
    """The options `gateway up --help` lists."""
    out = subprocess.run([sys.executable, "-m", "gateway", "up", "--help"], capture_output=True, text=True, check=True)
    return frozenset(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", out.stdout))


def flags_in(args: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in args if a.startswith("--")}


# -- Dockerfile and .dockerignore -----------------------------------------------


def test_image_is_slim_python_running_as_a_non_root_user():
    stage = final_stage(dockerfile())
    assert one(stage, "FROM").split()[0] == "python:3.11-slim"
    user = one(stage, "USER").split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), f"USER {user}: give a numeric non-root uid"
    names = [name for name, _ in stage]
    assert names.index("USER") < names.index("CMD")
    assert re.search(rf"useradd\b.*--uid {user}\b", one(stage, "RUN")), "the USER uid is not the one useradd creates"
    pod = k8s("Deployment", "pinning-gateway")["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and str(pod["runAsUser"]) == user


def test_image_command_uses_flags_gateway_up_lists_and_serves_on_the_exposed_port():
    command = image_command()
    assert command[:2] == ["gateway", "up"]
    unknown = flags_in(command) - up_flags()
    assert not unknown, f"the Dockerfile's CMD uses flags `gateway up --help` does not list: {sorted(unknown)}"
    port = int(option(command, "--port"))
    assert port == DEFAULT_PORT
    assert option(command, "--host") == "0.0.0.0"
    assert one(final_stage(dockerfile()), "EXPOSE").split("/")[0] == str(port)
    check = " ".join(healthcheck_command())
    assert "urllib.request" in check and f"http://127.0.0.1:{port}/healthz" in check


def test_image_config_is_where_gateway_config_points_and_needs_a_gateway_key():
    stage = final_stage(dockerfile())
    target = env_of(stage)["GATEWAY_CONFIG"]
    copies = [args.split() for name, args in stage if name == "COPY" and not args.startswith("--from")]
    assert [str(DEPLOY.relative_to(REPO) / "config.yaml"), target] in copies
    assert env_refs((DEPLOY / "config.yaml").read_text()) == {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GATEWAY_KEY"}
    with pytest.raises(ConfigError) as refused:
        load_config(DEPLOY / "config.yaml", env={})
    assert any("GATEWAY_KEY is not set" in line for line in refused.value.problems)
    image = load_config(DEPLOY / "config.yaml", env={"GATEWAY_KEY": TEST_KEY})
    bundled = load_config(REPO / "config.yaml", env={})
    assert image.auth_keys == {TEST_KEY: "default"}
    assert [(r.name, r.model) for r in image.routes] == [(r.name, r.model) for r in bundled.routes]
    assert [p.model for p in image.providers] == [p.model for p in bundled.providers]


def ignored_by_docker(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops `path` (the subset of its syntax used here: globs, `**/`, no `!`)."""
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for i in range(len(parts)):
            prefix = "/".join(parts[: i + 1])
            if fnmatch(prefix, pattern) or (pattern.startswith("**/") and fnmatch(parts[i], bare)):
                return True
    return False


def test_dockerignore_leaves_out_local_state_but_keeps_what_the_build_copies():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "negations are not understood by this check"
    for local in (".venv", "demos/.clients", ".git", ".env", "gateway/__pycache__/cli.cpython-311.pyc"):
        assert ignored_by_docker(local, patterns), f"{local} would be sent to the docker build"
    sources = [args.split()[:-1] for name, args in dockerfile() if name == "COPY" and not args.startswith("--from")]
    for source in (s for group in sources for s in group):
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
        assert not ignored_by_docker(source, patterns), f".dockerignore drops {source}, which the build copies"
        for inner in (REPO / source).rglob("*.py") if (REPO / source).is_dir() else []:
            assert not ignored_by_docker(str(inner.relative_to(REPO)), patterns), f".dockerignore drops {inner}"


# -- docker-compose.yaml ----------------------------------------------------------


def test_compose_runs_two_identical_gateway_replicas_on_the_image_port():
    replicas = gateway_services()
    assert len(replicas) == 2, f"expected two gateway replicas, found {sorted(replicas)}"
    first, second = replicas.values()
    for key in ("image", "command", "environment", "volumes", "build"):
        assert first[key] == second[key], f"the replicas differ in {key}"
    image_port = int(option(image_command(), "--port"))
    host_ports = set()
    for name, svc in replicas.items():
        command = svc["command"]
        assert command[0] == "up" and not flags_in(command) - up_flags(), f"{name}: {command}"
        assert int(option(command, "--port")) == image_port
        (published,) = svc["ports"]
        host, container = published.split(":")
        assert int(container) == image_port
        host_ports.add(host)
        grace = float(svc["stop_grace_period"].rstrip("s"))
        assert grace > float(option(command, "--drain-timeout")), f"{name}: killed before its drain ends"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert len(host_ports) == 2


def mounted_config(service: dict[str, Any]) -> Path:
    """The host file a gateway service reads as $GATEWAY_CONFIG (a file or directory bind mount)."""
    config = PurePosixPath(service["environment"]["GATEWAY_CONFIG"])
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if PurePosixPath(target) == config:
            return REPO / source
        if PurePosixPath(target) in config.parents:
            return REPO / source / config.relative_to(target)
    raise AssertionError(f"nothing is mounted at {config}")


def test_compose_provides_every_variable_the_mounted_config_reads_and_its_redis():
    services = compose()["services"]
    example = set(re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(), re.M))
    for name, svc in gateway_services().items():
        path = mounted_config(svc)
        assert path.is_file(), f"{name} mounts {path}, which does not exist"
        wanted = env_refs(path.read_text())
        assert wanted <= set(svc["environment"]), f"{name} lacks {wanted - set(svc['environment'])}"
        for var in wanted:  # each comes from the operator's .env, which .env.example shows
            assert f"${{{var}" in svc["environment"][var] and var in example, f"{var} is not taken from .env"
        cfg = load_config(path, env={var: "x" for var in wanted})
        cache = cfg.routing.session_cache
        assert cache.type == "redis", f"{name}: replicas need the shared pin store"
        url = httpx.URL(cache.url or "")
        assert url.host in services, f"{name}: redis host {url.host} is not a compose service"
        assert str(url.port) == option(services[url.host]["command"], "--port")


def test_compose_mounts_exist_and_named_volumes_and_secrets_are_declared():
    spec = compose()
    for name, svc in spec["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in spec["volumes"], f"{name} uses volume {source}, not declared under volumes"
        for secret in svc.get("secrets", []):
            assert secret in spec["secrets"], f"{name} uses secret {secret}, not declared under secrets"
        depends = svc.get("depends_on", [])
        for other in depends:
            assert other in spec["services"], f"{name} depends on {other}, which is not a service"


def test_prometheus_scrapes_metrics_on_both_replicas():
    prometheus = compose()["services"]["prometheus"]
    mounted = {target: REPO / source for source, target in (v.split(":")[:2] for v in prometheus["volumes"])
               if source.startswith(".")}
    config_path = mounted["/etc/prometheus/prometheus.yml"]
    assert config_path == REPO / "deploy" / "prometheus.yml"
    (job,) = yaml.safe_load(config_path.read_text())["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (targets,) = [static["targets"] for static in job["static_configs"]]
    image_port = option(image_command(), "--port")
    assert sorted(targets) == sorted(f"{name}:{image_port}" for name in gateway_services())


def test_the_balancer_sends_to_both_replicas_on_their_port_and_publishes_its_own():
    balancer = compose()["services"]["balancer"]
    (mount,) = balancer["volumes"]
    source, target = mount.split(":")[:2]
    assert target.startswith("/etc/nginx/conf.d/") and target.endswith(".conf")
    conf = (REPO / source).read_text()
    (upstream,) = re.findall(r"upstream (\w+) \{([^}]*)\}", conf)
    servers = re.findall(r"^\s*server\s+([\w.-]+:\d+)", upstream[1], re.M)
    image_port = option(image_command(), "--port")
    assert sorted(servers) == sorted(f"{name}:{image_port}" for name in gateway_services())
    assert f"proxy_pass http://{upstream[0]};" in conf
    assert re.search(r"^\s*proxy_buffering off;", conf, re.M), "streams must not be buffered"
    (published,) = balancer["ports"]
    host, container = published.split(":")
    assert re.search(rf"^\s*listen {container};", conf, re.M)
    assert int(host) == DEFAULT_PORT  # clients use the gateway's usual address


def test_grafana_is_provisioned_with_the_dashboard_and_the_prometheus_service():
    spec = compose()
    grafana = spec["services"]["grafana"]
    mounts = {target: source for source, target in (v.split(":")[:2] for v in grafana["volumes"])}
    provisioning = REPO / mounts["/etc/grafana/provisioning"]
    (source,) = yaml_docs(provisioning / "datasources" / "prometheus.yaml")[0]["datasources"]
    url = httpx.URL(source["url"])
    assert url.host == "prometheus" and url.host in spec["services"] and url.port == 9090
    (provider,) = yaml_docs(provisioning / "dashboards" / "gateway.yaml")[0]["providers"]
    dashboards = REPO / mounts[provider["options"]["path"]]
    assert DASHBOARD.parent == dashboards.resolve() and DASHBOARD.is_file()


# -- Kubernetes -------------------------------------------------------------------


def test_kubernetes_gateway_probes_ports_and_flags_match_the_gateway():
    container = gateway_container()
    args = container["args"]
    assert container.get("command") is None, "the image's ENTRYPOINT (gateway) must stay"
    scrape = k8s("Deployment", "pinning-gateway")["spec"]["template"]["metadata"]["annotations"]
    assert scrape["prometheus.io/path"] == "/metrics" and scrape["prometheus.io/port"] == option(args, "--port")
    assert args[0] == "up" and not flags_in(args) - up_flags(), f"unknown flags in {args}"
    (port,) = container["ports"]
    assert port["containerPort"] == int(option(args, "--port")) == int(option(image_command(), "--port"))
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in (port["name"], port["containerPort"]), probe
    service = k8s("Service", "pinning-gateway")["spec"]
    (service_port,) = service["ports"]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])
    pod_labels = k8s("Deployment", "pinning-gateway")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items()


def test_kubernetes_shuts_down_after_the_drain_and_runs_locked_down():
    pod = k8s("Deployment", "pinning-gateway")["spec"]["template"]["spec"]
    container = gateway_container()
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + float(option(container["args"], "--drain-timeout"))
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    if security.get("readOnlyRootFilesystem"):
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), "a read-only root needs a /tmp volume"
    for deployment in ("pinning-gateway", "redis"):
        for c in k8s("Deployment", deployment)["spec"]["template"]["spec"]["containers"]:
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), f"{deployment}: resource requests"


def test_kubernetes_configmap_is_the_replicas_config_mounted_where_gateway_config_points():
    container = gateway_container()
    env = {e["name"]: e for e in container["env"]}
    config = PurePosixPath(env["GATEWAY_CONFIG"]["value"])
    configmap = k8s("ConfigMap", "gateway-config")
    assert configmap["data"][config.name] == (DEPLOY / "replicas" / "config.yaml").read_text()
    (mount,) = [m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == config.parent]
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    (volume,) = [v for v in k8s("Deployment", "pinning-gateway")["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    url = httpx.URL(load_config(DEPLOY / "replicas" / "config.yaml", env={"GATEWAY_KEY": "x"}).routing.session_cache.url)
    (redis_port,) = k8s("Service", url.host)["spec"]["ports"]
    assert redis_port["port"] == url.port


def test_kubernetes_secret_provides_every_variable_the_config_reads_as_the_readme_creates_it():
    container = gateway_container()
    wanted = env_refs(k8s("ConfigMap", "gateway-config")["data"]["config.yaml"])
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert wanted <= set(refs), f"the Deployment does not set {wanted - set(refs)}"
    secrets = {ref["name"] for ref in refs.values()}
    assert len(secrets) == 1
    (secret,) = secrets
    commands = [c for path in (K8S / "deployment.yaml", REPO / "README.md") for c in shell_lines(path.read_text())
                if c.startswith(f"kubectl create secret generic {secret} ")]
    assert commands, f"neither deployment.yaml nor the README says how to create the {secret} Secret"
    for command in commands:
        given = set(re.findall(r"--from-literal=(\w+)=", command))
        assert given == {ref["key"] for ref in refs.values()}, f"`kubectl create secret` gives {given}"
    assert not refs["GATEWAY_KEY"].get("optional"), "without a gateway key the gateway must not start"


# -- against a running gateway ------------------------------------------------------


def image_config_on(fake_url: str, workdir: Path) -> Path:
    """deploy/config.yaml with its providers at the fake provider, as a container would mount it."""
    raw = yaml.safe_load((DEPLOY / "config.yaml").read_text())
    for provider in raw["model_providers"]:
        provider["base_url"] = fake_url
    path = workdir / "etc-gateway" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def container_gateway(tmp_path_factory: pytest.TempPathFactory, fake_provider: FakeProvider) -> Iterator[RunningGateway]:
    """The image's command, as written but for the port, on its config (providers at the fake provider)."""
    workdir = tmp_path_factory.mktemp("container")
    port = free_port()
    command = image_command()
    command[command.index("--port") + 1] = str(port)
    env = {**os.environ, "GATEWAY_CONFIG": str(image_config_on(fake_provider.url, workdir)),
           "GATEWAY_KEY": TEST_KEY, "OPENAI_API_KEY": "sk-deploy-test", "ANTHROPIC_API_KEY": "sk-ant-deploy-test"}
    log = workdir / "gateway.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", *command[1:]], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/healthz", proc, log)
        yield RunningGateway(url, proc, log)
    finally:
        stop(proc)


def probe_paths() -> set[str]:
    container = gateway_container()
    paths = {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")}
    paths.add(httpx.URL(re.search(r"https?://[^'\"]+", " ".join(healthcheck_command())).group(0)).path)
    return paths


def test_every_probe_path_answers_on_the_image_command(container_gateway: RunningGateway):
    assert "/readyz" in probe_paths() and "/healthz" in probe_paths()
    for path in sorted(probe_paths()):
        answer = httpx.get(f"{container_gateway.url}{path}", timeout=10)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:200]}"


def test_the_healthcheck_command_passes_on_a_live_gateway_and_fails_without_one(container_gateway: RunningGateway):
    port = container_gateway.url.rsplit(":", 1)[1]

    def run(on_port: str) -> int:
        command = [part.replace(f"127.0.0.1:{DEFAULT_PORT}", f"127.0.0.1:{on_port}") for part in healthcheck_command()]
        assert command[0] == "python"
        return subprocess.run([sys.executable, *command[1:]], capture_output=True, timeout=30).returncode

    assert run(port) == 0
    assert run(str(free_port())) != 0


def test_the_image_refuses_requests_without_the_gateway_key(container_gateway: RunningGateway):
    body = {"messages": [{"role": "user", "content": CODE_PROMPT}]}
    refused = httpx.post(f"{container_gateway.url}/routing/v1/chat/completions", json=body, timeout=30)
    assert refused.status_code == 401
    allowed = httpx.post(f"{container_gateway.url}/routing/v1/chat/completions", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {TEST_KEY}"})
    assert allowed.status_code == 200, allowed.text


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    variables = [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return queries + variables


SELECTOR = re.compile(r"\b(gateway_[a-z_]+)(\{[^}]*\})?")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SCRAPE_LABELS = {"instance", "job"}  # added by Prometheus to every series it scrapes


def exported_series(text: str) -> dict[str, set[str]]:
    """Every sample name in a /metrics page, with the label names it carries."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def traffic(gw: RunningGateway) -> None:
    """Requests that make every labelled metric report: decisions, pins, answers, a retry and a failover."""
    headers = {"Authorization": f"Bearer {TEST_KEY}", "X-Session-Id": "deploy-1"}

    def ask(prompt: str) -> httpx.Response:
        answer = httpx.post(f"{gw.url}/v1/chat/completions", timeout=30, headers=headers, json={
            "model": "openai/gpt-4o", "messages": [{"role": "user", "content": prompt}]})
        assert answer.status_code == 200, answer.text
        return answer

    pinned = ask(SMALL_TALK).headers["x-router-model"]  # a pin miss, then hits
    assert pinned != "openai/gpt-4o-mini", "a session on the default model has nothing to fail over to"
    ask(SMALL_TALK)
    failed_over = ask(f"{SMALL_TALK} FAULT:500@{pinned.split('/')[1]}")  # the pinned model fails: retries, failover
    assert failed_over.headers.get("x-router-failover"), failed_over.headers


def test_every_metric_the_dashboard_queries_is_exported_with_the_labels_it_uses(container_gateway: RunningGateway):
    traffic(container_gateway)
    page = httpx.get(f"{container_gateway.url}/metrics", timeout=10)  # as Prometheus scrapes it: no key
    assert page.status_code == 200, page.text[:300]
    series = exported_series(page.text)
    queries = dashboard_queries()
    used = {m.group(1) for q in queries for m in SELECTOR.finditer(q)}
    assert len(used) >= 12, f"the dashboard queries only {sorted(used)}"
    for query in queries:
        selectors = list(SELECTOR.finditer(query))
        assert selectors, f"no gateway metric in {query!r}"
        for match in selectors:
            name, braces = match.group(1), match.group(2) or ""
            assert name in series, f"{query!r} queries {name}, which /metrics does not export"
            labels = set(re.findall(r"(\w+)\s*[=!]~?", braces)) | {
                label.strip() for group in GROUPING.findall(query) for label in group.split(",") if label.strip()}
            missing = labels - series[name] - SCRAPE_LABELS
            assert not missing, f"{query!r}: {name} has no label(s) {sorted(missing)}"


def test_dashboard_checker_rejects_a_metric_the_gateway_does_not_export(container_gateway: RunningGateway):
    """The check above is only worth something if a wrong name fails it."""
    series = exported_series(httpx.get(f"{container_gateway.url}/metrics", timeout=10).text)
    assert "gateway_pin_hits_total" not in series and "gateway_requests" not in series
    assert "route" not in series["gateway_requests_total"]


def test_gateway_reload_inside_the_container_uses_the_key_the_config_reads(container_gateway: RunningGateway):
    """`gateway reload` in the container (e.g. `docker compose exec gateway-1 gateway reload`) needs no flags."""
    env = {**os.environ, "GATEWAY_KEY": TEST_KEY}
    done = subprocess.run([sys.executable, "-m", "gateway", "reload", "--url", container_gateway.url],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    env.pop("GATEWAY_KEY")
    refused = subprocess.run([sys.executable, "-m", "gateway", "reload", "--url", container_gateway.url],
                             capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode != 0
