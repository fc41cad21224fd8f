"""The embedding Bento (``service:Embedding``): MiniLM sentence embeddings, alone or composed into chat."""
