"""Which sources an answer cites, and the grounded prompt around them."""

from __future__ import annotations

from llmship.rag.citations import Citation, cite, markers
from llmship.rag.prompt import INSTRUCTION, fit_sources, grounded_messages


def _src(i: int, text: str, doc: str = "d.md") -> Citation:
    return Citation(index=i, doc_id=doc, chunk_id=f"{doc}#{i}", title=f"T{i}", score=1.0 / i, text=text)


SOURCES = [_src(1, "The Brackenholm Light stands on Skerry Point and can be seen for nineteen miles."),
           _src(2, "Quillbury blue is ripened for nine weeks in limestone caves near Dunmarrow."),
           _src(3, "Bake the saffron buns at 190 degrees for fourteen minutes.")]


def test_markers_in_every_form():
    assert markers("It is [2]. Also [1, 3] and [4][5]; not (6) or [x].") == {1, 2, 3, 4, 5}


def test_marker_citations_win_and_unknown_numbers_are_ignored():
    out = cite("Limestone caves [2], as also said in [9].", SOURCES)
    assert [(c.index, c.cited, c.cited_by) for c in out] == [(1, False, None), (2, True, "marker"),
                                                               (3, False, None)]
    assert SOURCES[1].cited is False  # inputs are not modified


def test_without_markers_a_copied_run_of_words_cites():
    out = cite("The buns go in at 190 degrees for fourteen minutes, then honey.", SOURCES)
    assert [c.index for c in out if c.cited] == [3]
    assert out[2].cited_by == "overlap"


def test_a_short_answer_cites_the_sources_holding_all_its_words():
    assert [c.index for c in cite("Skerry Point.", SOURCES) if c.cited] == [1]
    assert not any(c.cited for c in cite("I do not know.", SOURCES))
    assert not any(c.cited for c in cite("", SOURCES))


def test_fit_sources_keeps_whole_sources_best_first():
    assert [s.index for s in fit_sources(SOURCES, 160)] == [1, 2]
    assert [s.index for s in fit_sources(SOURCES, 10)] == [1]  # at least one, never cut


def test_grounded_messages_put_instruction_user_system_and_sources_first():
    msgs = grounded_messages([{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "Where is the light?"}], SOURCES[:1])
    assert [m["role"] for m in msgs] == ["system", "user"]
    system = msgs[0]["content"]
    assert system.startswith(INSTRUCTION)
    assert system.index("Be brief.") < system.index("[1] T1 (d.md)\nThe Brackenholm Light")
    assert msgs[1] == {"role": "user", "content": "Where is the light?"}
