"""describe_hosted: a hosted model source (openai:, litellm:) as the description the registry will keep."""

from typing import Annotated

from zenml import step

from llmship.config import BuildConfig
from llmship.hosted import HostedModel, describe
from steps._secrets import load_secrets


@step
def describe_hosted(config: BuildConfig) -> Annotated[HostedModel, "hosted_model"]:
    load_secrets(extra=(config.api_key_env,) if config.api_key_env else ())  # the key may live in the ZenML secret
    spec = describe(config)
    print(f"result: {spec.describe()}; key from {'$' + spec.api_key_env if spec.api_key_env else 'nowhere (none)'}")
    return spec
