"""Loading markdown, text and HTML: titles, HTML cleanup, ids, hashes, and the files that must be skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from llmship.errors import LlmshipError
from llmship.knowledge.ingest.documents import load_documents, normalise_text, text_hash
from tests.conftest import REPO

CORPUS = REPO / "data" / "corpus" / "docs"

HTML = """<!DOCTYPE html><html><head><title>  Harbour   Guide </title>
<style>body { color: red; } .x::after { content: "STYLE-TEXT"; }</style></head>
<body><nav>Home</nav><h1>The Harbour</h1><p>First   paragraph
spans lines.</p><script>var s = "SCRIPT-TEXT";</script><div>Second &amp; last<br>line two</div>
<ul><li>one</li><li>two</li></ul><pre>keep
  this</pre></body></html>"""


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("Intro line\n\n# The Title #\n\nBody text.\r\n\r\n\r\n\r\nMore.   \n")
    (tmp_path / "sub" / "notes.txt").write_text("\ufeffPlain notes\n")
    (tmp_path / "sub" / "page.html").write_text(HTML)
    (tmp_path / "b.htm").write_text("<p>No title here</p>")
    (tmp_path / "ignored.csv").write_text("a,b\n")
    (tmp_path / "bad.txt").write_bytes("caf\u00e9 in Latin-1".encode("latin-1"))
    (tmp_path / "logo.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (tmp_path / "gone.md").symlink_to(tmp_path / "missing.md")
    return tmp_path


def test_formats_titles_and_ids(folder):
    result = load_documents(folder)
    docs = {d.id: d for d in result.documents}
    assert list(docs) == ["a.md", "b.htm", "sub/notes.txt", "sub/page.html"]  # sorted, relative, POSIX
    assert docs["a.md"].format == "markdown" and docs["a.md"].title == "The Title"
    assert docs["a.md"].text == "Intro line\n\n# The Title #\n\nBody text.\n\nMore."
    assert docs["sub/notes.txt"].format == "text" and docs["sub/notes.txt"].title == "notes"
    assert docs["sub/notes.txt"].text == "Plain notes"  # BOM dropped
    assert docs["b.htm"].title == "b" and docs["b.htm"].text == "No title here"
    assert docs["sub/page.html"].path == str(folder / "sub" / "page.html")
    for doc in docs.values():
        assert doc.hash == text_hash(doc.text) == text_hash(normalise_text(doc.text))


def test_html_drops_script_style_and_keeps_paragraphs(folder):
    page = next(d for d in load_documents(folder).documents if d.id == "sub/page.html")
    assert page.format == "html" and page.title == "Harbour Guide"
    assert page.text.split("\n\n") == ["Home", "The Harbour", "First paragraph spans lines.", "Second & last",
                                       "line two", "one", "two", "keep\n  this"]
    for hidden in ("SCRIPT-TEXT", "STYLE-TEXT", "color", "Harbour Guide"):
        assert hidden not in page.text


def test_binary_undecodable_and_unreadable_files_are_skipped_counted_and_logged(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="llmship.knowledge.ingest.documents"):
        result = load_documents(folder)
    reasons = {s.path: s.reason for s in result.skipped}
    assert set(reasons) == {"bad.txt", "logo.md", "gone.md"}
    assert reasons["bad.txt"].startswith("not valid UTF-8") and "0xe9" in reasons["bad.txt"]
    assert reasons["logo.md"] == "binary file (NUL bytes)"
    assert reasons["gone.md"].startswith("unreadable")
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 3
    assert result.summary() == "4 documents loaded, 3 files skipped"


def test_patterns_and_determinism(folder):
    only_md = load_documents(folder, patterns=("*.md",))
    assert [d.id for d in only_md.documents] == ["a.md"]
    assert load_documents(folder) == load_documents(folder)
    with pytest.raises(LlmshipError, match="does not exist"):
        load_documents(folder / "nope")


def test_a_changed_file_changes_only_its_hash(folder):
    before = {d.id: d.hash for d in load_documents(folder).documents}
    (folder / "a.md").write_text("# The Title\n\nBody text changed.\n")
    (folder / "sub" / "notes.txt").write_text("Plain notes   \r\n")  # whitespace-only change: same text
    after = {d.id: d.hash for d in load_documents(folder).documents}
    assert after["a.md"] != before["a.md"]
    assert {k: v for k, v in after.items() if k != "a.md"} == {k: v for k, v in before.items() if k != "a.md"}


def test_demo_corpus_loads_with_exactly_the_two_planted_bad_files():
    result = load_documents(CORPUS)
    assert len(result.documents) >= 220
    assert sorted(s.path for s in result.skipped) == ["archive/ledger-1898-latin1.txt",
                                                     "attachments/scanned-timetable.txt"]
    assert {d.format for d in result.documents} == {"markdown", "text", "html"}
    assert not any("SCRIPT-SHOULD-BE-DROPPED" in d.text or "font-family" in d.text for d in result.documents)
    docs = {d.id: d for d in result.documents}
    assert '"}) MATCH (n) DETACH DELETE n //' in docs["notes/data-entry-incident-2022.md"].text
    assert "Ødegård" in docs["guides/cafe-asmund-vellhaven.md"].text
