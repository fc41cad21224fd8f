"""Start the RAG Bento next to a running chat server (what ``deploy`` and ``llmship serve rag`` do).

The RAG service answers with the chat server by URL (``LLMSHIP_RAG_CHAT_URL``), so the released chat model is
loaded once; its own processes are the retrieval, reranker and embedding services. It starts from the
source service in the repository (the graph, not the model, is what it carries), and its retrieval service
starts even while the graph is down (503 until it is back).
"""

from __future__ import annotations

from llmship.config import ServeConfig
from llmship.gateway.keys import KeyStore
from llmship.paths import REPO_ROOT
from llmship.serving import process
from llmship.serving.bento import bentoml_env

TARGET = "bentos.rag.service:Rag"
RAG_KEY = "llmship-rag"  # the RAG service's own key for the chat model when the gateway asks for keys


def start_rag(chat_url: str, *, model_uri: str = "-", host: str = "127.0.0.1", port: int = 3001,
              wait_s: float = 300.0, env: dict[str, str] | None = None) -> process.ServerInfo:
    full_env = {**bentoml_env(), **(env or {}), "LLMSHIP_RAG_CHAT_URL": chat_url}
    return process.start(TARGET, model_uri=model_uri, host=host, port=port, env=full_env, wait_s=wait_s,
                         cwd=REPO_ROOT)


def rag_env(config: ServeConfig, chat_model: str) -> dict[str, str]:
    """The RAG service's gateway settings (the chat service's), and — when they ask for keys — the RAG service's
    own key for the chat model (``llmship-rag``, limited to that model, re-issued on every deploy)."""
    env = config.rag_gateway().env()
    if config.gateway.auth:
        store = KeyStore(config.gateway.keys_path())
        try:
            _, key = store.issue(RAG_KEY, models=[chat_model])
        finally:
            store.close()
        env["LLMSHIP_RAG_CHAT_API_KEY"] = key
    return env
