"""deploy/observability: the Grafana dashboard passes Grafana's schema, every PromQL expression in it (and in
prometheus-adapter's rule) parses and reads only series the services export, with labels those series carry, and
the Prometheus scrape configuration reaches the services where they listen.

The series: vLLM's own ``vllm:*`` (the chat service's engine), as vLLM's ``PrometheusStatLogger`` declares them
(tests/vllm_series.py instantiates it, without an engine, in a child process), and llmship's gateway counter
``llmship:gateway_requests_total`` (llmship/gateway/metrics.py).

Grafana's schema: ``grafana/schema/grafana-dashboard.schema.json``, JSON Schemas of the types Grafana publishes for
the dashboard JSON model, each panel type's options and field config, and a Prometheus query (@grafana/schema and
@grafana/prometheus, generated from Grafana's CUE kinds; ``generate.sh`` pins the version and rebuilds it). PromQL:
``promql-parser`` (a Rust port of Prometheus' parser); ``promtool`` checks the same expressions too where installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from typing import Any

import jsonschema
import promql_parser
import pytest
import yaml

from tests.conftest import REPO
from tests.unit.test_k8s_manifests import by_kind, go_template, rendered
from tests.vllm_series import vllm_series, vllm_version

OBS = REPO / "deploy/observability"
DASHBOARD = OBS / "grafana/llmship-dashboard.json"
SCHEMA = OBS / "grafana/schema/grafana-dashboard.schema.json"
PROMETHEUS = OBS / "prometheus.yml"
ADAPTER = OBS / "prometheus-adapter.yaml"
# Labels a series gains from the scrape (prometheus.yml's relabelling and Prometheus itself), not from the services.
SCRAPE_LABELS = {"job", "instance", "namespace", "pod", "app"}
# Grafana's interval variables, as Grafana substitutes them before sending a query to Prometheus.
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@cache
def grafana_schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dash["panels"]:
        out += [panel, *panel.get("panels", [])] if panel["type"] == "row" else [panel]
    return [p for p in out if p["type"] != "row"]


def schema_errors(dash: dict[str, Any]) -> list[str]:
    """Every violation of Grafana's schema: the dashboard model, then each panel's options and field config
    (by panel type) and each Prometheus target."""
    bundle = grafana_schema()
    found = [f"dashboard {list(e.absolute_path)}: {e.message}"
             for e in jsonschema.Draft7Validator(bundle["dashboard"]).iter_errors(dash)]
    for panel in panels(dash):
        where = f"panel {panel.get('id')} ({panel.get('title')})"
        schemas = bundle["panels"].get(panel["type"])
        if schemas is None:
            found.append(f"{where}: no schema for panel type {panel['type']!r}; add it to generate.sh's PANELS")
            continue
        checks = [("options", panel.get("options", {}), schemas["options"])]
        if "fieldConfig" in schemas:
            custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
            checks.append(("fieldConfig.defaults.custom", custom, schemas["fieldConfig"]))
        for target in panel.get("targets", []):
            checks.append((f"target {target.get('refId')}", target, bundle["queries"]["prometheus"]))
        for what, value, schema in checks:
            found += [f"{where} {what} {list(e.absolute_path)}: {e.message}"
                      for e in jsonschema.Draft7Validator(schema).iter_errors(value)]
    return found


# ---- Grafana's schema -----------------------------------------------------------------------------------------------


def test_the_dashboard_passes_grafanas_schema():
    bundle = grafana_schema()
    assert bundle["grafana"] == "13.2.3" and "generate.sh" in bundle["$comment"]
    dash = dashboard()
    assert schema_errors(dash) == []
    assert {p["type"] for p in panels(dash)} <= set(bundle["panels"])
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)


@pytest.mark.parametrize("breakage", [
    lambda d: d["panels"][0].update(gridpos=d["panels"][0].pop("gridPos")),  # a misspelt panel field
    lambda d: d["panels"][0]["options"]["legend"].update(placement="left"),  # not a legend placement
    lambda d: d["panels"][0]["fieldConfig"]["defaults"]["custom"].update(lineWidht=1),  # a misspelt style option
    lambda d: d["panels"][0]["targets"][0].pop("expr"),  # a Prometheus query needs one
    lambda d: d.update(schemaVersion="41"),  # a number
    lambda d: d["templating"]["list"][1].update(type="dropdown"),  # not a variable type
])
def test_the_schema_check_is_strict(breakage):
    dash = dashboard()
    breakage(dash)
    assert schema_errors(dash)


def test_panels_do_not_overlap_and_ids_are_unique():
    cells: dict[tuple[int, int], int] = {}
    ids = [p["id"] for p in panels(dashboard())]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard()):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["id"]


# ---- the series the queries read ------------------------------------------------------------------------------------


@cache
def exported_series() -> dict[str, frozenset[str]]:
    """Each sample name the services export (histograms' _bucket/_sum/_count, counters' _total) and its labels:
    vLLM's series (``PrometheusStatLogger``, tests/vllm_series.py) and the gateway's request counter."""
    import prometheus_client

    from llmship.gateway.metrics import NAME, count_request

    series = {name: set(entry["labels"]) for name, entry in vllm_series().items()}
    count_request("chat", "k", 200)
    for family in prometheus_client.REGISTRY.collect():
        if family.name == NAME:
            for sample in family.samples:  # no _created in the Bento, whose /metrics is in multiprocess mode
                if not sample.name.endswith("_created"):
                    series.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in series.items()}


def test_the_series_are_vllms_own_and_the_gateways():
    assert vllm_version().startswith("0.32."), "the dashboard was checked against vLLM 0.32's series"
    names = set(exported_series())
    for histogram in ("time_to_first_token_seconds", "inter_token_latency_seconds", "e2e_request_latency_seconds"):
        parts = {f"vllm:{histogram}_{part}" for part in ("bucket", "sum", "count")}
        assert parts <= names and {vllm_series()[n]["type"] for n in parts} == {"histogram"}
    kinds = {"vllm:num_requests_running": "gauge", "vllm:num_requests_waiting": "gauge",
             "vllm:kv_cache_usage_perc": "gauge", "vllm:prompt_tokens_total": "counter",
             "vllm:generation_tokens_total": "counter", "vllm:request_success_total": "counter",
             "vllm:prefix_cache_hits_total": "counter", "vllm:prefix_cache_queries_total": "counter"}
    assert {name: vllm_series()[name]["type"] for name in kinds} == kinds
    for name in kinds:
        assert {"model_name", "engine"} <= exported_series()[name], name
    reasons = set(vllm_series()["vllm:request_success_total"]["labels"]["finished_reason"])
    assert {"stop", "length", "abort"} <= reasons
    assert not any(name.startswith("llmship:") for name in vllm_series())
    assert not any(name.endswith("_created") for name in names)  # not exposed in BentoML's multiprocess mode
    assert exported_series()["llmship:gateway_requests_total"] == {"service", "key_name", "code"}
    assert {n for n in names if n.startswith("llmship:")} == {"llmship:gateway_requests_total"}


def test_every_series_the_deploy_files_name_exists():
    """Comments included: a name in deploy/ (a dashboard description, a manifest's note) is a series or a metric
    family the services export, not one of the llmship:* serving series that vLLM's replaced."""
    families = set(exported_series()) | {name.removesuffix("_total") for name in exported_series()}
    families |= {entry["family"] for entry in vllm_series().values()}
    found = 0
    for path in sorted((REPO / "deploy").rglob("*")):
        if path.suffix in {".yaml", ".yml", ".json"} and "schema" not in path.parts:
            for name in re.findall(r"\b(?:vllm|llmship):[a-z0-9_]+", path.read_text()):
                found += 1
                assert name in families, f"{path.relative_to(REPO)}: {name} is not a series the services export"
    assert found > 20


def parse(expr: str) -> Any:
    for variable, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(f"[{variable}]", f"[{value}]")
    return promql_parser.parse(expr)


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, labels the expression names for it: matchers, and by/without of the aggregations over it)."""
    found: list[tuple[str, set[str]]] = []
    grouping: list[set[str]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.append(set(node.modifier.labels))
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr}"
            found.append((node.name, {m.name for m in node.matchers.matchers}))

    promql_parser.walk(parse(expr), visit)
    by = set().union(*grouping) if grouping else set()
    return [(name, labels | by) for name, labels in found]


def metric_names(node: Any) -> list[str]:
    """The metric names a parsed expression (or part of one) selects."""
    found: list[str] = []

    def visit(n: Any) -> None:
        if isinstance(n, promql_parser.VectorSelector):
            found.append(str(n.name))

    promql_parser.walk(node, visit)
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(dashboard()) for t in p["targets"]]


def test_every_query_parses_and_reads_only_series_the_services_export():
    series = exported_series()
    assert dashboard_queries()
    for title, expr in dashboard_queries():
        for name, labels in selectors(expr):
            assert name in series, f"{title}: {name} is not a series vLLM or the gateway exports"
            unknown = labels - series[name] - SCRAPE_LABELS - {"le"}
            assert not unknown, f"{title}: {name} has no label {unknown}"
            if "le" in labels:
                assert name.endswith("_bucket"), f"{title}: le on {name}"


def test_the_variables_read_exported_series_and_labels():
    series = exported_series()
    queries = [v for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    assert {v["name"] for v in queries} == {"model", "service"}
    for variable in queries:
        match = re.fullmatch(r"label_values\(([\w:]+),\s*(\w+)\)", variable["query"])
        assert match, variable["query"]
        assert match.group(2) in series[match.group(1)]
    used = " ".join(expr for _, expr in dashboard_queries())
    assert '$model"' in used and '$service"' in used


def test_the_panels_cover_latency_throughput_queue_caches_and_errors_by_key():
    by_title = {p["title"]: [t["expr"] for t in p["targets"]] for p in panels(dashboard())}
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in panels(dashboard())}
    for title, histogram in (("Time to first token", "time_to_first_token_seconds"),
                             ("Inter-token latency", "inter_token_latency_seconds"),
                             ("End-to-end request latency", "e2e_request_latency_seconds")):
        quantiles = []
        for expr in by_title[title]:
            tree = parse(expr)
            assert isinstance(tree, promql_parser.Call) and tree.func.name == "histogram_quantile", expr
            quantiles.append(float(str(tree.args[0])))
            assert [name for name, _ in selectors(expr)] == [f"vllm:{histogram}_bucket"]
            assert "rate(" in expr and "by (le)" in expr
        assert quantiles == [0.5, 0.95, 0.99], title
        assert units[title] == "s"
    tokens = {name for expr in by_title["Tokens per second"] for name, _ in selectors(expr)}
    assert tokens == {"vllm:prompt_tokens_total", "vllm:generation_tokens_total"}
    queue = {name for expr in by_title["Queue"] for name, _ in selectors(expr)}
    assert queue == {"vllm:num_requests_running", "vllm:num_requests_waiting"}
    (kv,) = by_title["KV-cache usage"]
    assert [name for name, _ in selectors(kv)] == ["vllm:kv_cache_usage_perc"] and units["KV-cache usage"] == "percentunit"
    # hits over queries, both in tokens, each a rate: a ratio of counters
    (hit_rate,) = by_title["Prefix-cache hit rate"]
    tree = parse(hit_rate)
    assert isinstance(tree, promql_parser.BinaryExpr) and str(tree.op) == "/", hit_rate
    assert metric_names(tree.lhs) == ["vllm:prefix_cache_hits_total"]
    assert metric_names(tree.rhs) == ["vllm:prefix_cache_queries_total"]
    assert hit_rate.count("rate(") == 2 and units["Prefix-cache hit rate"] == "percentunit"
    (reasons,) = by_title["Finished generations by reason"]
    ((name, labels),) = selectors(reasons)
    assert name == "vllm:request_success_total" and "finished_reason" in labels
    for title, codes in (("4xx by key", '"4.."'), ("5xx by key", '"5.."')):
        (expr,) = by_title[title]
        ((name, labels),) = selectors(expr)
        assert name == "llmship:gateway_requests_total" and {"key_name", "code"} <= labels
        assert f"code=~{codes}" in expr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_parses_every_query(tmp_path):
    """Prometheus' own parser, on the dashboard's queries and the adapter's, as recording rules."""
    exprs = [expr for _, expr in dashboard_queries()] + [adapter_query()]
    for variable, value in GRAFANA_INTERVALS.items():
        exprs = [e.replace(f"[{variable}]", f"[{value}]") for e in exprs]
    rules = {"groups": [{"name": "llmship-dashboard",
                         "rules": [{"record": f"llmship_check:{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# ---- prometheus-adapter ---------------------------------------------------------------------------------------------


def adapter_rule() -> dict[str, Any]:
    (rule,) = yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]
    return rule


def adapter_query() -> str:
    """The rule's metricsQuery as the adapter expands it for one HPA request."""
    query = adapter_rule()["metricsQuery"]
    for placeholder, value in (("<<.Series>>", "vllm:num_requests_waiting"),
                               ("<<.LabelMatchers>>", 'namespace="llmship",pod=~"llmship-chat-a|llmship-chat-b"'),
                               ("<<.GroupBy>>", "pod")):
        query = query.replace(placeholder, value)
    assert "<<" not in query, query
    return query


def test_the_adapter_rule_reads_vllms_waiting_gauge_per_pod():
    rule = adapter_rule()
    series_query = promql_parser.parse(rule["seriesQuery"])
    names = [m.value for m in series_query.matchers.matchers if m.name == "__name__"]
    assert names == ["vllm:num_requests_waiting"] and vllm_series()[names[0]]["type"] == "gauge"
    (name, labels), = selectors(adapter_query())
    assert name == "vllm:num_requests_waiting" and {"namespace", "pod"} <= labels
    assert adapter_query().startswith("sum by (pod) (")  # one value per pod, over vLLM's engine label
    values = yaml.safe_load(ADAPTER.read_text())
    assert values["prometheus"]["url"].startswith("http") and values["prometheus"]["port"]


# ---- Prometheus' scrape configuration -------------------------------------------------------------------------------


def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS.read_text())


def jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}


def test_the_local_job_scrapes_the_services_make_deploy_starts():
    from llmship.config import ServeConfig

    job = jobs()["llmship-local"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    serve = ServeConfig()
    assert targets == {f"{serve.host}:{serve.port}", f"{serve.host}:{serve.rag_port}"} == {"127.0.0.1:3000",
                                                                                           "127.0.0.1:3001"}
    assert serve.gateway.auth is False  # the default gateway asks no key, so this job sends none


def relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus' relabelling (the keep and replace actions used here; regexes fully anchored, as RE2 there)."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule.get("source_labels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if not match:
                return None
        elif action == "replace":
            if match:
                labels[rule["target_label"]] = match.expand(go_template(rule.get("replacement", "$1")))
        else:
            raise AssertionError(f"relabel action {action} is not simulated here")
    return labels


def test_the_cluster_job_finds_every_llmship_pod_at_its_metrics_port():
    job = jobs()["llmship-kubernetes-pods"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    docs = rendered("base")
    for name, deployment in by_kind(docs, "Deployment").items():
        template = deployment["spec"]["template"]
        port = template["spec"]["containers"][0]["ports"][0]["containerPort"]
        meta = {"__address__": "10.1.2.3", "__meta_kubernetes_pod_ip": "10.1.2.3",
                "__meta_kubernetes_namespace": "llmship", "__meta_kubernetes_pod_name": f"{name}-abc",
                **{f"__meta_kubernetes_pod_annotation_{re.sub(r'[^a-zA-Z0-9_]', '_', k)}": v
                   for k, v in template["metadata"]["annotations"].items()},
                **{f"__meta_kubernetes_pod_label_{re.sub(r'[^a-zA-Z0-9_]', '_', k)}": v
                   for k, v in template["metadata"]["labels"].items()}}
        target = relabel(job["relabel_configs"], meta)
        assert target is not None, name
        assert target["__address__"] == f"10.1.2.3:{port}" and target["__metrics_path__"] == "/metrics"
        # the adapter's rule maps these two labels to the pod the HPA asks about
        assert (target["namespace"], target["pod"], target["app"]) == ("llmship", f"{name}-abc", name)
    ipv6 = relabel(job["relabel_configs"], {"__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                                            "__meta_kubernetes_pod_annotation_prometheus_io_port": "3000",
                                            "__meta_kubernetes_pod_ip": "fd00:10:244::5"})
    assert ipv6["__address__"] == "[fd00:10:244::5]:3000"
    unannotated = relabel(job["relabel_configs"], {"__meta_kubernetes_pod_ip": "10.1.2.4"})
    assert unannotated is None


def test_the_cluster_job_sends_a_key_because_the_manifests_keep_metrics_behind_one():
    config = by_kind(rendered("base"), "ConfigMap")["llmship-config"]["data"]
    assert config["LLMSHIP_GATEWAY_AUTH"] == "true" and config["LLMSHIP_GATEWAY_PUBLIC_METRICS"] == "false"
    auth = jobs()["llmship-kubernetes-pods"]["authorization"]
    assert auth.get("type", "Bearer") == "Bearer" and auth["credentials_file"].startswith("/")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_scrape_configuration():
    done = subprocess.run(["promtool", "check", "config", "--syntax-only", str(PROMETHEUS)], capture_output=True,
                          text=True, timeout=60)
    if "field kubernetes_sd_configs not found" in done.stdout + done.stderr:
        pytest.skip("this promtool is built without Kubernetes service discovery (Debian's is)")
    assert done.returncode == 0, done.stdout + done.stderr
