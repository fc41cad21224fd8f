"""The SSE line splitter the benchmarks and service tests read streams with: CR, LF and CRLF end a line (also
across chunk boundaries), and the Unicode line separators JSON leaves unescaped inside strings do not."""

from tests.helpers.sse import SseLines


def test_splits_only_where_sse_says_even_across_chunks():
    splitter = SseLines()
    chunks = [b'data: {"t": "a\xe2\x80\xa8b\xc2\x85c"}\r', b"\n\r", b"\ndata: [DO", b"NE]\rdata: x"]
    lines = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.close()
    assert lines == ['data: {"t": "a\u2028b\u0085c"}', "", "data: [DONE]", "data: x"]
    assert SseLines().close() == []
