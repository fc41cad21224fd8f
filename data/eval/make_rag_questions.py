"""Build ``data/eval/rag_questions.jsonl``: a labelled retrieval/QA set over the Vellmark demo corpus.

Deterministic: the facts come from ``data/corpus/facts.json``, the gold passages from the documents as the
pipeline loads them (``llmship.knowledge.ingest.documents.load_documents("data/corpus/docs")``, so HTML is already
text), and every choice (which entities, which phrasing) from ``random.Random(SEED)``. Running it twice writes
the same bytes.

For each fact the script finds the sentence of the entity's own page (``doc`` in facts.json) that states it,
and uses that sentence as ``gold`` (widened to a neighbouring line when shorter than 20 characters, cut around
the answer when longer than 200). Facts whose sentence (answer + entity name) also appears in another document
are used only when too few single-document facts of that kind exist; the gold page is then the canonical
page of the entity. Two-hop questions name an entity whose page (``via_doc_id``) leads to a second entity,
whose page holds the answer (``doc_id``/``gold``).

Before writing, every record is checked: ``gold`` is a verbatim substring of the loaded text of ``doc_id``,
20-200 characters long, and contains ``answer`` (case-insensitive); the bridge entity of a two-hop question
appears in ``via_doc_id``; ids are unique. Any failure raises ``SystemExit`` with the offending record.

    .venv/bin/python data/eval/make_rag_questions.py          # writes the JSONL
    .venv/bin/python data/eval/make_rag_questions.py --check  # verifies the existing file, writes nothing
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from llmship.knowledge.ingest.documents import load_documents

SEED = 20261105
FACTS = REPO / "data" / "corpus" / "facts.json"
DOCS = REPO / "data" / "corpus" / "docs"
OUT = REPO / "data" / "eval" / "rag_questions.jsonl"
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
GOLD_MIN, GOLD_MAX = 20, 200

# one-hop questions per kind (taken from the single-document facts first)
QUOTA_1HOP = {
    # people
    "birth_year": 3, "birthplace": 2, "education": 2, "study_subject": 2, "spouse": 2, "hobby": 2, "award": 2,
    "death_year": 1,
    # companies
    "founder": 3, "company_founded": 2, "hq": 3, "chief_executive": 2, "employees": 2,
    # towns
    "mayor": 3, "population": 2, "town_founded": 2, "landmark": 2, "market_day": 2, "town_river": 2,
    "twin_town": 1, "elevation": 1,
    # rivers
    "river_length": 2, "river_source": 1, "river_mouth": 1, "bridge": 2, "river_fish": 1, "tributary": 1,
    # products
    "product_maker": 3, "designer": 2, "launch_year": 2, "price": 2, "product_spec": 3,
    # festivals
    "festival_date": 3, "festival_town": 1, "festival_founder": 2, "festival_dish": 2, "festival_length": 1,
    "festival_attendance": 1,
    # history
    "event_date": 3, "event_place": 2, "event_person": 2,
    # recipes
    "recipe_servings": 2, "recipe_time": 2, "recipe_cook": 2, "recipe_town": 1, "recipe_festival": 1,
    # transport
    "route_operator": 3, "route_opened": 2, "route_engineer": 2, "route_vessel": 2, "route_duration": 2,
}
# two-hop patterns (named by their final fact type and bridge) → how many
QUOTA_2HOP = {
    "founder>chief_executive": 3, "product_maker>founder": 3, "birthplace>mayor": 3, "route_operator>chief_executive": 2,
    "recipe_festival>festival_date": 3, "festival_founder>birth_year": 2,
}
MAX_PER_DOC = 2  # at most this many one-hop questions share a gold document

_SPLIT = re.compile(r"(?<=[.!?”])\s+(?=[A-Z0-9“‘\"(])")
_MARKER = re.compile(r"^(?:[-*]|\d+[.)])\s+")


def strip_the(s: str) -> str:
    return s[4:] if s.lower().startswith("the ") else s


def poss(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def lower_the(title: str) -> str:
    return "the " + title[4:] if title.startswith("The ") else title


def num(n: int) -> str:
    return f"{n:,}"


def fmt_date(iso: str) -> str:
    y, m, d = (int(x) for x in iso.split("-"))
    return f"{d} {MONTHS[m - 1]} {y}"


# --------------------------------------------------------------------------- finding gold passages

def units(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence: lines split at sentence ends; list markers left out."""
    spans, pos = [], 0
    for line in text.split("\n"):
        start, pos = pos, pos + len(line) + 1
        if not line.strip():
            continue
        m = _MARKER.match(line)
        s = m.end() if m else 0
        for cut in _SPLIT.finditer(line):
            spans.append((start + s, start + cut.start()))
            s = cut.end()
        spans.append((start + s, start + len(line)))
    return spans


