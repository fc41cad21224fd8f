"""One exception family for the whole core.

Every failure a user can cause or fix (a bad model source, a failed gate, a
port in use, an oversized request) is an ``LlmshipError`` with a one-line
message. The CLI prints that line and exits non-zero; the HTTP layer maps the
``status``/``type``/``code`` attributes onto the OpenAI error object.
"""

from __future__ import annotations

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "server_error"}


def error_body(message: str, status: int, *, type_: str | None = None, param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": _text(message), "type": _text(type_ or _TYPES.get(status, "server_error")),
                      "param": _text(param), "code": _text(code)}}


def _text(value: str | None) -> str | None:
    """Error text can quote the request (a model name, a parameter): keep it encodable as UTF-8, so rendering the
    error never fails — a lone surrogate there would turn a 404 into a crash."""
    if value is None:
        return None
    value = str(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value



class LlmshipError(Exception):
    """Base error: ``str(err)`` is a complete, single-line explanation."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.param = param
        if code is not None:
            self.code = code


class SourceError(LlmshipError):
    """A model source that cannot be resolved (missing folder, offline hub, corrupt GGUF)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_model_source"


class ExportError(LlmshipError):
    """ONNX export or ONNX Runtime load failed."""

    code = "export_failed"


class GateFailed(LlmshipError):
    """A candidate did not pass every validation gate; it must not be shipped."""

    status = 409
    type = "validation_error"
    code = "gate_failed"


class RegistryError(LlmshipError):
    """The model registry is unreachable or holds something unexpected."""

    code = "registry_error"


class ServeError(LlmshipError):
    """A serving process could not be started, reached or stopped."""

    code = "serve_error"


class InvalidRequest(LlmshipError):
    """A client request the API cannot honour (HTTP 400)."""

    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ModelNotFound(LlmshipError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class Conflict(LlmshipError):
    """The request cannot be done in the service's present state (a reload already running, several workers)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class EngineUnavailable(LlmshipError):
    """The engine is not loaded yet or is overloaded (HTTP 503)."""

    status = 503
    type = "server_error"
    code = "engine_unavailable"


class GraphError(LlmshipError):
    """The graph store cannot be started, reached or written (HTTP 503)."""

    status = 503
    type = "server_error"
    code = "graph_unavailable"


class GraphUnavailable(GraphError):
    """The graph server went away (killed, restarted, network gone) while an operation ran (HTTP 503).

    Built by ``lost``; a pipeline function that the outage interrupted names itself with ``in_job``, which
    turns the line into "... went away during kg_update (...): start it again ... and re-run kg_update; the
    run is safe to repeat" (the knowledge pipelines converge on re-runs). ``where``: the server's URI;
    ``during``: the graph operation; ``detail``: the driver's reason; ``remedy``: what brings it back."""

    where: str = ""
    during: str = ""
    detail: str = ""
    remedy: str = "bring it back"
    job: str | None = None

    @classmethod
    def lost(cls, where: str, during: str, detail: str, remedy: str) -> GraphUnavailable:
        detail = " ".join(str(detail).split())
        detail = detail if len(detail) <= 200 else detail[:197] + "..."
        err = cls(f"the graph at {where} went away during {during} ({detail}): {remedy} and retry")
        err.where, err.during, err.detail, err.remedy = where, during, detail, remedy
        return err

    def in_job(self, job: str) -> GraphUnavailable:
        """Name the pipeline run this interrupted (once; the innermost job wins) and say that a re-run is safe."""
        if self.job is None and self.where:
            self.job = job
            line = (f"the graph at {self.where} went away during {job} ({self.during}: {self.detail}): "
                    f"{self.remedy} and re-run {job}; the run is safe to repeat")
            self.args = (line,)
        return self


class AuthenticationError(LlmshipError):
    """A missing, unknown, revoked or expired API key (HTTP 401, like OpenAI's ``invalid_api_key``)."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(LlmshipError):
    """A valid key that may not use this model or route (HTTP 403)."""

    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class KeyRequestError(LlmshipError):
    """A key-management request that cannot be done (unknown name, duplicate name, bad expiry)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_key_request"


class RateLimited(LlmshipError):
    """A key over its requests/min, tokens/min or parallel-request limit (HTTP 429 with ``Retry-After``)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int = 1, headers: list[tuple[bytes, bytes]] | None = None,
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code)
        self.retry_after = max(1, int(retry_after))
        self.headers = list(headers or [])


class PayloadTooLarge(LlmshipError):
    """A request body over the size limit (HTTP 413)."""

    status = 413
    type = "invalid_request_error"
    code = "request_too_large"
