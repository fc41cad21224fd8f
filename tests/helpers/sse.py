"""Reading Server-Sent Events as the SSE spec splits them, from httpx streaming responses (sync and async)."""

from __future__ import annotations


class SseLines:
    """Split a byte stream into lines as SSE defines them: on CRLF, LF or CR only.

    Not httpx's ``iter_lines``/``aiter_lines``: they split like ``str.splitlines``, also on U+0085, U+2028 and
    U+2029, which JSON leaves unescaped inside strings, so a token holding one cuts a ``data:`` line in two (seen
    with the tiny random model). Feed chunks, then ``close()``; sync and async readers share it.
    """

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[str]:
        buf = self._buf + chunk
        hold = b"\r" if buf.endswith(b"\r") else b""  # maybe the first half of a CRLF
        if hold:
            buf = buf[:-1]
        *lines, rest = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._buf = rest + hold
        return [line.decode("utf-8", errors="replace") for line in lines]

    def close(self) -> list[str]:
        rest, self._buf = self._buf.strip(b"\r"), b""
        return [rest.decode("utf-8", errors="replace")] if rest else []


async def sse_lines(resp):
    """An httpx streaming response's SSE lines (``SseLines`` over ``aiter_bytes``)."""
    lines = SseLines()
    async for chunk in resp.aiter_bytes():
        for line in lines.feed(chunk):
            yield line
    for line in lines.close():
        yield line


def iter_sse_lines(resp):
    """The same for a synchronous httpx streaming response."""
    lines = SseLines()
    for chunk in resp.iter_bytes():
        yield from lines.feed(chunk)
    yield from lines.close()
