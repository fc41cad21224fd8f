"""serve_hosted: the running chat service serves the hosted champion under its registered name, in place."""

from typing import Annotated

from zenml import step

from llmship.config import RegistryConfig, ServeConfig
from llmship.registry import Promotion
from llmship.serving.hosted import serve_hosted as serve_hosted_core


@step
def serve_hosted(promotion: Promotion, registry: RegistryConfig, config: ServeConfig) -> Annotated[dict, "served"]:
    answer = serve_hosted_core(registry.name, config)
    print(f"{registry.name} is served until the service is redeployed; list it under serve.hosted to keep it")
    print(f"result: {config.url}/v1 serves {answer['version']} as {registry.name!r}")
    return answer
