"""Map every failure to the OpenAI error object ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmship.errors import LlmshipError, error_body

log = logging.getLogger(__name__)
def error_response(message: str, status: int, *, headers: dict | None = None, **kw) -> JSONResponse:
    return JSONResponse(error_body(message, status, **kw), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register handlers so no route ever answers in FastAPI's own error shape."""

    @app.exception_handler(LlmshipError)
    async def _llmship(_: Request, err: LlmshipError) -> JSONResponse:
        headers = {"Retry-After": str(getattr(err, "retry_after", 1))} if err.status in (429, 503) else None
        return error_response(str(err), err.status, type_=err.type, param=err.param, code=err.code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        if first.get("type") == "json_invalid":
            return error_response(f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".strip(),
                                  400, code="invalid_json")
        loc = [str(p) for p in first.get("loc", []) if p != "body"]
        param = ".".join(loc) or None
        if first.get("type") == "invalid_unicode":  # llmship.openai.protocol: where it is, in ctx
            param = (first.get("ctx") or {}).get("param") or param
            return error_response(f"{param or 'body'}: {first.get('msg')}", 400, param=param, code="invalid_unicode")
        if first.get("type") == "extra_forbidden":
            return error_response(f"Unrecognized request argument supplied: {param}", 400, param=param,
                                  code="unsupported_parameter")
        return error_response(f"{param or 'body'}: {first.get('msg', 'invalid value')}", 422, param=param,
                              code="invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(err.status_code)
        return error_response(str(err.detail), err.status_code, code=code, headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response("internal error", 500, type_="server_error")
