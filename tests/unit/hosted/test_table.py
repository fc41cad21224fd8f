"""HostedTable: what the chat service reads from LLMSHIP_HOSTED / LLMSHIP_FALLBACKS, and the alias checks."""

from __future__ import annotations

import json

import pytest

from llmship.config import ServeConfig
from llmship.errors import ServeError
from llmship.hosted import HostedModel
from llmship.hosted.app import HostedApp
from llmship.openai.routes import HostedRoute, HostedTable


def test_serve_config_says_it_through_the_environment():
    config = ServeConfig(hosted=["deepseek"], fallbacks={"assistant": ["gemma3-270m", "deepseek"]},
                         fallback_timeout_s=5)
    env = config.env()
    assert env["LLMSHIP_HOSTED"] == "deepseek"
    assert json.loads(env["LLMSHIP_FALLBACKS"]) == {"assistant": ["gemma3-270m", "deepseek"]}
    table = HostedTable.from_env({**env, "LLMSHIP_HOSTED": ""})  # no hosted name: no registry needed
    assert table.fallbacks == {"assistant": ["gemma3-270m", "deepseek"]} and table.fallback_timeout_s == 5
    assert HostedTable.from_env({}).empty


@pytest.mark.parametrize(("fallbacks", "needle"), [({"a": []}, "names no model"), ({"a": ["a", "b"]}, "names itself")])
def test_bad_fallbacks_are_config_errors(fallbacks, needle):
    with pytest.raises(ValueError, match=needle):
        ServeConfig(fallbacks=fallbacks)


def test_alias_targets_must_be_served_here():
    spec = HostedModel(source="openai:http://127.0.0.1:9/v1#m", provider="openai", base_url="http://127.0.0.1:9/v1",
                       model="m")
    route = HostedRoute(name="deepseek", version="deepseek/3", spec=spec, app=HostedApp(spec))
    HostedTable(routes={"deepseek": route}, fallbacks={"assistant": ["gemma", "deepseek"]}).check_targets("gemma")
    with pytest.raises(ServeError, match="names kimi, which this service does not serve"):
        HostedTable(routes={"deepseek": route}, fallbacks={"assistant": ["gemma", "kimi"]}).check_targets("gemma")
    with pytest.raises(ServeError, match="already a served model's name"):
        HostedTable(routes={"deepseek": route}, fallbacks={"deepseek": ["gemma"]}).check_targets("gemma")
    with pytest.raises(ServeError, match="not JSON"):
        HostedTable.from_env({"LLMSHIP_FALLBACKS": "{nope"})
