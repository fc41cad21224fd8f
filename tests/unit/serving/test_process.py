"""``llmship.serving.process``: the settings it hands ``bentoml serve`` (the server itself is in tests/integration)."""

from __future__ import annotations

import pytest

from llmship.errors import ServeError
from llmship.serving import process


def test_keep_alive_outlasts_clients_and_load_balancers_by_default():
    assert process.keep_alive_s({}) == 75
    assert process.keep_alive_s({"LLMSHIP_HTTP_KEEP_ALIVE_S": "120"}) == 120


@pytest.mark.parametrize("raw", ["soon", "1.5", "0", "-3"])
def test_a_bad_keep_alive_is_one_line_before_anything_stops(raw, monkeypatch):
    stopped = []
    monkeypatch.setattr(process, "stop", lambda *a, **k: stopped.append(a))
    with pytest.raises(ServeError, match="LLMSHIP_HTTP_KEEP_ALIVE_S"):
        process.start("bentos.chat.service:Chat", model_uri="models:/x@champion",
                      env={"LLMSHIP_HTTP_KEEP_ALIVE_S": raw})
    assert stopped == [], "a refused setting must leave the running server alone"
