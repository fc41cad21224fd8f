"""Entity extraction (real spaCy model) and linking (pure functions, literal sentences)."""

from __future__ import annotations

import pytest

from llmship.knowledge.kg.entities import (
    Entity,
    EntityConfig,
    EntityExtractor,
    Mention,
    clean_surface,
    link,
    normalise,
    org_core,
    summarise,
)


def _m(text: str, label: str, chunk: str = "c1") -> Mention:
    return Mention(chunk_id=chunk, text=text, label=label, start=0, end=len(text))


@pytest.mark.parametrize(("raw", "clean"), [
    ("Ada Brenner's", "Ada Brenner"),
    ("Ada Brenner’s", "Ada Brenner"),
    ("the Vellhaven School of Commerce", "Vellhaven School of Commerce"),
    ("The  Vellmark\nFerries,", "Vellmark Ferries"),
    ("“Carrow Bay”.", "Carrow Bay"),
    ("(Vellmark Ferries')", "Vellmark Ferries"),
    ("ﬁsh Market", "fish Market"),  # NFKC: the ligature becomes two letters
    ("Théâtre  Royal", "Théâtre Royal"),
])
def test_clean_surface(raw, clean):
    assert clean_surface(raw) == clean


def test_normalise_casefolds_and_org_core_drops_suffixes():
    assert normalise("  The STRASSE Co’s ") == "strasse co"
    assert normalise("Straße") == "strasse"
    assert org_core(normalise("Vellmark Ferries Ltd.")) == "vellmark ferries"
    assert org_core(normalise("Harbour Works & Co")) == "harbour works"
    assert org_core(normalise("Brenner, Limited")) == "brenner"
    assert org_core("ltd") == "ltd"  # never empty


def test_person_short_names_link_to_the_unique_full_name():
    mentions = [_m("Ada Brenner", "PERSON"), _m("Brenner", "PERSON", "c2"), _m("Ada", "PERSON", "c3"),
                _m("Brenner's", "PERSON", "c4"), _m("Ada Brenner", "PERSON", "c5")]
    linking = link(mentions)
    assert linking.keys == ["PERSON:ada brenner"] * 5
    [ada] = linking.entities
    assert ada == Entity(key="PERSON:ada brenner", name="Ada Brenner", label="PERSON",
                         aliases=["Ada", "Brenner"], mention_count=5)


def test_ambiguous_surname_stays_its_own_entity():
    mentions = [_m("Ada Brenner", "PERSON"), _m("Tom Brenner", "PERSON"), _m("Brenner", "PERSON", "c2")]
    assert link(mentions).keys == ["PERSON:ada brenner", "PERSON:tom brenner", "PERSON:brenner"]


def test_org_suffix_variants_and_places_merge():
    mentions = [_m("Vellmark Ferries Ltd", "ORG"), _m("Vellmark Ferries", "ORG", "c2"),
                _m("the Vellmark Ferries", "ORG", "c3"), _m("Carrow Bay", "GPE"), _m("Carrow Bay", "LOC", "c2"),
                _m("Vellmark", "NORP"), _m("'s", "PERSON"), _m("1999", "ORG")]
    linking = link(mentions)
    assert linking.keys == ["ORG:vellmark ferries"] * 3 + ["PLACE:carrow bay"] * 2 + ["NORP:vellmark", None, None]
    by_key = {e.key: e for e in linking.entities}
    assert by_key["ORG:vellmark ferries"].name == "Vellmark Ferries"
    assert by_key["ORG:vellmark ferries"].aliases == ["Vellmark Ferries Ltd"]
    assert by_key["PLACE:carrow bay"].label == "PLACE"
    assert by_key["PLACE:carrow bay"].mention_count == 2


def test_one_type_per_form_by_majority_or_stored_entity():
    mentions = [_m("Halloway Gazette", "FAC"), _m("Halloway Gazette", "PERSON", "c2"),
                _m("the Halloway Gazette", "FAC", "c3"), _m("Quarrin", "GPE"), _m("Quarrin", "ORG", "c2")]
    assert link(mentions).keys == ["FAC:halloway gazette"] * 3 + ["ORG:quarrin"] * 2  # tie: alphabetical
    assert link(mentions, merge_types=False).keys == [
        "FAC:halloway gazette", "PERSON:halloway gazette", "FAC:halloway gazette", "PLACE:quarrin", "ORG:quarrin"]
    stored = [{"key": "PLACE:quarrin", "name": "Quarrin", "label": "PLACE", "aliases": []}]
    assert link(mentions, stored).keys[3:] == ["PLACE:quarrin"] * 2


def test_existing_entities_keep_their_keys():
    existing = [{"key": "PERSON:ada brenner", "name": "Ada Brenner", "label": "PERSON", "aliases": ["Ada"]},
                {"key": "ORG:vellmark ferries", "name": "Vellmark Ferries Ltd", "label": "ORG", "aliases": []}]
    linking = link([_m("Brenner", "PERSON"), _m("Ada", "PERSON"), _m("Vellmark Ferries Limited", "ORG"),
                    _m("Ora Quill", "PERSON")], existing)
    assert linking.keys == ["PERSON:ada brenner", "PERSON:ada brenner", "ORG:vellmark ferries", "PERSON:ora quill"]


def test_linking_is_deterministic_whatever_the_order():
    mentions = [_m("Ada Brenner", "PERSON"), _m("Brenner", "PERSON", "c2"), _m("Vellmark Ferries Ltd", "ORG"),
                _m("Carrow Bay", "GPE"), _m("Vellmark Ferries", "ORG", "c9"), _m("Ora Quill", "PERSON", "c3")]
    first = link(mentions)
    again = link(list(reversed(mentions)))
    assert first.entities == again.entities
    assert first.keys == list(reversed(again.keys))
    assert [e.key for e in first.entities] == sorted(e.key for e in first.entities)


def test_summarise_prefers_the_full_form():
    assert summarise("PERSON:ada brenner", {"Brenner": 5, "Ada Brenner": 2, "ADA BRENNER": 2}) == (
        "Ada Brenner", ["ADA BRENNER", "Brenner"], 9)
    assert summarise("PERSON:ada brenner", {"Brenner": 3}) == ("Brenner", [], 3)


def test_extractor_finds_kept_labels_only(extractor):
    chunks = [("c1", "Ada Brenner founded Vellmark Ferries Ltd in Carrow Bay in 1999."),
              ("c2", "Nothing to see here."),
              ("c3", "Ada Brenner later moved to London with Google.")]
    mentions = extractor.extract(chunks)
    assert extractor.nlp.pipe_names == ["tok2vec", "ner"]
    assert all(m.label in EntityConfig().labels for m in mentions)
    assert not any(m.label == "DATE" for m in mentions)
    for m in mentions:
        text = dict(chunks)[m.chunk_id]
        assert text[m.start:m.end] == m.text
    assert [m.chunk_id for m in mentions] == sorted(m.chunk_id for m in mentions)
    assert {"London", "Google"} <= {m.text for m in mentions if m.chunk_id == "c3"}
    assert extractor.extract(chunks) == mentions  # deterministic


def test_extractor_label_filter():
    only_places = EntityExtractor(EntityConfig(labels=("GPE",)))
    mentions = only_places.extract([("c", "Ada Brenner moved from Paris to London in 2001.")])
    assert {m.label for m in mentions} == {"GPE"}
