"""The OpenAI-compatible HTTP surface: protocol models, errors and the FastAPI app."""
