"""deploy: (re)start ``bentoml serve`` for the champion and wait until it answers; then (``serve.rag``) the RAG
service, answering with it."""

from typing import Annotated

from zenml import step

from llmship.config import RegistryConfig, ServeConfig
from llmship.registry import Promotion
from llmship.serving.bento import chat_service_env
from llmship.serving.process import ServerInfo, start, write_deploy_summary
from llmship.serving.rag import rag_env, start_rag
from steps._secrets import load_secrets
from steps._stack import tracking_uri


@step
def deploy(bento_tag: str, promotion: Promotion, registry: RegistryConfig, config: ServeConfig) -> Annotated[
        ServerInfo, "server"]:
    load_secrets()  # the services inherit them (LLMSHIP_RAG_CHAT_API_KEY, NEO4J_*)
    model_uri = f"models:/{registry.name}@champion"
    registry_uri = tracking_uri()
    env = chat_service_env(config, registry_uri)
    info = start(bento_tag, model_uri=model_uri, host=config.host, port=config.port, env=env, wait_s=config.wait_s)
    served = promotion.version if promotion.status == "champion" else promotion.previous_champion
    if info.version is None and served:  # behind the gateway's keys the start-up probe cannot read it
        info.version = f"{registry.name}/{served}"
    rag = start_rag(f"{info.url}/v1", model_uri=model_uri, host=config.host, port=config.rag_port,
                    wait_s=config.wait_s, env=rag_env(config, registry.name)) if config.rag else None
    write_deploy_summary(info, {"bento": bento_tag, "model_name": registry.name, "model_version": promotion.version,
                                "alias": "champion", "previous": promotion.previous_champion,
                                "rag_url": rag.url if rag else None,
                                # what `llmship rollback` needs to restart the same service on another version
                                "tracking_uri": registry_uri, "serve_config": config.model_dump(mode="json")})
    print(f"result: {info.url}/v1 serves {info.version}" + (f"; RAG at {rag.url}/v1" if rag else ""))
    return info
