"""The gateway: API keys, per-key limits and the audit trail in front of the chat and RAG services."""
