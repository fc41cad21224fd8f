"""What the command groups share."""

DEFAULT_URL = "http://127.0.0.1:3000"
