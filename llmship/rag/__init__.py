"""Retrieval-augmented answers: retrieve → rerank → a grounded prompt → the chat model → citations.

No BentoML here: ``bentos/rag`` composes these parts as services; tests and benchmarks run them in-process.
"""