def find_gold(text: str, answers: list[str], anchors: list[str], must: list[str]) -> tuple[str, str] | None:
    """(answer, gold) from the first sentence holding an answer, one of ``anchors`` and all of ``must``."""
    spans = units(text)
    for answer in answers:
        for i, (a, b) in enumerate(spans):
            low = text[a:b].lower()
            if answer.lower() not in low or not all(x.lower() in low for x in must):
                continue
            if anchors and not any(x.lower() in low for x in anchors):
                continue
            j = i
            while b - a < GOLD_MIN and j > 0:  # too short (a list item): take in the line before,
                j -= 1                         # but never across a paragraph break (chunks may split there)
                if "\n\n" in text[spans[j][1]:a]:
                    break
                a = spans[j][0]
            if b - a < GOLD_MIN:
                continue
            if b - a > GOLD_MAX:  # too long: a window around the answer, cut at spaces
                at = text.lower().index(answer.lower(), a, b)
                lo = max(a, at - (GOLD_MAX - len(answer)) // 2)
                hi = min(b, lo + GOLD_MAX)
                lo = max(a, hi - GOLD_MAX)
                if lo > a:
                    lo = text.index(" ", lo, at) + 1 if " " in text[lo:at] else lo
                if hi < b:
                    hi = text.rindex(" ", at + len(answer), hi) if " " in text[at + len(answer):hi] else hi
                a, b = lo, hi
            return answer, text[a:b]
    return None


# --------------------------------------------------------------------------- candidate facts

def fact(kind, doc, answers, questions, *, anchors=(), must=(), subject, hops=1, via=None, bridge=None):
    if isinstance(answers, str):
        answers = [answers]
    return {"kind": kind, "doc": doc, "answers": [a for a in answers if a], "questions": list(questions),
            "anchors": list(anchors), "must": list(must), "subject": subject, "hops": hops, "via": via,
            "bridge": bridge}


def one_hop(f: dict) -> list[dict]:
    out: list[dict] = []
    add = out.append
    people = {p["name"]: p for p in f["people"]}
    for p in f["people"]:
        n, first, doc = p["name"], p["name"].split()[0], p["doc"]
        add(fact("birth_year", doc, str(p["born"]), [f"In what year was {n} born?", f"When was {n} born?",
                                                     f"What is {poss(n)} year of birth?"],
                 anchors=["born", "–"], subject=n))
        add(fact("birthplace", doc, p["birthplace"], [f"Which town does {n} come from?",
                                                      f"Where did {n} grow up?", f"Where was {n} born?"],
                 anchors=["born in", "grew up in", "school in", " was a "], subject=n))
        add(fact("education", doc, strip_the(p["education"]),
                 [f"Where did {n} study?", f"Which institution did {n} attend?",
                  f"At which college or university was {n} a student?"],
                 anchors=["studied", " read ", "graduat"], subject=n))
        add(fact("study_subject", doc, p["subject"], [f"What subject did {n} study?",
                                                      f"What did {n} read as a student?",
                                                      f"Which discipline was {n} trained in?"],
                 anchors=["studied", " read "], subject=n))
        if p["spouse"]:
            add(fact("spouse", doc, p["spouse"]["name"], [f"Who is {poss(n)} spouse?", f"Whom did {n} marry?",
                                                          f"Who is {n} married to?"],
                     anchors=["married"], subject=n))
        add(fact("hobby", doc, p["hobby"], [f"What does {n} do in their spare time?",
                                            f"What is {poss(n)} pastime outside work?"],
                 must=[first], subject=n))
        if p["award"]:
            a = p["award"]
            add(fact("award", doc, strip_the(a["name"]), [f"Which award did {n} receive in {a['year']}?",
                                                          f"What honour was {n} given in {a['year']}?"],
                     must=[str(a["year"])], subject=n))
        if p["died"]:
            add(fact("death_year", doc, str(p["died"]), [f"In what year did {n} die?", f"When did {n} die?"],
                     anchors=["died", "–"], subject=n))
    for c in f["companies"]:
        n, doc = c["name"], c["doc"]
        founders = " and ".join(c["founders"])
        add(fact("founder", doc, founders, [f"Who started {n}?", f"Who founded {n}?", f"Who set up {n}?"],
                 anchors=["found", "started", "opened the business"], subject=n))
        add(fact("company_founded", doc, str(c["founded"]), [f"In what year was {n} founded?",
                                                             f"When was {n} established?",
                                                             f"How old is {n}: in which year did it start?"],
                 anchors=["found", "started", "opened the business"], subject=n))
        add(fact("hq", doc, c["headquarters"], [f"Where is {n} based?", f"In which town does {n} have its head office?",
                                                f"Where are {poss(n)} headquarters?"],
                 anchors=["based in", "headquartered in"], subject=n))
        ceo = c["chief_executive"]
        add(fact("chief_executive", doc, ceo["name"], [f"Who runs {n}?", f"Who is the chief executive of {n}?",
                                                       f"Who currently leads {n}?"],
                 anchors=["chief executive", "run by"], subject=n))
        add(fact("employees", doc, num(c["employees"]), [f"How many people work for {n}?",
                                                         f"What is the size of {poss(n)} workforce?"],
                 anchors=["employ"], subject=n))
    for t in f["towns"]:
        n, doc = t["name"], t["doc"]
        m = t["mayor"]
        add(fact("mayor", doc, m["name"], [f"Who is the mayor of {n}?", f"Who leads the town council of {n}?",
                                           f"Who has been {n}'s mayor since {m['elected']}?"],
                 anchors=["mayor"], subject=n))
        add(fact("population", doc, num(t["population"]), [f"How many people live in {n}?",
                                                           f"What is the population of {n}?"],
                 anchors=["population", "people live", "lived there"], subject=n))
        add(fact("town_founded", doc, str(t["founded"]), [f"How far back does the history of {n} go?",
                                                          f"When was {n} founded?",
                                                          f"In what year did {n} come into being?"],
                 anchors=["charter", "go back", "founded"], subject=n))
        add(fact("landmark", doc, strip_the(t["landmark"]), [f"What is the best-known sight in {n}?",
                                                             f"Which landmark should a visitor to {n} see first?"],
                 subject=n))
        add(fact("market_day", doc, t["market_day"], [f"On which day of the week is the market held in {n}?",
                                                      f"When is market day in {n}?"],
                 anchors=["market"], subject=n))
        if t["river"]:
            add(fact("town_river", doc, t["river"], [f"Which river flows through {n}?",
                                                     f"On what river does {n} stand?"],
                     anchors=["runs through", "stands on", "crossing of"], subject=n))
            add(fact("elevation", doc, f"{t['elevation_m']} metres", [f"How high above sea level is the centre of {n}?",
                                                                       f"At what altitude does {n}'s town centre lie?"],
                     anchors=["sea level"], subject=n))
        if t["twin_town"]:
            add(fact("twin_town", doc, t["twin_town"], [f"Which town is {n} twinned with?",
                                                        f"What is {n}'s twin town?"],
                     anchors=["twinned"], subject=n))
    for r in f["rivers"]:
        n = r["name"] if r["name"].endswith("Water") else f"River {r['name']}"
        doc = r["doc"]
        add(fact("river_length", doc, [f"{r['length_km']} kilometres", f"{r['length_km']} km"],
                 [f"How long is the {n}?", f"What is the length of the {n}?"], subject=n))
        add(fact("river_source", doc, strip_the(r["source"]), [f"Where does the {n} rise?",
                                                               f"Where is the source of the {n}?"],
                 anchors=["ris"], subject=n))
        add(fact("river_mouth", doc, strip_the(r["mouth"]), [f"Where does the {n} end?",
                                                             f"Where does the {n} flow out?"],
                 anchors=["reaches", "flows"], subject=n))
        b = r["bridge"]
        add(fact("bridge", doc, strip_the(b["name"]), [f"What is the oldest surviving crossing of the {n}?",
                                            f"Which is the best-known bridge over the {n}?"],
                 must=[str(b["year"])], subject=n))
        add(fact("river_fish", doc, r["fish"], [f"What fish is the {n} fished for?",
                                                f"What do anglers mainly catch on the {n}?"],
                 anchors=["fished for", "catch"], subject=n))
        add(fact("tributary", doc, strip_the(r["tributary"]), [f"What is the main tributary of the {n}?",
                                                               f"Which stream is the {n}'s chief tributary?"],
                 anchors=["tributary"], subject=n))
    spec_q = {"weight": "How much does the {n} weigh?", "length": "How long is the {n}?",
              "top speed": "What is the top speed of the {n}?", "range": "What range does the {n} have?",
              "capacity": "What is the capacity of the {n}?", "seats": "How many seats does the {n} have?",
              "cars": "How many cars make up a {n}?", "passengers": "How many passengers can the {n} carry?",
              "gears": "How many gears does the {n} have?", "wingspan": "What is the wingspan of the {n}?",
              "flight time": "How long can the {n} stay in the air?"}
    for prod in f["products"]:
        n, doc = prod["name"], prod["doc"]
        add(fact("product_maker", doc, prod["company"], [f"Which company makes the {n}?", f"Who manufactures the {n}?",
                                                         f"Which firm produces the {n}?"],
                 anchors=["made by", "introduced"], subject=n))
        add(fact("designer", doc, prod["designer"], [f"Who designed the {n}?", f"Who was the designer of the {n}?"],
                 anchors=["designer"], subject=n))
        add(fact("launch_year", doc, str(prod["launched"]), [f"When did the {n} first come out?",
                                                             f"In what year was the {n} launched?"],
                 anchors=["appeared", "launch", "introduced"], subject=n))
        if prod["price_vkr"]:
            add(fact("price", doc, f"{num(prod['price_vkr'])} crowns", [f"How much does the {n} cost?",
                                                                         f"What is the price of the {n}?"],
                     anchors=["price"], subject=n))
        for key, value in prod["specs"].items():
            if key in spec_q:
                add(fact("product_spec", doc, value, [spec_q[key].format(n=n)], must=[key], subject=n))
    for fe in f["festivals"]:
        n, doc = fe["name"], fe["doc"]
        add(fact("festival_date", doc, fe["month"], [f"In which month is the {n} held?",
                                                     f"At what time of year does the {n} take place?",
                                                     f"When in the year can you go to the {n}?"],
                 anchors=["every"], subject=n))
        add(fact("festival_town", doc, fe["town"], [f"Where is the {n} held?", f"Which town hosts the {n}?"],
                 anchors=["held in", "hosts"], subject=n))
        if fe["founder"]:
            add(fact("festival_founder", doc, fe["founder"], [f"Who started the {n}?", f"Who organised the first {n}?"],
                     anchors=["started", "organised"], subject=n))
        add(fact("festival_dish", doc, fe["dish"], [f"What is the traditional food of the {n}?",
                                                    f"Which dish is eaten at the {n}?"],
                 anchors=["traditional dish", "stalls sell"], subject=n))
        add(fact("festival_length", doc, f"{fe['days']} day", [f"How long does the {n} last?",
                                                               f"Over how many days does the {n} run?"],
                 anchors=["lasts"], subject=n))
        add(fact("festival_attendance", doc, num(fe["attendance"]), [f"How many people go to the {n}?",
                                                                      f"How big is the usual crowd at the {n}?"],
                 anchors=["attend"], subject=n))
    for e in f["events"]:
        title, doc = lower_the(e["title"]), e["doc"]
        add(fact("event_date", doc, fmt_date(e["date"]), [f"On what date did {title} happen?",
                                                          f"What was the exact date of {title}?"],
                 subject=e["title"]))
        add(fact("event_place", doc, e["town"], [f"In which town did {title} take place?",
                                                 f"Where is {title} recorded as having happened?"],
                 anchors=[" at "], subject=e["title"]))
        if e["people"]:
            add(fact("event_person", doc, e["people"][0], [f"Name a person who was involved in {title}.",
                                                           f"Who is recorded as present at {title}?"],
                     subject=e["title"]))
    for r in f["recipes"]:
        n, doc = r["name"], r["doc"]
        add(fact("recipe_servings", doc, str(r["servings"]), [f"How many people does the {n} recipe feed?",
                                                                      f"How many portions does the {n} recipe make?"],
                 must=["serves"], subject=n))
        add(fact("recipe_time", doc, f"{r['minutes']} minutes", [f"How long does {n} take to make?",
                                                                  f"How much time do you need to prepare {n}?"],
                 anchors=["takes about"], subject=n))
        if r.get("cook"):
            add(fact("recipe_cook", doc, r["cook"], [f"Whose version of {n} does the recipe page give?",
                                                     f"Which cook's {n} is written up in the archive?"],
                     anchors=["cooked by"], subject=n))
        add(fact("recipe_town", doc, r["town"], [f"Which town does {n} come from?", f"Where does the dish {n} originate?"],
                 anchors=["from"], subject=n))
        if r["festival"]:
            add(fact("recipe_festival", doc, r["festival"], [f"At which festival is {n} served?",
                                                             f"Which festival is {n} eaten at?"],
                     anchors=["served at"], subject=n))
    for r in f["routes"]:
        n, doc = f"{r['name']} ({r['code']})", r["doc"]
        add(fact("route_operator", doc, r["operator"], [f"Which company operates the {n}?", f"Who runs the {n}?",
                                                        f"Which firm is responsible for services on the {n}?"],
                 anchors=["operated by"], subject=r["name"]))
        add(fact("route_opened", doc, str(r["opened"]), [f"When did the {n} open?",
                                                         f"In what year did the {n} start running?"],
                 anchors=["opened in"], subject=r["name"]))
        add(fact("route_engineer", doc, r["engineer"], [f"Who engineered the {n}?", f"Which engineer built the {n}?"],
                 anchors=["engineered"], subject=r["name"]))
        add(fact("route_vessel", doc, r["vessel"], [f"Which {'train' if r['kind'] == 'rail' else 'vessel'} is used on the {n}?",
                                                    f"What rolling stock or ship serves the {n}?"],
                 anchors=["services use", "served by"], subject=r["name"]))
        add(fact("route_duration", doc, f"{r['minutes']} minutes", [f"How long is the journey on the {n}?",
                                                                     f"How many minutes does a trip on the {n} take?"],
                 anchors=["journey"], subject=r["name"]))
    del people
    return out


def two_hop(f: dict) -> list[dict]:
    out: list[dict] = []
    add = out.append
    people = {p["name"]: p for p in f["people"]}
    companies = {c["name"]: c for c in f["companies"]}
    towns = {t["name"]: t for t in f["towns"]}
    festivals = {x["name"]: x for x in f["festivals"]}
    for p in f["people"]:
        founded = [r["company"] for r in p["roles"] if r["role"] == "founder"]
        if len(founded) == 1:
            c = companies[founded[0]]
            if c["chief_executive"]["name"] != p["name"]:
                add(fact("chief_executive", c["doc"], c["chief_executive"]["name"],
                         [f"Who is the chief executive of the company that {p['name']} founded?",
                          f"Who is the current chief executive of the firm {p['name']} set up?"],
                         anchors=["chief executive", "run by"], subject=c["name"], hops=2, via=p["doc"],
                         bridge=c["name"]))
        t = towns.get(p["birthplace"])
        if t and t["mayor"]["name"] != p["name"]:
            add(fact("mayor", t["doc"], t["mayor"]["name"],
                     [f"Who is the mayor of the town where {p['name']} was born?",
                      f"Who leads the council of {p['name']}'s home town?"],
                     anchors=["mayor"], subject=t["name"], hops=2, via=p["doc"], bridge=t["name"]))
    for prod in f["products"]:
        c = companies[prod["company"]]
        if prod["designer"] in c["founders"]:
            continue
        add(fact("founder", c["doc"], " and ".join(c["founders"]),
                 [f"Who founded the company that makes the {prod['name']}?",
                  f"Who started the firm behind the {prod['name']}?"],
                 anchors=["found", "started", "opened the business"], subject=c["name"], hops=2, via=prod["doc"],
                 bridge=c["name"]))
    for r in f["routes"]:
        c = companies[r["operator"]]
        add(fact("chief_executive", c["doc"], c["chief_executive"]["name"],
                 [f"Who is the chief executive of the company that operates the {r['name']}?",
                  f"Who leads the operator of the {r['name']} ({r['code']})?"],
                 anchors=["chief executive", "run by"], subject=c["name"], hops=2, via=r["doc"], bridge=c["name"]))
    for rec in f["recipes"]:
        if rec["festival"]:
            fe = festivals[rec["festival"]]
            add(fact("festival_date", fe["doc"], fe["month"],
                     [f"In which month is the festival that serves {rec['name']} held?",
                      f"When in the year does the festival known for {rec['name']} take place?"],
                     anchors=["every"], subject=fe["name"], hops=2, via=rec["doc"], bridge=fe["name"]))
    for fe in f["festivals"]:
        if fe["founder"]:
            p = people[fe["founder"]]
            add(fact("birth_year", p["doc"], str(p["born"]),
                     [f"In what year was the founder of the {fe['name']} born?",
                      f"When was the person who started the {fe['name']} born?"],
                     anchors=["born", "–"], subject=p["name"], hops=2, via=fe["doc"], bridge=p["name"]))
    return out


def pattern(c: dict, f: dict) -> str:
    """The QUOTA_2HOP key of a two-hop candidate (from the documents it links)."""
    via, doc = c["via"].split("/")[0], c["doc"].split("/")[0]
    return {("people", "companies"): "founder>chief_executive", ("products", "companies"): "product_maker>founder",
            ("people", "towns"): "birthplace>mayor", ("transport", "companies"): "route_operator>chief_executive",
            ("recipes", "festivals"): "recipe_festival>festival_date",
            ("festivals", "people"): "festival_founder>birth_year"}[(via, doc)]


# --------------------------------------------------------------------------- build and verify

def resolve(c: dict, texts: dict[str, str]) -> dict | None:
    """Attach ``answer``/``gold`` and ``others`` (other documents stating the same fact), or None."""
    found = find_gold(texts[c["doc"]], c["answers"], c["anchors"], c["must"])
    if not found:
        return None
    answer, gold = found
    subject = c["subject"].lower()
    others = sorted(d for d, t in texts.items() if d != c["doc"] and any(
        answer.lower() in line and subject in line for line in t.lower().split("\n")))
    return {**c, "answer": answer, "gold": gold, "others": others}


def build() -> list[dict]:
    f = json.loads(FACTS.read_text(encoding="utf-8"))
    texts = {d.id: d.text for d in load_documents(DOCS).documents}
    rng = random.Random(SEED)
    records: list[dict] = []
    used: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()  # (gold document, answer): never asked twice
    single_doc: list[bool] = []
    missing = Counter()

    def take(cands: list[dict], quota: int, label: str) -> None:
        ok = []
        for c in cands:
            r = resolve(c, texts)
            if r is None:
                missing[label] += 1
                continue
            r["questions"] = [q for q in r["questions"] if r["answer"].lower() not in q.lower()]
            if r["questions"]:
                ok.append(r)
        single = [r for r in ok if not r["others"]]
        multi = [r for r in ok if r["others"]]
        rng.shuffle(single)
        rng.shuffle(multi)
        n = 0
        for r in single + multi:
            if n == quota:
                break
            if (r["hops"] == 1 and used[r["doc"]] >= MAX_PER_DOC) or (r["doc"], r["answer"]) in seen:
                continue
            used[r["doc"]] += 1
            seen.add((r["doc"], r["answer"]))
            single_doc.append(not r["others"])
            records.append({"question": rng.choice(r["questions"]), "answer": r["answer"], "doc_id": r["doc"],
                            "gold": r["gold"], "kind": r["kind"], "hops": r["hops"],
                            **({"via_doc_id": r["via"], "_bridge": r["bridge"]} if r["hops"] == 2 else {})})
            n += 1
        if n < quota:
            raise SystemExit(f"make_rag_questions: only {n} of {quota} questions for {label} "
                             f"({len(ok)} usable, {missing[label]} without a gold sentence)")

    cands1 = one_hop(f)
    for kind, quota in QUOTA_1HOP.items():
        take([c for c in cands1 if c["kind"] == kind], quota, kind)
    cands2 = two_hop(f)
    for pat, quota in QUOTA_2HOP.items():
        take([c for c in cands2 if pattern(c, f) == pat], quota, pat)
    bridges = {}
    for i, r in enumerate(records, 1):
        r["id"] = f"q{i:03d}"
        if "_bridge" in r:
            bridges[r["id"]] = r.pop("_bridge")
    verify(records, texts, bridges)
    print(f"{sum(single_doc)} of {len(records)} facts are stated (answer + entity on one line) only in the gold "
          "document; the rest also appear in overview or related pages")
    return [{k: r[k] for k in ("id", "question", "answer", "doc_id", "gold", "kind", "hops", "via_doc_id") if k in r}
            for r in records]


def verify(records: list[dict], texts: dict[str, str], bridges: dict[str, str] | None = None) -> None:
    """Fail loudly unless every gold is verbatim in its document, 20-200 chars, and holds the answer."""
    errors = []
    ids = Counter(r["id"] for r in records)
    errors += [f"duplicate id {i}" for i, n in ids.items() if n > 1]
    for r in records:
        where = f"{r['id']} ({r['doc_id']})"
        text = texts.get(r["doc_id"])
        if text is None:
            errors.append(f"{where}: no such document")
            continue
        if r["gold"] not in text:
            errors.append(f"{where}: gold is not a verbatim substring of the loaded text: {r['gold']!r}")
        if not GOLD_MIN <= len(r["gold"]) <= GOLD_MAX:
            errors.append(f"{where}: gold is {len(r['gold'])} characters long")
        if r["answer"].lower() not in r["gold"].lower():
            errors.append(f"{where}: answer {r['answer']!r} not in gold {r['gold']!r}")
        if r["answer"].lower() in r["question"].lower():
            errors.append(f"{where}: the question gives the answer away")
        if r["hops"] == 2:
            via = texts.get(r.get("via_doc_id") or "")
            if via is None:
                errors.append(f"{where}: two-hop question without a valid via_doc_id")
            elif bridges and bridges.get(r["id"], "") not in via:
                errors.append(f"{where}: bridge {bridges[r['id']]!r} not found in {r['via_doc_id']}")
    if errors:
        raise SystemExit("make_rag_questions: verification failed:\n  " + "\n  ".join(errors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="verify the existing JSONL instead of writing it")
    args = ap.parse_args()
    if args.check:
        texts = {d.id: d.text for d in load_documents(DOCS).documents}
        records = [json.loads(line) for line in OUT.read_text(encoding="utf-8").splitlines() if line.strip()]
        verify(records, texts)
        print(f"{OUT.relative_to(REPO)}: {len(records)} questions verified")
        return
    records = build()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    kinds = Counter(r["kind"] for r in records)
    hops = Counter(r["hops"] for r in records)
    print(f"wrote {OUT.relative_to(REPO)}: {len(records)} questions, hops {dict(sorted(hops.items()))}, "
          f"{len(kinds)} kinds")


if __name__ == "__main__":
    main()
