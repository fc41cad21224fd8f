"""The chat Bento: llmship's OpenAI-compatible app served by BentoML.

A thin shell on purpose: the protocol, engine and registry lookups live in
``llmship``; this file only mounts the app and loads the model the registry
names (``LLMSHIP_MODEL_URI``, e.g. ``models:/gemma3-270m@champion``) when the
worker starts, so BentoML's ``/readyz`` turns green only once it can answer.
"""

from __future__ import annotations

import bentoml

from llmship.openai.app import create_app
from llmship.serving.load import ServeSettings, load_runtime

app = create_app()


@bentoml.service(
    name="llmship-chat",
    workers=1,
    traffic={"timeout": 600, "max_concurrency": 256},
    http={"port": 3000},
)
@bentoml.asgi_app(app, path="/")
class Chat:
    def __init__(self) -> None:
        app.state.runtime = load_runtime(ServeSettings.from_env())
