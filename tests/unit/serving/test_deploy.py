"""When a re-deploy may swap the engine in place: the Bento's content and every setting the service reads, not
its tag or build time, decide."""

from __future__ import annotations

from llmship.config import ServeConfig
from llmship.serving.deploy import bento_digest, serving_digest


def _bento(home, version: str, source: str, built_at: str) -> str:
    folder = home / "bentos" / "llmship-chat" / version
    (folder / "src").mkdir(parents=True)
    (folder / "bento.yaml").write_text(f"version: {version}\ncreation_time: '{built_at}'\n")
    (folder / "src" / "service.py").write_text(source)
    return f"llmship-chat:{version}"


def test_same_content_same_digest_whatever_the_tag(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    first = _bento(tmp_path, "aaa", "print('chat')\n", "2026-12-07T01:00:00")
    rebuilt = _bento(tmp_path, "bbb", "print('chat')\n", "2026-12-07T02:00:00")
    changed = _bento(tmp_path, "ccc", "print('chat v2')\n", "2026-12-07T03:00:00")
    assert bento_digest(first) == bento_digest(rebuilt) != bento_digest(changed)
    assert bento_digest("llmship-chat:gone") is None

    config = ServeConfig()
    same = serving_digest(first, "models:/m@champion", config, "sqlite:///r.db")
    assert same == serving_digest(rebuilt, "models:/m@champion", config, "sqlite:///r.db")
    for other in (serving_digest(changed, "models:/m@champion", config, "sqlite:///r.db"),
                  serving_digest(first, "models:/other@champion", config, "sqlite:///r.db"),
                  serving_digest(first, "models:/m@champion", config, "sqlite:///elsewhere.db"),
                  serving_digest(first, "models:/m@champion", ServeConfig(max_batch=8), "sqlite:///r.db"),
                  serving_digest(first, "models:/m@champion", ServeConfig(hosted=["h"]), "sqlite:///r.db"),
                  serving_digest(first, "models:/m@champion", ServeConfig(port=3100), "sqlite:///r.db")):
        assert other != same
    assert serving_digest("llmship-chat:gone", "models:/m@champion", config, "sqlite:///r.db") is None
