"""plan_refresh: compare the corpus with what the graph holds (hashes only)."""

from typing import Annotated

from zenml import step

from llmship.knowledge.ingest.embedding_refresh import Corpus, plan
from llmship.knowledge.ingest.refresh import RefreshPlan
from steps.knowledge._graph import connect


@step
def plan_refresh(corpus: Corpus) -> Annotated[RefreshPlan, "refresh_plan"]:
    with connect() as graph:
        return plan(corpus, graph)
