"""Load a folder of documents (markdown, plain text, HTML) into plain text with stable ids and hashes.

One ``Document`` per readable file: ``id`` is the path relative to the folder (POSIX separators), so the
same corpus gives the same ids on every machine and a re-run can tell new, changed and deleted documents
apart by ``id`` and ``hash``. ``text`` is the normalised text (Unicode NFC, ``\\n`` line ends, no trailing
spaces, at most one blank line between paragraphs); ``hash`` is the sha256 of exactly that text, and chunk
offsets point into it.

A file that cannot be used — unreadable, binary (a NUL byte in its first 8 KiB) or not valid UTF-8 — is
skipped with a warning and listed in ``LoadResult.skipped``; one bad file never stops a refresh.

HTML becomes text with the standard library's ``html.parser``: ``<script>``, ``<style>``, ``<template>``,
``<noscript>`` and everything in ``<head>`` are dropped (``<title>`` becomes the title), block elements
(``p``, ``div``, headings, list items, table rows, ``br``…) end a paragraph, inline whitespace collapses
as a browser would, ``<pre>`` keeps its lines.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from llmship.errors import LlmshipError

log = logging.getLogger(__name__)

DEFAULT_PATTERNS: tuple[str, ...] = ("*.md", "*.txt", "*.html", "*.htm")
Format = Literal["markdown", "text", "html"]
_FORMATS: dict[str, Format] = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}
_SNIFF_BYTES = 8192


class Document(BaseModel):
    """One loaded document; ``hash`` is the sha256 (hex) of ``text``."""

    model_config = ConfigDict(frozen=True)
    id: str
    path: str
    title: str
    text: str
    hash: str
    format: Format


class SkippedFile(BaseModel):
    model_config = ConfigDict(frozen=True)
    path: str
    reason: str


class LoadResult(BaseModel):
    documents: list[Document]
    skipped: list[SkippedFile]

    def summary(self) -> str:
        return f"{len(self.documents)} documents loaded, {len(self.skipped)} files skipped"


def load_documents(folder: str | Path, patterns: Iterable[str] = DEFAULT_PATTERNS) -> LoadResult:
    """Every file under ``folder`` (recursively) whose name matches one of ``patterns``, sorted by id."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise LlmshipError(f"document folder {root} does not exist or is not a folder")
    candidates: dict[str, Path] = {}
    for pattern in patterns:
        for path in root.rglob(pattern):
            if not path.is_dir():  # a dangling symlink is kept: reading it reports it as unreadable
                candidates[path.relative_to(root).as_posix()] = path
    documents: list[Document] = []
    skipped: list[SkippedFile] = []
    for doc_id in sorted(candidates):
        path = candidates[doc_id]
        try:
            documents.append(parse_document(doc_id, path.read_bytes(), path=str(path)))
        except OSError as err:
            skipped.append(SkippedFile(path=doc_id, reason=f"unreadable: {err.strerror or err}"))
        except UnusableFile as err:
            skipped.append(SkippedFile(path=doc_id, reason=str(err)))
        else:
            continue
        log.warning("skipping %s: %s", doc_id, skipped[-1].reason)
    return LoadResult(documents=documents, skipped=skipped)


class UnusableFile(LlmshipError):
    """The bytes are not a text document (binary or not UTF-8)."""

    status = 400
    type = "invalid_request_error"
    code = "unusable_document"


def parse_document(doc_id: str, data: bytes, *, path: str | None = None) -> Document:
    """Bytes → ``Document``; the format comes from the id's suffix. Raises ``UnusableFile`` for non-text."""
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise UnusableFile("binary file (NUL bytes)")
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UnusableFile(f"not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})") from None
    fmt = _FORMATS.get(Path(doc_id).suffix.lower(), "text")
    stem = Path(doc_id).stem
    if fmt == "html":
        parser = _HtmlText()
        parser.feed(raw)
        parser.close()
        text = normalise_text(parser.text())
        title = " ".join(parser.title.split()) or _first_heading(text, markdown=False) or stem
    else:
        text = normalise_text(raw)
        title = (_first_heading(text, markdown=True) if fmt == "markdown" else None) or stem
    return Document(id=doc_id, path=path or doc_id, title=title, text=text, hash=text_hash(text), format=fmt)


def normalise_text(text: str) -> str:
    """NFC, ``\\n`` line ends, no trailing whitespace, at most one blank line in a row, stripped."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _first_heading(text: str, *, markdown: bool) -> str | None:
    if markdown:
        match = _HEADING.search(text)
        return match.group(1).strip() if match else None
    return None


_DROP = {"script", "style", "template", "noscript", "head", "svg", "iframe", "object"}
_BLOCK = {"p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "h1", "h2", "h3", "h4",
          "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "blockquote", "pre",
          "figure", "figcaption", "hr", "br", "address", "details", "summary", "body", "html", "form"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "track", "wbr"}


class _HtmlText(HTMLParser):
    """Collects visible text in paragraphs; ``title`` holds the ``<title>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self._blocks: list[str] = []
        self._current: list[str] = []
        self._drop_depth = 0
        self._drop_stack: list[str] = []
        self._in_title = False
        self._pre = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "title":
            self._in_title = True
        if tag == "body" and "head" in self._drop_stack:  # an unclosed <head> ends where <body> starts
            del self._drop_stack[self._drop_stack.index("head"):]
        if tag in _DROP and tag not in _VOID:
            self._drop_stack.append(tag)
            return
        if tag in _BLOCK:
            self._flush()
        if tag == "pre":
            self._pre += 1
        if tag in {"td", "th"} and self._current:
            self._current.append(" ")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag in _BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._drop_stack:  # close up to the matching open tag (tolerates unclosed inner tags)
            while self._drop_stack and self._drop_stack.pop() != tag:
                pass
            return
        if tag == "pre" and self._pre:
            self._flush()
            self._pre -= 1
            return
        if tag in _BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._drop_stack:
            return
        self._current.append(data)

    def _flush(self) -> None:
        raw = "".join(self._current)
        self._current = []
        if self._pre:
            text = "\n".join(line.rstrip() for line in raw.strip("\n").split("\n"))
        else:
            text = " ".join(raw.split())
        if text.strip():
            self._blocks.append(text)

    def text(self) -> str:
        self._flush()
        return "\n\n".join(self._blocks)
