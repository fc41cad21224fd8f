"""The web chat page the chat service serves at ``/chat`` (``index.html``, ``chat.js``, ``chat.css``).

Plain files, no build step and nothing fetched from elsewhere; the routes live in ``llmship.openai.app``.
"""
