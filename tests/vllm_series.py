"""The Prometheus series the chat service's vLLM exports, from vLLM's own ``PrometheusStatLogger``.

The source of truth for the dashboard, prometheus-adapter's rule and the HPA (tests/unit/test_observability.py and
test_k8s_manifests.py): the real class, instantiated without an engine. ``VllmConfig()`` builds without a model;
its ``model_config`` (which would load a Hugging Face config) is replaced by a stand-in with the three attributes
the logger reads (served_model_name, max_model_len, is_diffusion). Nothing runs: the logger only declares its
series, with a labelled child per engine and finish reason, as at engine start.

It runs in a fresh interpreter, because the logger registers into prometheus_client's process-global registry and
first unregisters every ``vllm:*`` collector there, which would take the series away from an engine a test in this
process may be running. The child lists the samples of every ``vllm:*`` family the logger registered: counters as
``_total``, histograms as ``_bucket``/``_sum``/``_count``, gauges as named. ``_created`` is switched off
(``PROMETHEUS_DISABLE_CREATED_SERIES``) because the Bento never exposes it: BentoML's ``/metrics`` reads vLLM's
series in multiprocess mode, whose collector has no ``_created`` (and shows vLLM's ``mostrecent`` gauges once the
engine's first stats record has set them, which is why the child does not collect that way).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from typing import Any

_CHILD = r"""
import json, sys, types

import vllm
from prometheus_client import REGISTRY
from vllm.config import VllmConfig
from vllm.v1.metrics.loggers import PrometheusStatLogger

config = VllmConfig()
object.__setattr__(config, "model_config", types.SimpleNamespace(
    served_model_name="m", max_model_len=2048, is_diffusion=False))
PrometheusStatLogger(config)

out = {}
for family in REGISTRY.collect():
    if family.name.startswith("vllm:"):
        for sample in family.samples:
            entry = out.setdefault(sample.name, {"type": family.type, "family": family.name, "labels": {}})
            for label, value in sample.labels.items():
                entry["labels"].setdefault(label, set()).add(value)
for entry in out.values():
    entry["labels"] = {k: sorted(v) for k, v in entry["labels"].items()}
sys.stdout.write("\n@@SERIES@@" + json.dumps({"version": vllm.__version__, "series": out}))
"""


@cache
def _declared() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BENTOML_", "VLLM_", "PROMETHEUS_"))}  # vLLM's defaults, single-process collection
    env["PROMETHEUS_DISABLE_CREATED_SERIES"] = "True"
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.rpartition("@@SERIES@@")[2])


def vllm_series() -> dict[str, dict[str, Any]]:
    """Each sample name vLLM exposes → ``{"type", "family", "labels": {label: [values]}}``."""
    return _declared()["series"]


def vllm_version() -> str:
    """The installed vLLM's version (the series are this release's)."""
    return str(_declared()["version"])
