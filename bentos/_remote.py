"""``LlmshipError``s across BentoML service boundaries, both ways.

A service API turns an ``LlmshipError`` into an ``LlmshipServiceError`` (a ``BentoMLException`` whose
``error_code`` is the error's HTTP status and whose text is the OpenAI error object as JSON). BentoML answers a
4xx ``BentoMLException`` with ``[{"error": "<that text>"}]`` and that status; its client raises a
``BentoMLException`` subclass carrying the body; ``call_async``/``call_sync`` parse it back into the same
``LlmshipError`` class. BentoML hides the text of 5xx errors, so those come back as a 503 without the remote
message (the callee's log has it); a callee that cannot be reached at all is a 503 too.
"""

from __future__ import annotations

import functools
import json
from http import HTTPStatus
from typing import Any
from urllib.parse import urlparse

import httpx
from bentoml._internal.utils.uri import uri_to_path
from bentoml.exceptions import BentoMLException

from llmship import errors


class LlmshipServiceError(BentoMLException):
    """An ``LlmshipError`` on its way out of a BentoML service (no class-level ``error_code``: not registered
    in BentoML's status → exception mapping)."""

    def __init__(self, err: errors.LlmshipError) -> None:
        body = {"message": str(err), "type": err.type, "param": err.param, "code": err.code}
        super().__init__(json.dumps(body), error_code=HTTPStatus(err.status))


def error_from_text(text: str, status: int, what: str) -> errors.LlmshipError:
    """Rebuild the ``LlmshipError`` that ``LlmshipServiceError`` carried (local call or over HTTP)."""
    if status >= 500:
        return errors.EngineUnavailable(f"{what} failed ({status}); see its log")
    detail: Any = text
    for _ in range(3):  # '[{"error": "<json>"}]' over HTTP, '<json>' for an in-process call
        if isinstance(detail, list) and detail:
            detail = detail[0]
        if isinstance(detail, dict) and "error" in detail:
            detail = detail["error"]
        if isinstance(detail, str):
            try:
                detail = json.loads(detail)
            except ValueError:
                break
        else:
            break
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        message, param, code, type_ = detail["message"], detail.get("param"), detail.get("code"), detail.get("type")
    else:
        message, param, code, type_ = (f"{what}: {str(detail).strip() or HTTPStatus(status).phrase}",
                                       None, None, None)
    if code == errors.ContextLengthExceeded.code:
        return errors.ContextLengthExceeded(message, param=param)
    if status == 404:
        return errors.ModelNotFound(message, param=param)
    err = errors.InvalidRequest(message, param=param, code=code)
    err.status, err.type = status, type_ or err.type
    return err


_BY_CODE = {cls.code: cls for cls in (errors.GraphError, errors.EngineUnavailable, errors.ContextLengthExceeded,
                                      errors.ModelNotFound)}


def outage_payload(err: errors.LlmshipError) -> dict[str, Any]:
    """A 5xx ``LlmshipError`` as an API *result* (``{"error": {...}}``): BentoML would replace a raised 5xx's
    text with a generic one, and a caller deserves "cannot reach the graph at bolt://..."."""
    return {"error": {"message": str(err), "type": err.type, "param": err.param, "code": err.code,
                      "status": err.status}}


def raise_outage(result: Any) -> None:
    """Raise the ``LlmshipError`` an ``outage_payload`` result carries (no-op for a normal result)."""
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        e = result["error"]
        cls = _BY_CODE.get(e.get("code"), errors.EngineUnavailable)
        err = cls(str(e.get("message")), param=e.get("param"))
        err.status = int(e.get("status") or err.status)
        raise err


def dependency_http(dep: Any, *, sync: bool = False, timeout: float = 600.0) -> tuple[httpx.Client | httpx.AsyncClient,
                                                                                    str]:
    """A plain httpx client (and base URL) for a ``bentoml.depends`` dependency's address: the Unix socket
    (``file://``) or ``tcp://`` that ``bentoml serve`` gave it, or an ``http(s)`` URL. For calls BentoML's own
    client cannot make: another protocol (the chat service's OpenAI routes) or a call from a plain thread
    (its sync client needs an AnyIO worker thread)."""
    url = dep.to_async.url
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = uri_to_path(url)
        transport = httpx.HTTPTransport(uds=path) if sync else httpx.AsyncHTTPTransport(uds=path)
        base = "http://dependency.local"
    else:
        transport, base = None, f"http://{parsed.netloc}" if parsed.scheme == "tcp" else url.rstrip("/")
    cls = httpx.Client if sync else httpx.AsyncClient
    return cls(transport=transport, timeout=timeout), base


def _method(client: Any, name: str):
    method = getattr(client, name, None)  # in-process instance, or a remote proxy after its setup
    return method if method is not None else functools.partial(client.call, name)


async def call_async(dep: Any, name: str, what: str, **kwargs: Any) -> Any:
    """Call API ``name`` of a ``bentoml.depends`` dependency; every failure an ``LlmshipError``."""
    try:
        return await _method(dep.to_async, name)(**kwargs)
    except errors.LlmshipError:
        raise
    except BentoMLException as exc:
        raise error_from_text(str(exc), int(exc.error_code), what) from exc
    except Exception as exc:  # connection refused, timeout, a dependency still starting
        raise errors.EngineUnavailable(f"{what} is unavailable: {type(exc).__name__}: {exc}") from exc


def post_sync(client: httpx.Client, url: str, what: str, body: dict[str, Any]) -> Any:
    """POST a JSON body to a BentoML API route from a plain thread; errors as in ``call_async``."""
    try:
        response = client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise errors.EngineUnavailable(f"{what} is unavailable: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise error_from_text(response.text, response.status_code, what)
    return response.json()
