"""build_bento: package the chat service (it loads models:/<name>@champion at start)."""

from typing import Annotated

from zenml import step

from llmship.config import ServeConfig
from llmship.registry import Promotion
from llmship.serving.bento import build_bento as build_bento_core


@step
def build_bento(promotion: Promotion, config: ServeConfig) -> Annotated[str, "bento_tag"]:
    # ``promotion`` is an input so the Bento is only built for a released champion.
    tag = build_bento_core(config.bentofile)
    print(f"result: bento {tag}")
    return tag
