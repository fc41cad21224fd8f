"""The deploy_llm configs load the way ``zenml pipeline run -c`` loads them: the run configuration through ZenML's
``PipelineRunConfiguration``, the parameters through the pipeline's own signature (``llmship.config`` models,
``extra="forbid"``) with the validation call ZenML makes before a run. In one child process with a fresh ZenML
store and outside the repository (no ``.zen``), so neither this process's ZenML client nor the checkout's ZenML
state (its active stack) is touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

SCRIPT = """
import json, sys
import yaml
from pydantic import ConfigDict, ValidationError
from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
from zenml.utils.pydantic_utils import validate_function_args

from pipelines.deploy_llm import deploy_llm

out = {}
for path in sys.argv[1:]:
    data = yaml.safe_load(open(path).read())
    try:
        PipelineRunConfiguration.model_validate(data)
        # what PipelineDefinition._validate_entrypoint_args does with the file's parameters
        args = validate_function_args(deploy_llm.entrypoint, ConfigDict(arbitrary_types_allowed=False),
                                      **data["parameters"])
        out[path] = {"types": {k: type(v).__name__ for k, v in args.items()},
                     "args": {k: v.model_dump(mode="json") for k, v in args.items()}}
    except ValidationError as err:
        out[path] = {"error": str(err)}
print(json.dumps(out))
"""
CONFIGS = ["configs/deploy_llm.yaml", "configs/deploy_llm.release.yaml"]
SECTIONS = {"build": "BuildConfig", "export": "ExportConfig", "parity": "ParityConfig", "evaluate": "EvalConfig",
            "benchmark": "BenchConfig", "gates": "GateThresholds", "registry": "RegistryConfig",
            "serve": "ServeConfig"}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("configs")
    release = yaml.safe_load((REPO / "configs/deploy_llm.release.yaml").read_text())
    typo = json.loads(json.dumps(release))
    typo["parameters"]["serve"]["rag_prot"] = 3001
    unknown = json.loads(json.dumps(release))
    unknown["parameters"]["servce"] = {"enabled": False}
    retired = json.loads(json.dumps(release))
    retired["parameters"]["gates"]["engine_parity_greedy_agreement"] = 0.6  # renamed engine_parity_greedy_close
    for name, data in (("typo", typo), ("unknown", unknown), ("retired", retired)):
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump(data))
    paths = [str(REPO / c) for c in CONFIGS] + [str(tmp / "typo.yaml"), str(tmp / "unknown.yaml"),
                                                    str(tmp / "retired.yaml")]
    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp / "zenml"), "ZENML_ANALYTICS_OPT_IN": "false",
           "PYTHONPATH": str(REPO)}
    for name in ("ZENML_STORE_URL", "ZENML_REPOSITORY_PATH", "ZENML_ACTIVE_STACK_ID"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *paths], capture_output=True, text=True, env=env, cwd=tmp,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**{c: results[str(REPO / c)] for c in CONFIGS},
            "typo": results[str(tmp / "typo.yaml")], "unknown": results[str(tmp / "unknown.yaml")],
            "retired": results[str(tmp / "retired.yaml")]}


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_through_the_pipeline_models(loaded, name):
    assert "error" not in loaded[name], loaded[name].get("error")
    assert loaded[name]["types"] == SECTIONS


def test_release_config_builds_the_bento_and_ships_nothing_weaker(loaded):
    release = loaded["configs/deploy_llm.release.yaml"]["args"]
    default = loaded["configs/deploy_llm.yaml"]["args"]
    # deploy_llm builds the chat Bento only when serve is enabled: the release containerizes that Bento
    assert release["serve"]["enabled"] is True
    assert release["serve"]["rag"] is False  # no graph on a CI runner; the RAG service is not in the chat image
    assert release["serve"]["host"] == "127.0.0.1"
    assert release["gates"] == default["gates"]
    assert release["export"]["enabled"] is True
    assert release["registry"] == default["registry"]
    assert release["benchmark"]["batches"] == default["benchmark"]["batches"]


def test_a_typo_in_a_section_is_an_error(loaded):
    assert "rag_prot" in loaded["typo"]["error"] and "Extra inputs are not permitted" in loaded["typo"]["error"]


def test_an_unknown_section_is_an_error(loaded):
    assert "servce" in loaded["unknown"]["error"] and "Unexpected keyword argument" in loaded["unknown"]["error"]


def test_a_retired_gate_is_an_error_not_a_silent_default(loaded):
    error = loaded["retired"]["error"]
    assert "engine_parity_greedy_agreement" in error and "Extra inputs are not permitted" in error
