"""deploy: serve the champion — a swap in place when only the model version changed, else (re)start ``bentoml
serve`` — and wait until it answers; then (``serve.rag``) the RAG service, answering with it."""

from typing import Annotated

from zenml import step

from llmship.config import RegistryConfig, ServeConfig
from llmship.registry import Promotion
from llmship.serving.deploy import deploy_release
from llmship.serving.hosted import hosted_key_names
from llmship.serving.process import ServerInfo
from steps._secrets import load_secrets
from steps._stack import tracking_uri


@step
def deploy(bento_tag: str, promotion: Promotion, registry: RegistryConfig, config: ServeConfig) -> Annotated[
        ServerInfo, "server"]:
    registry_uri = tracking_uri()
    # the services inherit them (LLMSHIP_RAG_CHAT_API_KEY, NEO4J_*, the hosted releases' key variables)
    load_secrets(extra=hosted_key_names(config.hosted, registry_uri))
    done = deploy_release(bento_tag, registry.name, promotion, config, registry_uri)
    how = ("swapped in place, no restart" + (", the engine the check ran on" if done.staged else "")
           if done.swapped else "started")
    print(f"result: {done.chat.url}/v1 serves {done.chat.version} ({how})"
          + (f"; RAG at {done.rag.url}/v1" if done.rag else ""))
    return done.chat
