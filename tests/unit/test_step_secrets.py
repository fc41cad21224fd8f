"""``steps._secrets.load_secrets`` against a real ZenML store (a fresh local one, in a child process so this
process's ZenML client is untouched): names missing from the environment come from the ``llmship`` secret, names
already set win, an absent secret is no error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = """
import json
from zenml.client import Client
from steps._secrets import load_secrets

before = {}
missing = load_secrets(before)  # no secret yet
Client().create_secret("llmship", values={"NEO4J_PASSWORD": "from-zenml", "hf_token": "hf-zenml",
                                          "LLMSHIP_API_KEY": "zenml-key"})
env = {"LLMSHIP_API_KEY": "from-env"}
filled = load_secrets(env)
print(json.dumps({"missing": missing, "before": before, "filled": sorted(filled), "env": env}))
"""


def test_secrets_fill_only_what_the_environment_lacks(tmp_path):
    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "zenml"), "ZENML_ANALYTICS_OPT_IN": "false",
           "PYTHONPATH": str(REPO)}
    for name in ("HF_TOKEN", "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "LLMSHIP_RAG_CHAT_API_KEY",
                 "LLMSHIP_API_KEY", "LLMSHIP_ZENML_SECRET", "ZENML_STORE_URL"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["missing"] == [] and result["before"] == {}
    assert result["filled"] == ["HF_TOKEN", "NEO4J_PASSWORD"]
    assert result["env"] == {"LLMSHIP_API_KEY": "from-env", "NEO4J_PASSWORD": "from-zenml", "HF_TOKEN": "hf-zenml"}
