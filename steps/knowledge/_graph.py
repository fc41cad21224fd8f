"""The graph a knowledge step talks to: ``NEO4J_*`` / ``LLMSHIP_GRAPH_*`` from the environment, else the embedded server."""

from llmship.knowledge.graph import GraphSettings, GraphStore


def connect() -> GraphStore:
    return GraphStore.connect(GraphSettings.from_env())
