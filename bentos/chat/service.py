"""The chat Bento: llmship's OpenAI-compatible app served by BentoML.

A thin shell on purpose: the protocol, scheduler, engine and registry lookups
live in ``llmship``; this file only mounts the app, loads the model the
registry names (``LLMSHIP_MODEL_URI``, e.g. ``models:/gemma3-270m@champion``)
when the worker starts, so BentoML's ``/readyz`` turns green only once it can
answer, puts the gateway (``llmship.gateway``) in front of every route, and composes the embedding service with ``bentoml.depends`` (its own
process, its own thread budget) behind ``/v1/embeddings`` — or, with ``LLMSHIP_EMBEDDING_URL``, calls the embedding
service deployed at that URL (``bentos.embedding.service.embedding_dependency``; the Kubernetes manifests in
``deploy/k8s`` run it as its own Deployment).
"""

from __future__ import annotations

import os

import bentoml

from bentos.embedding.service import BentoEmbeddingBackend, embedding_dependency
from llmship.gateway import Gateway
from llmship.openai.app import ApiSettings, create_app
from llmship.serving.load import ServeSettings, load_runtime

app = create_app(settings=ApiSettings.from_env())


def count_tokens(text: str) -> int | None:
    """The served model's own token count, for the gateway's prompt limits (None until the model is loaded)."""
    runtime = app.state.runtime
    return len(runtime.served.engine.encode(text)) if runtime is not None else None


@bentoml.service(
    name="llmship-chat",
    workers=int(os.environ.get("LLMSHIP_CHAT_WORKERS", "1")),  # each worker loads its own copy of the model
    traffic={"timeout": 600, "max_concurrency": 256},
    http={"port": 3000},
)
@bentoml.asgi_app(app, path="/")
class Chat:
    embedder = embedding_dependency()  # LLMSHIP_EMBEDDING_URL: the embedding service deployed apart

    def __init__(self) -> None:
        settings = ServeSettings.from_env().model_copy(update={"shared_metrics": True})
        app.state.runtime = load_runtime(settings)
        app.state.embedder = BentoEmbeddingBackend(self.embedder)

    @bentoml.on_shutdown
    def drain(self) -> None:
        """Finish in-flight generations before the worker exits (new requests already get 503)."""
        runtime = app.state.runtime
        if runtime is not None:
            runtime.close(drain_timeout_s=float(os.environ.get("LLMSHIP_DRAIN_TIMEOUT_S", "30")))


# Keys, limits, request caps and the audit line (LLMSHIP_GATEWAY_*) in front of every route, BentoML's own too.
Chat.add_asgi_middleware(Gateway, service="chat", tokenizer=count_tokens)
