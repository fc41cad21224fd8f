"""Generate the Vellmark demo corpus: a fictional island region, written for llmship (CC0).

    python data/corpus/generate.py            # rewrites data/corpus/docs/ and facts.json

Deterministic: one seeded ``random.Random`` drives every choice (people's roles, birth years, sentence
templates, file formats), so the same script always writes the same bytes. The fact tables in ``tables.json``
(beside this script: data, apart from the code that writes prose from them) are the single source of truth;
``facts.json`` records them (with the roles and years the generator derived and the document each entity is
described in) for the retrieval eval set.

Kinds of documents: towns, rivers, companies, people, products, festivals, historic events, recipes,
rail and ferry routes, four long overviews, two adversarial texts (Cypher-looking strings, non-ASCII), one
binary file and one Latin-1 (invalid UTF-8) text that a loader must skip.
"""

from __future__ import annotations

import html
import json
import random
import shutil
from pathlib import Path

SEED = 20261104
HERE = Path(__file__).resolve().parent
DOCS = HERE / "docs"  # the documents only: README.md, facts.json and this script stay outside
NOW = 2024
CUR = "Vellmark crowns (VKR)"

# --------------------------------------------------------------------------- fact tables
# The tables (towns, companies, people's names, sentence material, ...) are data: tables.json, next to this
# script. Records are JSON arrays in the order the code unpacks them.
_TABLES = json.loads((HERE / "tables.json").read_text(encoding="utf-8"))
DISTRICTS = _TABLES["DISTRICTS"]
TOWNS = _TABLES["TOWNS"]
RIVERS = _TABLES["RIVERS"]
COMPANIES = _TABLES["COMPANIES"]
PRODUCTS = _TABLES["PRODUCTS"]
FESTIVALS = _TABLES["FESTIVALS"]
EVENTS = _TABLES["EVENTS"]
RECIPES = _TABLES["RECIPES"]
ROUTES = _TABLES["ROUTES"]
FIRST_NAMES = _TABLES["FIRST_NAMES"]
SURNAMES = _TABLES["SURNAMES"]
EDUCATION = _TABLES["EDUCATION"]
SUBJECTS = _TABLES["SUBJECTS"]
INDUSTRY_FIELD = _TABLES["INDUSTRY_FIELD"]
HOBBIES = _TABLES["HOBBIES"]
AWARDS = _TABLES["AWARDS"]
WEEKDAYS = _TABLES["WEEKDAYS"]
MONTHS = _TABLES["MONTHS"]
EVENT_DETAILS = _TABLES["EVENT_DETAILS"]
PUB_ADJ = _TABLES["PUB_ADJ"]
PUB_NOUN = _TABLES["PUB_NOUN"]
CLUB = _TABLES["CLUB"]
TOWN_HISTORY = _TABLES["TOWN_HISTORY"]
PROMISES = _TABLES["PROMISES"]
QUOTES = _TABLES["QUOTES"]
PREMISES = _TABLES["PREMISES"]
IDEAS = _TABLES["IDEAS"]
PARENT_JOBS = _TABLES["PARENT_JOBS"]
ORDINALS = _TABLES["ORDINALS"]
PRAISE = _TABLES["PRAISE"]
TIPS = _TABLES["TIPS"]
VARIATIONS = _TABLES["VARIATIONS"]
OWNERSHIP = _TABLES["OWNERSHIP"]
INVESTMENTS = _TABLES["INVESTMENTS"]
STATION_FACILITIES = _TABLES["STATION_FACILITIES"]
COMPANY_MILESTONES = _TABLES["COMPANY_MILESTONES"]
KIND_HOW = _TABLES["KIND_HOW"]
EVENT_BACKGROUND = _TABLES["EVENT_BACKGROUND"]
QUARTER_NAMES = _TABLES["QUARTER_NAMES"]
QUARTER_TRAITS = _TABLES["QUARTER_TRAITS"]
THESES = _TABLES["THESES"]


# name, district, population, founded, river, coastal, known for, landmark, market day, elevation (m)

# name, length km, source, mouth, towns in order, fish, bridge (name, year), tributary

# name, industry, founded, headquarters, employees, what it does

# name, company, kind, launched, specs (label, value), price in VKR or None, description

# name, town, month, first held, days, what happens, attendance, dish served

# slug, title, date (y, m, d), town, kind, summary, number fact, participants wanted (roles)

# name, town, festival or None, servings, minutes, ingredients, steps, note

# code, name, kind, operator, stops, km, minutes, per day, opened, vessel or train


def slug(name: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in name)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def fmt_date(ymd: tuple[int, int, int]) -> str:
    y, m, d = ymd
    return f"{d} {MONTHS[m - 1]} {y}"


def join_names(items: list[str]) -> str:
    items = list(items)
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def num(n: int) -> str:
    return f"{n:,}"


# --------------------------------------------------------------------------- people and roles

class World:
    """The fact tables plus everything derived with the seeded RNG (people, roles, years)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        names_first = FIRST_NAMES[:]
        names_last = SURNAMES[:]
        rng.shuffle(names_first)
        rng.shuffle(names_last)
        self._names = [f"{f} {s}" for f, s in zip(names_first, names_last, strict=True)]
        self.people: dict[str, dict] = {}
        self.towns = {t[0]: dict(zip(["name", "district", "population", "founded", "river", "coastal", "known_for",
                                       "landmark", "market_day", "elevation_m"], t, strict=True)) for t in TOWNS}
        self.rivers = {r[0]: dict(zip(["name", "length_km", "source", "mouth", "towns", "fish", "bridge",
                                        "tributary"], r, strict=True)) for r in RIVERS}
        for r in self.rivers.values():
            r["bridge"] = {"name": r["bridge"][0], "year": r["bridge"][1]}
        self.companies = {c[0]: dict(zip(["name", "industry", "founded", "headquarters", "employees", "activity"], c,
                                         strict=True)) for c in COMPANIES}
        self.products = {p[0]: dict(zip(["name", "company", "kind", "launched", "specs", "price_vkr", "description"], p,
                                        strict=True)) for p in PRODUCTS}
        for p in self.products.values():
            p["specs"] = dict(p["specs"])
        self.festivals = {f[0]: dict(zip(["name", "town", "month", "first_held", "days", "activity", "attendance",
                                          "dish"], f, strict=True)) for f in FESTIVALS}
        self.events = {e[0]: dict(zip(["slug", "title", "date", "town", "kind", "summary", "number_fact",
                                       "participants_wanted"], e, strict=True)) for e in EVENTS}
        self.recipes = {r[0]: dict(zip(["name", "town", "festival", "servings", "minutes", "ingredients", "steps",
                                        "note"], r, strict=True)) for r in RECIPES}
        self.routes = {r[0]: dict(zip(["code", "name", "kind", "operator", "stops", "km", "minutes", "per_day",
                                       "opened", "vessel"], r, strict=True)) for r in ROUTES}
        self._assign_roles()

    # people are created on demand with a birth year that fits the first role that needs them
    def _new_person(self, born: int) -> dict:
        name = self._names.pop(0)
        rng = self.rng
        died = None
        if born < 1936:
            died = born + rng.randint(64, 93)
            if died > NOW - 1:
                died = None
        person = {"name": name, "born": born, "died": died, "birthplace": None, "roles": [], "field": None,
                  "education": None, "subject": None, "hobby": None, "award": None, "spouse": None}
        self.people[name] = person
        return person

    def _alive(self, p: dict, year: int) -> bool:
        return p["born"] + 20 <= year and (p["died"] is None or p["died"] >= year)

    def _pick(self, year: int, lo: int, hi: int, *, new_prob: float, exclude=(), prefer=()) -> dict:
        """A person aged ``lo``..``hi`` in ``year``: an existing one if possible (fewest roles first)."""
        rng = self.rng
        for name in prefer:
            p = self.people[name]
            if lo <= year - p["born"] <= hi and self._alive(p, year) and name not in exclude:
                return p
        pool = [p for p in self.people.values() if lo <= year - p["born"] <= hi and self._alive(p, year)
                and p["name"] not in exclude and len(p["roles"]) < 5]
        if pool and (rng.random() > new_prob or not self._names):
            pool.sort(key=lambda p: (len(p["roles"]), p["name"]))
            return rng.choice(pool[:max(1, len(pool) // 2)])
        return self._new_person(year - rng.randint(lo, hi))

    def _assign_roles(self) -> None:
        rng = self.rng
        for c in sorted(self.companies.values(), key=lambda c: (c["founded"], c["name"])):
            n = 2 if rng.random() < 0.35 else 1
            founders = []
            for _ in range(n):
                p = self._pick(c["founded"], 24, 50, new_prob=0.8, exclude=founders)
                founders.append(p["name"])
                p["roles"].append({"role": "founder", "company": c["name"], "year": c["founded"]})
                p["field"] = p["field"] or INDUSTRY_FIELD[c["industry"]]
            c["founders"] = founders
        for c in sorted(self.companies.values(), key=lambda c: c["name"]):
            since = rng.randint(max(c["founded"], 2008), 2023)
            p = self._pick(since, 38, 62, new_prob=0.5, prefer=c["founders"] if c["founded"] >= 1995 else ())
            c["chief_executive"] = {"name": p["name"], "since": since}
            p["roles"].append({"role": "chief executive", "company": c["name"], "year": since})
            p["field"] = p["field"] or INDUSTRY_FIELD[c["industry"]]
        for prod in sorted(self.products.values(), key=lambda p: (p["launched"], p["name"])):
            comp = self.companies[prod["company"]]
            prefer = comp["founders"] if rng.random() < 0.4 else ()
            p = self._pick(prod["launched"] - 2, 26, 58, new_prob=0.45, prefer=prefer)
            prod["designer"] = p["name"]
            p["roles"].append({"role": "designer", "product": prod["name"], "company": comp["name"],
                               "year": prod["launched"]})
            p["field"] = p["field"] or INDUSTRY_FIELD[comp["industry"]]
        used_mayors: set[str] = set()
        for t in sorted(self.towns.values(), key=lambda t: t["name"]):
            elected = rng.choice([2016, 2018, 2019, 2020, 2021, 2022, 2023])
            p = self._pick(elected, 34, 66, new_prob=0.55, exclude=used_mayors)
            used_mayors.add(p["name"])
            t["mayor"] = {"name": p["name"], "elected": elected}
            p["roles"].append({"role": "mayor", "town": t["name"], "year": elected})
            p["birthplace"] = t["name"]
            p["field"] = p["field"] or "public"
        for f in sorted(self.festivals.values(), key=lambda f: f["name"]):
            if f["first_held"] < 1800:
                f["founder"] = None
                continue
            p = self._pick(f["first_held"], 25, 60, new_prob=0.3)
            f["founder"] = p["name"]
            p["roles"].append({"role": "festival founder", "festival": f["name"], "year": f["first_held"]})
            p["birthplace"] = p["birthplace"] or f["town"]
            p["field"] = p["field"] or "public"
        for e in sorted(self.events.values(), key=lambda e: e["slug"]):
            names: list[str] = []
            for _ in range(e["participants_wanted"]):
                p = self._pick(e["date"][0], 22, 70, new_prob=0.25, exclude=names)
                names.append(p["name"])
                p["roles"].append({"role": "event", "event": e["slug"], "year": e["date"][0]})
                p["field"] = p["field"] or "public"
            e["people"] = names
        for r in sorted(self.recipes.values(), key=lambda r: r["name"]):
            if rng.random() < 0.5:
                p = self._pick(2015, 25, 75, new_prob=0.3)
                r["cook"] = p["name"]
                p["roles"].append({"role": "cook", "recipe": r["name"], "year": 2015})
            else:
                r["cook"] = None
        for route in sorted(self.routes.values(), key=lambda r: r["code"]):
            p = self._pick(route["opened"] - 3, 30, 60, new_prob=0.3)
            route["engineer"] = p["name"]
            p["roles"].append({"role": "route engineer", "route": route["code"], "year": route["opened"]})
            p["field"] = p["field"] or "engineering"
        # personal details
        towns = sorted(self.towns)
        weights = [self.towns[t]["population"] ** 0.5 for t in towns]
        for p in sorted(self.people.values(), key=lambda p: p["name"]):
            p["birthplace"] = p["birthplace"] or rng.choices(towns, weights)[0]
            p["field"] = p["field"] or "public"
            p["education"] = rng.choice(EDUCATION[p["field"]])
            p["subject"] = rng.choice(SUBJECTS[p["field"]])
            p["graduated"] = p["born"] + rng.randint(21, 24)
            p["hobby"] = rng.choice(HOBBIES)
            if rng.random() < 0.45:
                award, why = rng.choice(AWARDS)
                last = min(NOW - 1, p["died"] or NOW - 1)
                first = p["born"] + 35
                if first <= last:
                    p["award"] = {"name": award, "reason": why, "year": rng.randint(first, last)}
        singles = sorted((p for p in self.people.values()), key=lambda p: p["name"])
        rng.shuffle(singles)
        for a in singles:
            if a["spouse"] or rng.random() > 0.3:
                continue
            for b in singles:
                if b is not a and not b["spouse"] and abs(a["born"] - b["born"]) <= 7:
                    year = max(a["born"], b["born"]) + rng.randint(23, 33)
                    if (a["died"] or NOW) > year and (b["died"] or NOW) > year:
                        a["spouse"] = {"name": b["name"], "married": year}
                        b["spouse"] = {"name": a["name"], "married": year}
                        break
        # towns' rail/ferry stops, companies, festivals, people born there
        for t in self.towns.values():
            t["routes"] = [r["code"] for r in self.routes.values() if t["name"] in r["stops"]]
            t["companies"] = sorted(c["name"] for c in self.companies.values() if c["headquarters"] == t["name"])
            t["festivals"] = sorted(f["name"] for f in self.festivals.values() if f["town"] == t["name"])
            t["born_here"] = sorted(p["name"] for p in self.people.values() if p["birthplace"] == t["name"])
            t["twin_town"] = None
        twins = ["Port Ellis", "Saint-Aubin-sur-Mer", "Lerwick", "Tromsø", "Stromness", "Kirkwall", "Bergen",
                 "Dingle", "Douarnenez", "Esbjerg", "Skagen", "Cobh"]
        for t, twin in zip(rng.sample(sorted(self.towns), len(twins)), twins, strict=True):
            self.towns[t]["twin_town"] = twin


# --------------------------------------------------------------------------- documents as blocks

class Doc:
    def __init__(self, path: str, title: str, kind: str, entity: str | None) -> None:
        self.path, self.title, self.kind, self.entity = path, title, kind, entity
        self.blocks: list[tuple[str, object]] = []

    def h(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def p(self, *sentences: str) -> None:
        text = " ".join(s.strip() for s in sentences if s and s.strip())
        if text:
            self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def ol(self, items: list[str]) -> None:
        self.blocks.append(("ol", list(items)))


def render(doc: Doc, fmt: str, rng: random.Random) -> str:
    if fmt == "md":
        out = [f"# {doc.title}", ""]
        for kind, body in doc.blocks:
            if kind == "h2":
                out += [f"## {body}", ""]
            elif kind == "p":
                out += [body, ""]
            elif kind == "ul":
                out += [f"- {item}" for item in body] + [""]
            elif kind == "ol":
                out += [f"{i}. {item}" for i, item in enumerate(body, 1)] + [""]
        return "\n".join(out).rstrip() + "\n"
    if fmt == "txt":
        out = [doc.title.upper(), "=" * len(doc.title), ""]
        for kind, body in doc.blocks:
            if kind == "h2":
                out += [body, "-" * len(body), ""]
            elif kind == "p":
                out += [body, ""]
            elif kind == "ul":
                out += [f"* {item}" for item in body] + [""]
            elif kind == "ol":
                out += [f"{i}) {item}" for i, item in enumerate(body, 1)] + [""]
        return "\n".join(out).rstrip() + "\n"
    e = html.escape
    colour = rng.choice(["#1d3557", "#264653", "#3d405b", "#2b2d42"])
    out = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "  <meta charset=\"utf-8\">",
           f"  <title>{e(doc.title)} | Vellmark Archive</title>",
           "  <style>", f"    body {{ font-family: Georgia, serif; color: {colour}; max-width: 42em; }}",
           "    .nav a::after { content: \" | hidden style text\"; }", "  </style>", "</head>", "<body>",
           "  <nav class=\"nav\"><a href=\"/\">Vellmark Archive</a></nav>", "  <article>",
           f"    <h1>{e(doc.title)}</h1>"]
    for kind, body in doc.blocks:
        if kind == "h2":
            out.append(f"    <h2>{e(body)}</h2>")
        elif kind == "p":
            out.append(f"    <p>{e(body)}</p>")
        elif kind in ("ul", "ol"):
            out.append(f"    <{kind}>")
            out += [f"      <li>{e(item)}</li>" for item in body]
            out.append(f"    </{kind}>")
    out += ["  </article>", "  <script>",
            "    // analytics stub: must never reach the text index",
            "    window.vellmarkTrackingPixel = function () { return \"SCRIPT-SHOULD-BE-DROPPED\"; };",
            "  </script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- extra detail (seeded pools)


class Extras:
    """Extra paragraphs of per-entity detail, all drawn from the seeded RNG (mixed into ``Writer``)."""

    def y(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, max(lo, hi))

    def extra_town(self, d: Doc, t: dict) -> None:
        w, rng = self.w, self.rng
        d.h(self.pick("History", "A short history", "Past"))
        picks = rng.sample(TOWN_HISTORY, rng.randint(2, 4))
        years = sorted(self.y(max(t["founded"] + 200, 1700), 1995) for _ in picks)
        facts = [s.format(y=year, n=rng.randint(18, 240)) for s, year in zip(picks, years, strict=True)]
        d.p(*(f"{f[0].upper()}{f[1:]}." for f in facts))
        evs = [e for e in w.events.values() if e["town"] == t["name"]]
        if evs:
            d.p(*(f"The town's history includes {e['title'][0].lower() + e['title'][1:]} on {fmt_date(e['date'])}: "
                  f"{e['summary']}." for e in evs))
        d.h(self.pick("Daily life", "Living there", "Around town"))
        pub_year = self.y(max(t["founded"] + 150, 1600), 1900)
        rain = (900 if t["district"] == "South Shore" else 1300) + t["elevation_m"] * 3 + rng.randint(-80, 120)
        d.p(self.pick(f"The oldest pub is The {rng.choice(PUB_ADJ)} {rng.choice(PUB_NOUN)}, licensed since {pub_year}.",
                      f"Locals drink at The {rng.choice(PUB_ADJ)} {rng.choice(PUB_NOUN)}, which has held a licence "
                      f"since {pub_year}."),
            self.pick(f"{t['name']} {rng.choice(CLUB)} play football at {rng.choice(['Quay', 'Mill', 'Church', 'Fair'])}"
                      f" Park, which holds {num(rng.randint(8, 60) * 100)} spectators.",
                      f"The town's rugby club was founded in {self.y(1872, 1930)}."),
            f"Average rainfall is about {num(rain)} mm a year.")
        dishes = [r["name"] for r in w.recipes.values() if r["town"] == t["name"]]
        if dishes:
            d.p(f"Local dishes include {join_names(dishes)}.")

    def extra_company(self, d: Doc, c: dict) -> None:
        w, rng = self.w, self.rng
        d.h(self.pick("The company today", "Today", "Recent years"))
        year = self.y(max(c["founded"], 2012), 2023)
        owners = OWNERSHIP if c["founded"] >= 1970 else OWNERSHIP[:-1]
        d.p(self.pick(f"The company is {rng.choice(owners)}.", f"Today it is {rng.choice(owners)}."),
            f"In {year} it invested {rng.randint(2, 40)} million crowns in {rng.choice(INVESTMENTS)}.",
            self.pick(f"It takes on about {rng.randint(2, 25)} apprentices a year.",
                      f"About {rng.randint(25, 60)} % of its staff are women.",
                      f"Its staff have an average length of service of {rng.randint(6, 19)} years."))
        fests = [f for f in w.festivals.values() if f["town"] == c["headquarters"]]
        if fests:
            d.p(f"It sponsors the {fests[0]['name']} in {c['headquarters']}.")
        other = rng.choice([t for t in sorted(w.towns) if t != c["headquarters"]])
        if rng.random() < 0.5:
            d.p(f"Besides its head office in {c['headquarters']} it has a {rng.choice(['depot', 'workshop', 'shop', 'warehouse'])} "
                f"in {other}, opened in {self.y(max(c['founded'] + 5, 1950), 2022)}.")

    def extra_person(self, d: Doc, p: dict) -> None:
        rng = self.rng
        first = p["name"].split()[0]
        intro = [self.pick(f"{first}'s {rng.choice(['mother', 'father'])} was a {rng.choice(PARENT_JOBS)} in "
                           f"{p['birthplace']}.",
                           f"{first} grew up in {p['birthplace']}, the {rng.choice(ORDINALS)} child of a "
                           f"{rng.choice(PARENT_JOBS)}.")]
        d.blocks.insert(1, ("h2", self.pick("Early life", "Childhood", "Youth")))
        d.blocks.insert(2, ("p", " ".join(intro)))
        extra = []
        for role in p["roles"]:
            if role["role"] == "founder":
                extra.append(f"The first premises of {role['company']} were {rng.choice(PREMISES)}, with "
                             f"{rng.randint(2, 12)} staff.")
            elif role["role"] == "designer":
                extra.append(f"The key idea of the {role['product']} was {rng.choice(IDEAS)}.")
            elif role["role"] == "mayor":
                extra.append(f"{first} won the {role['town']} mayoral election with {rng.randint(41, 68)} % of the "
                             f"vote, promising to {rng.choice(PROMISES)}.")
            elif role["role"] == "chief executive":
                extra.append(f"Under {first}'s leadership {role['company']} grew by {rng.randint(4, 60)} %.")
        if extra:
            personal = max(i for i, (kind, body) in enumerate(d.blocks)
                           if kind == "h2" and body in ("Personal life", "Private life", "Outside work"))
            d.blocks.insert(personal, ("p", " ".join(extra)))
        if rng.random() < 0.6:
            quote_year = self.y(p["born"] + 30, min(NOW - 1, p["died"] or NOW - 1))
            d.p(f"“{rng.choice(QUOTES)}” {first} told the Halloway Gazette in {quote_year}.")

    def extra_product(self, d: Doc, prod: dict) -> None:
        rng = self.rng
        made = rng.choice([40, 120, 900, 2400, 18000, 65000])
        d.h(self.pick("Production and reception", "Reception", "Sales"))
        d.p(f"About {num(made)} have been made or sold so far.",
            f"The Halloway Gazette called it “{rng.choice(PRAISE)}”.",
            self.pick(f"A revised version followed in {self.y(prod['launched'] + 3, 2023)}.",
                      f"It won the Tidewater Award in {self.y(prod['launched'] + 1, 2023)}.",
                      f"Spare parts are guaranteed for {rng.randint(5, 30)} years."))

    def extra_festival(self, d: Doc, f: dict) -> None:
        rng = self.rng
        d.h(self.pick("Traditions", "Customs", "Programme"))
        if f["days"] > 1:
            acts = ["opening parade", "markets and music", "contests", "children's day", "dance in the square",
                    "boat parade"]
            d.ul([f"Day {i + 1}: {act}" for i, act in enumerate(rng.sample(acts, f["days"] - 1))]
                 + [f"Day {f['days']}: prize-giving"])
        record = self.y(max(f["first_held"] + 20, 1950), 2023)
        d.p(self.pick(f"The winner of the main contest receives a {rng.choice(['silver cup', 'carved crook', 'Dune Lantern', 'Lantry clock', 'wheel of cheese'])}.",
                      "Anyone who comes in fancy dress gets in free.",
                      f"A bell is rung {rng.randint(3, 12)} times to open the festival."),
            f"The record attendance was in {record}, with {num(int(f['attendance'] * rng.uniform(1.1, 1.6)))} people.",
            self.pick("Entry is free.", f"A day ticket costs {rng.randint(4, 25)} crowns."))

    def extra_event(self, d: Doc, e: dict) -> None:
        details = EVENT_DETAILS.get(e["slug"], [])
        if details:
            d.blocks.insert(1, ("h2", self.pick("What happened", "The day", "Details")))
            d.blocks.insert(2, ("p", " ".join(details)))

    def extra_recipe(self, d: Doc, r: dict) -> None:
        rng = self.rng
        d.h(self.pick("Tips and variations", "Notes", "Cook's notes"))
        d.p(rng.choice(TIPS), rng.choice(VARIATIONS),
            f"The recipe was first written down in The Vellmark Almanac of {self.y(1853, 1990)}.")

    def extra_route(self, d: Doc, r: dict) -> None:
        rng = self.rng
        d.h("Stops" if r["kind"] == "rail" else "Ports")
        d.ul([f"{s}: {rng.choice(STATION_FACILITIES)}" for s in r["stops"]])
        d.p(self.pick(f"The route was {rng.choice(['doubled', 'extended', 'rebuilt', 'resignalled'])} in "
                      f"{self.y(r['opened'] + 10, 2022)}.",
                      f"Services were suspended for {rng.randint(2, 40)} days in {self.y(r['opened'] + 5, 2022)} "
                      "after storm damage.",
                      f"About {num(rng.randint(40, 2400) * 100)} passengers use it each year."))


def whos_who(wr) -> Doc:
    w = wr.w
    d = Doc("guides/whos-who", "Who's Who in Vellmark", "guide", None)
    d.p("Short entries for the people mentioned in this knowledge base, in alphabetical order of surname. Each "
        "person has a full page in the people folder.")
    for p in sorted(w.people.values(), key=lambda p: (p["name"].split()[-1], p["name"])):
        life = f"{p['born']}–{p['died']}" if p["died"] else f"born {p['born']}"
        roles = []
        for role in p["roles"]:
            if role["role"] == "founder":
                roles.append(f"founded {role['company']} ({role['year']})")
            elif role["role"] == "chief executive":
                roles.append(f"chief executive of {role['company']} since {role['year']}")
            elif role["role"] == "designer":
                roles.append(f"designed the {role['product']} ({role['year']})")
            elif role["role"] == "mayor":
                roles.append(f"mayor of {role['town']} since {role['year']}")
            elif role["role"] == "festival founder":
                roles.append(f"started the {role['festival']} ({role['year']})")
            elif role["role"] == "route engineer":
                roles.append(f"engineer of route {role['route']}")
        d.p(f"{p['name']} ({life}), from {p['birthplace']}" + (": " + "; ".join(roles) + "." if roles else "."))
    return d


# (earliest year, latest year, what happened)


class Extras2:
    def extra2_company(self, d: Doc, c: dict) -> None:
        rng, w = self.rng, self.w
        other = rng.choice([t for t in sorted(w.towns) if t != c["headquarters"]])
        decades = list(range((c["founded"] // 10 + 1) * 10, 2021, 10))
        lines, used = [], set()
        for decade in decades:
            if rng.random() > 0.6:
                continue
            year = decade + rng.randint(0, 9)
            options = [m for m in COMPANY_MILESTONES if m[0] <= year <= m[1] and m[2] not in used
                       and year >= c["founded"] + 3]
            if not options:
                continue
            ms = rng.choice(options)[2]
            used.add(ms)
            lines.append(self.pick(f"In {year} the company {ms}.", f"{year}: the company {ms}.",
                                   f"It {ms} in {year}.").format(hq=c["headquarters"], other=other))
        if not lines:
            return
        d.h(self.pick("Decade by decade", "Milestones", "A longer history"))
        for i in range(0, len(lines), 4):
            d.p(*lines[i:i + 4])

    def extra2_person(self, d: Doc, p: dict) -> None:
        rng, w = self.rng, self.w
        first = p["name"].split()[0]
        if rng.random() < 0.5:
            boards = [c for c in sorted(w.companies) if all(r.get("company") != c for r in p["roles"])]
            d.p(self.pick(f"{first} also sits on the board of {rng.choice(boards)}.",
                          f"{first} has been a trustee of the {rng.choice(['Vellmark Lifeboat Fund', 'Halloway Museum', 'Island Heritage Trust', 'Kelloch Light Society'])} "
                          f"since {self.y(p['born'] + 40, min(NOW - 1, p['died'] or NOW - 1))}."))
        dates = [f"{p['born']}: born in {p['birthplace']}", f"{p['graduated']}: graduates from {p['education']}"]
        for role in sorted(p["roles"], key=lambda r: r["year"]):
            what = {"founder": lambda r: f"founds {r['company']}",
                    "chief executive": lambda r: f"becomes chief executive of {r['company']}",
                    "designer": lambda r: f"the {r['product']} is launched",
                    "mayor": lambda r: f"elected mayor of {r['town']}",
                    "festival founder": lambda r: f"first {r['festival']}",
                    "event": lambda r: w.events[r["event"]]["title"],
                    "cook": lambda r: f"recipe for {r['recipe']} printed in the Almanac",
                    "route engineer": lambda r: f"the {w.routes[r['route']]['name']} opens"}[role["role"]](role)
            dates.append(f"{role['year']}: {what}")
        if p["spouse"]:
            dates.append(f"{p['spouse']['married']}: marries {p['spouse']['name']}")
        if p["award"]:
            dates.append(f"{p['award']['year']}: {p['award']['name']}")
        if p["died"]:
            dates.append(f"{p['died']}: dies")
        if len(dates) >= 4:
            d.h("Key dates")
            d.ul(sorted(dates))

    def extra2_product(self, d: Doc, prod: dict) -> None:
        rng = self.rng
        d.h(self.pick("How it is made", "Making it", "Manufacture"))
        d.p(*rng.sample(KIND_HOW["default"], 2),
            f"The {prod['name']} is made at {prod['company']}'s works in {self.w.companies[prod['company']]['headquarters']}.")
        versions = sorted({self.y(prod["launched"] + 2, 2023) for _ in range(rng.randint(0, 3))})
        if versions:
            d.ul([f"{prod['launched']}: original {prod['kind']}"] +
                 [f"{y}: Mark {'I' * (i + 2) if i < 2 else 'IV'}" for i, y in enumerate(versions)])

    def extra2_event(self, d: Doc, e: dict) -> None:
        rng = self.rng
        y = e["date"][0]
        d.h(self.pick("Background", "Context"))
        size = "small" if y < 1800 else "growing" if y < 1950 else "busy"
        medium = "horseback" if y < 1850 else "telegraph" if y < 1920 else "radio" if y < 1990 else "phone"
        season = ["winter", "winter", "spring", "spring", "spring", "summer", "summer", "summer", "autumn",
                  "autumn", "autumn", "winter"][e["date"][1] - 1]
        d.p(*(s.format(town=e["town"], size=size, medium=medium, season=season,
                       weather=rng.choice(["wet", "dry", "mild", "stormy", "cold"]))
              for s in rng.sample(EVENT_BACKGROUND, 2)))

    def extra2_river(self, d: Doc, r: dict) -> None:
        rng = self.rng
        d.h("The river path")
        d.p(f"A waymarked path follows the river for {rng.randint(r['length_km'] // 2, r['length_km'])} km.",
            f"It is easiest walked downstream, from {r['towns'][0]} to {r['towns'][-1]}, in "
            f"{rng.randint(1, 3)} days.",
            self.pick("There are youth hostels at both ends.", "Dogs must be kept on leads in the lambing season.",
                      "The path floods in winter below the last town."))
        d.h("Water quality")
        d.p(f"The river was rated {rng.choice(['excellent', 'good', 'good', 'moderate'])} in the 2022 island survey.",
            f"Sewage overflows fell by {rng.randint(20, 80)} % after a new treatment works opened in "
            f"{self.y(1995, 2020)}.")

    def extra2_route(self, d: Doc, r: dict) -> None:
        rng = self.rng
        h, m = rng.randint(6, 8), rng.choice([0, 10, 20, 30, 40, 50])
        gap = max(15, (15 * 60) // max(r["per_day"], 1))
        times = []
        for i in range(min(r["per_day"], 8)):
            t = h * 60 + m + i * gap
            times.append(f"{t // 60:02d}:{t % 60:02d}")
        d.h("Sample weekday departures")
        d.p(f"From {r['stops'][0]}: " + ", ".join(times) + ".")


class Extras3:
    def extra3_person(self, d: Doc, p: dict) -> None:
        rng, w = self.rng, self.w
        first = p["name"].split()[0]
        thesis = rng.choice(THESES)
        d.blocks.insert(3, ("p", self.pick(
            f"At {p['education']} {first} wrote a final-year dissertation on {thesis}.",
            f"{first}'s student dissertation, on {thesis}, is still in the library of {p['education']}.")))
        if len(p["roles"]) <= 2:
            field_companies = [c for c in sorted(w.companies) if INDUSTRY_FIELD[w.companies[c]["industry"]] ==
                               p["field"] and w.companies[c]["founded"] < p["graduated"] and
                               all(r.get("company") != c for r in p["roles"])]
            if field_companies:
                c = rng.choice(field_companies)
                years = rng.randint(3, 15)
                d.p(self.pick(f"Before that, {first} spent {years} years at {c} in "
                              f"{w.companies[c]['headquarters']}.",
                              f"{first}'s first job, straight after graduating, was at {c}, where {first} stayed "
                              f"for {years} years."))

    def extra3_festival(self, d: Doc, f: dict) -> None:
        rng = self.rng
        d.p(self.pick(f"About {rng.randint(40, 400)} volunteers run the festival.",
                      f"The festival committee meets every {rng.choice(MONTHS)} to plan the next one."),
            self.pick("Dogs are welcome but must be kept on a lead.", "Parking is at the edge of town, with a free "
                      "shuttle bus.", "Local schools close for the day."))

    def extra3_town(self, d: Doc, t: dict) -> None:
        rng = self.rng
        if t["population"] < 19000:
            return
        d.h("Neighbourhoods")
        for q in rng.sample(QUARTER_NAMES, rng.randint(4, 6)):
            traits = rng.sample(QUARTER_TRAITS, 2)
            d.p(f"{q} is known for {traits[0]} and {traits[1]}.",
                self.pick(f"About {num(rng.randint(8, 60) * 100)} people live there.",
                          f"Its main street is {rng.choice(['Quay', 'Mill', 'Fore', 'Bridge', 'Castle'])} "
                          f"{rng.choice(['Street', 'Lane', 'Road', 'Row'])}.",
                          f"Most of its houses were built between {self.y(1780, 1900)} and "
                          f"{self.y(1905, 1960)}."))


# --------------------------------------------------------------------------- writers per kind

class Writer(Extras, Extras2, Extras3):
    def __init__(self, world: World, rng: random.Random) -> None:
        self.w = world
        self.rng = rng
        self.docs: list[tuple[Doc, str]] = []
        self.primary: dict[str, str] = {}  # entity key -> document path

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)

    def add(self, doc: Doc, fmt: str) -> None:
        doc.path = f"{doc.path}.{fmt}"
        self.docs.append((doc, fmt))
        if doc.entity:
            self.primary[doc.entity] = doc.path

    def fmt(self, weights: dict[str, float]) -> str:
        keys = list(weights)
        return self.rng.choices(keys, [weights[k] for k in keys])[0]

    def person_ref(self, name: str) -> str:
        p = self.w.people[name]
        return name if self.rng.random() < 0.6 else f"{name} (born {p['born']})"

    # ---- towns
    def town(self, t: dict) -> None:
        w, rng = self.w, self.rng
        d = Doc(f"towns/{slug(t['name'])}", t["name"], "town", f"town:{t['name']}")
        age = NOW - t["founded"]
        intro = self.pick(
            f"{t['name']} is a {'coastal ' if t['coastal'] else ''}town in the {t['district']} district of "
            f"Vellmark, best known for {t['known_for']}.",
            f"Known across the island for {t['known_for']}, {t['name']} lies in {t['district']}, "
            f"{DISTRICTS[t['district']]}.",
            f"The {'harbour ' if t['coastal'] else ''}town of {t['name']} ({t['district']}) has a population of "
            f"{num(t['population'])} and is famous for {t['known_for']}.")
        population = "" if "population of" in intro else self.pick(
            f"Its population was {num(t['population'])} at the 2021 census.",
            f"At the 2021 census {num(t['population'])} people lived there.",
            f"About {num(t['population'])} people live in the town.")
        d.p(intro, population,
            self.pick(f"The town received its charter in {t['founded']}, some {age} years ago.",
                      f"Records of {t['name']} go back to {t['founded']}.",
                      f"It was founded in {t['founded']}."))
        if t["river"]:
            r = w.rivers[t["river"]]
            d.p(self.pick(
                f"The {t['river'] if t['river'].endswith('Water') else 'River ' + t['river']} runs through the town; "
                f"anglers come for its {r['fish']}.",
                f"{t['name']} stands on the {t['river']}, a {r['length_km']}-kilometre river that rises on "
                f"{r['source']}.",
                f"The town grew up at a crossing of the {t['river']}."),
                f"The town centre sits {t['elevation_m']} metres above sea level.")
        else:
            d.p(self.pick(f"No river reaches {t['name']}; its water comes from springs above the town and a "
                          f"reservoir built in {t['founded'] + rng.randint(300, 480)}.",
                          f"{t['name']} has no river of its own, and the town's old wells are still marked by "
                          f"iron covers in the pavement."),
                f"Most of the town is less than {t['elevation_m'] + 20} metres above the sea.")
        d.h(self.pick("Landmarks", "What to see", "Sights"))
        d.p(self.pick(f"The best-known landmark is {t['landmark']}.",
                      f"Visitors usually head first for {t['landmark']}.",
                      f"No visit is complete without {t['landmark']}."),
            self.pick(f"The weekly market is held every {t['market_day']}.",
                      f"Market day is {t['market_day']}, when stalls fill the main square.",
                      f"On {t['market_day']}s the square becomes a market."))
        if t["festivals"]:
            fests = [w.festivals[f] for f in t["festivals"]]
            d.p(" ".join(self.pick(
                f"Each {f['month']} the town holds the {f['name']}: {f['activity']}.",
                f"The {f['name']}, first held in {f['first_held']}, takes place in {f['month']} and draws about "
                f"{num(f['attendance'])} visitors.",
                f"In {f['month']} comes the {f['name']}, known for {f['activity']}.") for f in fests))
        if t["companies"]:
            d.h("Economy")
            parts = []
            for cname in t["companies"]:
                c = w.companies[cname]
                parts.append(self.pick(
                    f"{cname}, founded in {c['founded']}, has its headquarters here and {c['activity']}.",
                    f"The town is home to {cname}, which {c['activity']} and employs {num(c['employees'])} people.",
                    f"{cname} ({c['industry']}) is based in {t['name']}."))
            d.p(*parts)
        if t["routes"]:
            d.h(self.pick("Getting there", "Transport"))
            parts = []
            for code in t["routes"]:
                r = w.routes[code]
                others = [s for s in r["stops"] if s != t["name"]]
                noun = "trains" if r["kind"] == "rail" else "boats"
                parts.append(self.pick(
                    f"The {r['name']} ({code}) links it with {join_names(others)}.",
                    f"{r['per_day']} {noun} a day on the {r['name']} call here on the way to {others[-1]}.",
                    f"{r['name']} {noun} stop at {t['name']}."))
            d.p(*parts)
        mayor = w.people[t["mayor"]["name"]]
        d.h("Local government")
        d.p(self.pick(f"The mayor is {mayor['name']}, elected in {t['mayor']['elected']}.",
                      f"Since {t['mayor']['elected']} the town council has been led by mayor {mayor['name']}.",
                      f"{mayor['name']} became mayor of {t['name']} in {t['mayor']['elected']}."),
            f"{mayor['name'].split()[0]} was born in the town in {mayor['born']}." if rng.random() < 0.5 else "",
            f"{t['name']} is twinned with {t['twin_town']}." if t["twin_town"] else "")
        notable = [n for n in t["born_here"] if n != mayor["name"]]
        if notable:
            d.h("People")
            d.p(f"People born in {t['name']} include " + join_names(
                [f"{n} ({self.short_role(n)})" for n in notable]) + ".")
        extra = [(f"The local football club plays in {rng.choice(['blue', 'green', 'amber', 'maroon'])} and white and "
                 f"has never left the island's second division."),
                 f"A lifeboat has been stationed at {t['name']} since {t['founded'] + rng.randint(400, 600)}."
                 if t["coastal"] else f"The town library holds the {t['district']} parish registers.",
                 (f"The primary school on {rng.choice(['Mill', 'Church', 'Quay', 'Fore', 'High'])} Street has "
                 f"{rng.randint(90, 420)} pupils.")]
        d.p(*rng.sample(extra, rng.randint(1, 3)))
        self.extra_town(d, t)
        self.extra3_town(d, t)
        self.add(d, "html" if t["name"] in ("Morwen", "Istern", "Lantry", "Gorse Cove") else "md")

    def short_role(self, name: str) -> str:
        p = self.w.people[name]
        for role in p["roles"]:
            if role["role"] == "founder":
                return f"founder of {role['company']}"
            if role["role"] == "designer":
                return f"designer of the {role['product']}"
            if role["role"] == "chief executive":
                return f"chief executive of {role['company']}"
            if role["role"] == "mayor":
                return f"mayor of {role['town']}"
            if role["role"] == "festival founder":
                return f"founder of the {role['festival']}"
        return {"engineering": "engineer", "public": "public figure", "craft": "craftsperson", "sea": "mariner",
                "business": "businessperson", "food": "cook"}[p["field"]]

    # ---- rivers
    def river(self, r: dict) -> None:
        w = self.w
        name = r["name"] if r["name"].endswith("Water") else f"River {r['name']}"
        d = Doc(f"rivers/{slug(r['name'])}", name, "river", f"river:{r['name']}")
        d.p(self.pick(f"The {name} is {r['length_km']} kilometres long. It rises on {r['source']} and reaches "
                      f"{r['mouth']}.",
                      f"Rising on {r['source']}, the {name} flows {r['length_km']} km to {r['mouth']}."),
            f"On its way it passes {join_names(r['towns'])}.",
            f"Its main tributary is {r['tributary']}.")
        d.h("Bridges and crossings")
        b = r["bridge"]
        d.p(self.pick(f"The oldest surviving crossing is {b['name']}, built in {b['year']}.",
                      f"{b['name'][0].upper() + b['name'][1:]} ({b['year']}) is the river's best-known bridge."),
            self.pick("It is a listed structure.", "It still carries traffic today.",
                      "It was restored after the floods of 2011." if r["name"] == "Vell" else
                      "Walkers cross it on the island trail."))
        d.h("Wildlife and fishing")
        d.p(self.pick(f"The {name} is fished for {r['fish']}.",
                      f"Anglers on the {name} chiefly catch {r['fish']}."),
            self.pick(f"Otters returned to the lower river in {self.rng.randint(1992, 2015)}.",
                      "Kingfishers nest in the sandy banks below the towns.",
                      "Herons from the Fennmoor reserve feed along its shallows."))
        towns = [w.towns[t] for t in r["towns"]]
        parts = [f"{t['name']} ({num(t['population'])} people) is known for {t['known_for']}." for t in towns]
        d.h("Towns on the river")
        d.p(*parts)
        if r["name"] == "Vell":
            ev = w.events["great-vell-flood-2011"]
            d.p(f"On {fmt_date(ev['date'])} the Vell burst its banks: {ev['number_fact']}.")
        self.extra2_river(d, r)
        self.add(d, "md")

    # ---- companies
    def company(self, c: dict) -> None:
        w, rng = self.w, self.rng
        d = Doc(f"companies/{slug(c['name'])}", c["name"], "company", f"company:{c['name']}")
        founders = c["founders"]
        d.p(self.pick(f"{c['name']} is a {c['industry']} company based in {c['headquarters']}, Vellmark. It "
                      f"{c['activity']}.",
                      f"Founded in {c['founded']} and headquartered in {c['headquarters']}, {c['name']} "
                      f"{c['activity']}.",
                      f"{c['name']} {c['activity']}. The firm is based in {c['headquarters']} and works in "
                      f"{c['industry']}."),
            f"It employs {num(c['employees'])} people.")
        d.h(self.pick("History", "Origins", "Beginnings"))
        fp = [w.people[n] for n in founders]
        if len(fp) == 1:
            d.p(self.pick(f"{fp[0]['name']} founded the company in {c['founded']} at the age of "
                          f"{c['founded'] - fp[0]['born']}.",
                          f"The company was started in {c['founded']} by {fp[0]['name']}, then "
                          f"{c['founded'] - fp[0]['born']} years old."),
                f"{fp[0]['name'].split()[0]} had studied {fp[0]['subject']} at {fp[0]['education']}.")
        else:
            d.p(self.pick(f"{fp[0]['name']} and {fp[1]['name']} founded the company together in {c['founded']}.",
                          f"The founders, {fp[0]['name']} and {fp[1]['name']}, opened the business in "
                          f"{c['founded']}."),
                f"They had met at {fp[0]['education']}." if fp[0]["education"] == fp[1]["education"] else
                f"{fp[0]['name'].split()[0]} brought the money and {fp[1]['name'].split()[0]} the know-how.")
        milestones = []
        for prod in sorted((p for p in w.products.values() if p["company"] == c["name"]), key=lambda p: p["launched"]):
            milestones.append((prod["launched"], self.pick(
                f"In {prod['launched']} it launched the {prod['name']}, {prod['description']}.",
                f"The {prod['name']} ({prod['kind']}) followed in {prod['launched']}, designed by {prod['designer']}.",
                f"{prod['launched']} saw the first {prod['name']}.")))
        for e in w.events.values():
            if c["name"] in e["summary"]:
                milestones.append((e["date"][0], f"On {fmt_date(e['date'])} {e['summary']}."))
        if milestones:
            d.p(*(text for _, text in sorted(milestones)))
        if c["founded"] < 1950:
            d.p(self.pick(
                f"During the Big Snow of 1947 the company kept {rng.choice(['its workshops', 'the works'])} open "
                "and paid its staff half wages.",
                f"The firm moved to its present site in {c['headquarters']} in {rng.randint(c['founded'] + 10, 1990)}.",
                f"It became a limited company in {rng.randint(c['founded'] + 5, 1960)}."))
        d.h("Leadership")
        ceo = c["chief_executive"]
        d.p(self.pick(f"The chief executive is {ceo['name']}, in post since {ceo['since']}.",
                      f"{ceo['name']} has led the company as chief executive since {ceo['since']}.",
                      f"Since {ceo['since']} the company has been run by {ceo['name']}."),
            "The founder still chairs the board." if ceo["name"] in founders else "")
        prods = [p for p in w.products.values() if p["company"] == c["name"]]
        if prods:
            d.h("Products")
            d.ul([f"{p['name']} ({p['launched']}): {p['kind']}" for p in sorted(prods, key=lambda p: p["launched"])])
        routes = [r for r in w.routes.values() if r["operator"] == c["name"]]
        if routes:
            d.h("Routes operated")
            d.ul([f"{r['code']} {r['name']}: {' - '.join(r['stops'])}" for r in routes])
        d.p(self.pick(f"Revenue in 2023 was {num(c['employees'] * rng.randint(60, 240))} thousand crowns.",
                      f"The company's registered office is at {rng.randint(1, 140)} "
                      f"{rng.choice(['Harbour Road', 'Mill Lane', 'Station Street', 'Quay Parade', 'Market Row'])}, "
                      f"{c['headquarters']}."))
        self.extra_company(d, c)
        self.extra2_company(d, c)
        self.add(d, "html" if rng.random() < 0.18 else "md")

    # ---- people
    def person(self, p: dict) -> None:
        w, rng = self.w, self.rng
        d = Doc(f"people/{slug(p['name'])}", p["name"], "person", f"person:{p['name']}")
        life = f"{p['born']}–{p['died']}" if p["died"] else f"born {p['born']}"
        d.p(self.pick(f"{p['name']} ({life}) is a Vellmark {self.short_role(p['name'])}." if not p["died"] else
                      f"{p['name']} ({life}) was a Vellmark {self.short_role(p['name'])}.",
                      f"{p['name']} was born in {p['birthplace']} in {p['born']}" +
                      (f" and died in {p['died']}." if p["died"] else "."),
                      f"Born in {p['birthplace']} in {p['born']}, {p['name']} is best remembered as "
                      f"{self.short_role(p['name'])}."),
            self.pick(f"{p['name'].split()[0]} studied {p['subject']} at {p['education']}, graduating in "
                      f"{p['graduated']}.",
                      f"After school in {p['birthplace']}, {p['name'].split()[0]} read {p['subject']} at "
                      f"{p['education']}."))
        d.h(self.pick("Career", "Work", "Life and work"))
        lines = []
        for role in sorted(p["roles"], key=lambda r: r["year"]):
            kind = role["role"]
            if kind == "founder":
                c = w.companies[role["company"]]
                others = [n for n in c["founders"] if n != p["name"]]
                lines.append(self.pick(
                    f"In {role['year']} {p['name'].split()[0]} founded {c['name']} in {c['headquarters']}" +
                    (f" with {others[0]}." if others else "."),
                    f"{c['name']}, which {c['activity']}, was founded by {p['name']}" +
                    (f" and {others[0]}" if others else "") + f" in {role['year']}."))
            elif kind == "chief executive":
                lines.append(self.pick(f"Since {role['year']} {p['name'].split()[-1]} has been chief executive of "
                                       f"{role['company']}.",
                                       f"{p['name']} became chief executive of {role['company']} in {role['year']}."))
            elif kind == "designer":
                prod = w.products[role["product"]]
                spec = next(iter(prod["specs"].items()))
                lines.append(self.pick(
                    f"At {prod['company']} {p['name'].split()[0]} designed the {prod['name']}, launched in "
                    f"{prod['launched']} ({spec[0]}: {spec[1]}).",
                    f"The {prod['name']} ({prod['launched']}), {prod['description']}, was "
                    f"{p['name'].split()[0]}'s design for {prod['company']}."))
            elif kind == "mayor":
                lines.append(self.pick(f"{p['name']} was elected mayor of {role['town']} in {role['year']}.",
                                       f"In {role['year']} the voters of {role['town']} chose "
                                       f"{p['name'].split()[0]} as mayor."))
            elif kind == "festival founder":
                f = w.festivals[role["festival"]]
                lines.append(self.pick(f"In {f['first_held']} {p['name'].split()[0]} started the {f['name']} in "
                                       f"{f['town']}.",
                                       f"The {f['name']} in {f['town']} was {p['name'].split()[0]}'s idea; the first "
                                       f"one was held in {f['first_held']}."))
            elif kind == "event":
                e = w.events[role["event"]]
                lines.append(self.pick(f"{p['name'].split()[0]} took part in {e['title'].lower().replace('the ', 'the ', 1)} "
                                       f"on {fmt_date(e['date'])}.",
                                       f"On {fmt_date(e['date'])}, during {e['title'][0].lower() + e['title'][1:]}, "
                                       f"{p['name']} was at {e['town']}."))
            elif kind == "cook":
                r = w.recipes[role["recipe"]]
                lines.append(f"{p['name'].split()[0]}'s version of {r['name']} is the one printed in the "
                             f"Vellmark Almanac.")
            elif kind == "route engineer":
                r = w.routes[role["route"]]
                lines.append(self.pick(f"As an engineer {p['name'].split()[0]} planned the {r['name']} ({r['code']}), "
                                       f"opened in {r['opened']}.",
                                       f"The {r['name']}, opened in {r['opened']}, was surveyed by {p['name']}."))
        for i in range(0, len(lines), 3):
            d.p(*lines[i:i + 3])
        d.h(self.pick("Personal life", "Private life", "Outside work"))
        personal = [f"{p['name'].split()[0]} {p['hobby']}."]
        if p["spouse"]:
            personal.append(self.pick(f"In {p['spouse']['married']} {p['name'].split()[0]} married "
                                      f"{p['spouse']['name']}.",
                                      f"{p['name'].split()[0]} is married to {p['spouse']['name']}; they married in "
                                      f"{p['spouse']['married']}." if not p["died"] else
                                      f"{p['name'].split()[0]} married {p['spouse']['name']} in "
                                      f"{p['spouse']['married']}."))
        if p["award"]:
            a = p["award"]
            personal.append(self.pick(f"In {a['year']} {p['name'].split()[0]} received {a['name']} {a['reason']}.",
                                      f"{a['name'][0].upper() + a['name'][1:]} {a['reason']} was awarded to "
                                      f"{p['name']} in {a['year']}."))
        if p["died"]:
            personal.append(self.pick(f"{p['name'].split()[0]} died in {p['died']} and is buried in "
                                      f"{rng.choice([p['birthplace'], 'Ashkirk', 'Vellhaven'])}.",
                                      f"{p['name']} died in {p['died']}, aged {p['died'] - p['born']}."))
        d.p(*personal)
        if len(p["roles"]) >= 2 and rng.random() < 0.6:
            d.h("Legacy")
            d.p(self.pick(f"A {rng.choice(['street', 'school', 'footbridge', 'lecture hall'])} in {p['birthplace']} is "
                          f"named after {p['name'].split()[0]}.",
                          f"Papers of {p['name']} are kept in the archive of the University of Halloway."),
                self.pick("Colleagues remember a patient, exacting manner.",
                          "Friends describe a stubborn optimist who disliked meetings.",
                          "Few people on the island have worn so many hats."))
        self.extra_person(d, p)
        self.extra3_person(d, p)
        self.extra2_person(d, p)
        self.add(d, self.fmt({"md": 0.7, "txt": 0.15, "html": 0.15}))

    # ---- products
    def product(self, prod: dict) -> None:
        w, rng = self.w, self.rng
        c = w.companies[prod["company"]]
        d = Doc(f"products/{slug(prod['name'])}", prod["name"], "product", f"product:{prod['name']}")
        d.p(self.pick(f"The {prod['name']} is a {prod['kind']} made by {c['name']} of {c['headquarters']}.",
                      f"Made by {c['name']} in {c['headquarters']}, the {prod['name']} is {prod['description']}.",
                      f"{c['name']} introduced the {prod['name']}, a {prod['kind']}, in {prod['launched']}."),
            self.pick(f"It first appeared in {prod['launched']}.", f"The launch year was {prod['launched']}.",
                      f"It is {prod['description']}."),
            f"The designer was {prod['designer']}.")
        d.h("Specifications")
        d.ul([f"{k[0].upper() + k[1:]}: {v}" for k, v in prod["specs"].items()] +
             ([f"Price: {num(prod['price_vkr'])} crowns"] if prod["price_vkr"] else []))
        d.h(self.pick("Development", "Design", "Background"))
        designer = w.people[prod["designer"]]
        d.p(self.pick(f"{designer['name']} was {prod['launched'] - designer['born']} when the {prod['name']} was "
                      f"launched.",
                      f"{designer['name'].split()[0]} {designer['name'].split()[-1]} spent "
                      f"{rng.randint(2, 6)} years on the design."),
            self.pick(f"The first batch of {rng.choice([12, 40, 100, 250, 500])} sold out within a "
                      f"{rng.choice(['week', 'month', 'season'])}.",
                      "Early versions had problems that were fixed in the second year of production.",
                      f"The name was chosen in a competition run by the {rng.choice(['Halloway Gazette', 'company'])}."))
        uses = []
        for r in w.routes.values():
            if r["vessel"] == prod["name"]:
                uses.append(f"It runs on the {r['name']} ({r['code']}) between {r['stops'][0]} and {r['stops'][-1]}.")
        for f in w.festivals.values():
            if prod["name"] in f["activity"] or f["name"] in prod["description"]:
                uses.append(f"It plays a part in the {f['name']} at {f['town']}.")
        for r in w.recipes.values():
            if any(prod["name"] in ing for ing in r["ingredients"]):
                uses.append(f"It is an ingredient of {r['name']}.")
        if uses:
            d.h("In use")
            d.p(*uses)
        if prod["launched"] < 1980:
            d.p(self.pick(f"Examples from the first year are in the {rng.choice(['Vellhaven', 'Halloway'])} museum.",
                          "It is still in production, with minor changes.",
                          "Production stopped for four years during the Second World War."))
        self.extra_product(d, prod)
        self.extra2_product(d, prod)
        self.add(d, "html" if rng.random() < 0.15 else "md")

    # ---- festivals
    def festival(self, f: dict) -> None:
        w, rng = self.w, self.rng
        t = w.towns[f["town"]]
        d = Doc(f"festivals/{slug(f['name'])}", f["name"], "festival", f"festival:{f['name']}")
        d.p(self.pick(f"The {f['name']} is held in {f['town']} every {f['month']}.",
                      f"Every {f['month']}, {f['town']} hosts the {f['name']}."),
            f"It lasts {f['days']} day{'s' if f['days'] > 1 else ''} and its heart is {f['activity']}.",
            f"Around {num(f['attendance'])} people attend.")
        d.h("History")
        if f["founder"]:
            fo = w.people[f["founder"]]
            d.p(self.pick(f"It was first held in {f['first_held']}, organised by {fo['name']}.",
                          f"{fo['name']} started the festival in {f['first_held']}."),
                self.pick(f"Only {rng.randint(40, 400)} people came to the first one.",
                          "The first one was rained off halfway through.",
                          f"It has been held every year since, except in {rng.choice([1918, 1940, 1941, 2020])}."))
        else:
            d.p(f"It is first recorded in {f['first_held']}, though it is probably older.",
                "Nobody knows who started it.")
        d.h("Food")
        r = w.recipes.get(f["dish"])
        d.p(self.pick(f"The traditional dish is {f['dish']}.", f"Stalls sell {f['dish']}."),
            (f"It takes {r['minutes']} minutes to make and serves {r['servings']}." if r else ""))
        d.h("Getting there")
        trains = [w.routes[c] for c in t["routes"]]
        if trains:
            d.p(f"{f['town']} is served by " + join_names([f"the {x['name']} ({x['code']})" for x in trains]) + ".")
        else:
            d.p(f"No train or ferry reaches {f['town']}; buses run from the nearest station.")
        self.extra_festival(d, f)
        self.extra3_festival(d, f)
        self.add(d, self.fmt({"md": 0.5, "html": 0.5}))

    # ---- events
    def event(self, e: dict) -> None:
        w, rng = self.w, self.rng
        d = Doc(f"history/{e['slug']}", e["title"], "event", f"event:{e['slug']}")
        d.p(self.pick(f"On {fmt_date(e['date'])}, at {e['town']}, {e['summary']}.",
                      f"{e['title']} took place at {e['town']} on {fmt_date(e['date'])}: {e['summary']}."),
            f"According to the records, {e['number_fact']}.")
        if e["people"]:
            d.h("People involved")
            lines = []
            for n in e["people"]:
                p = w.people[n]
                age = e["date"][0] - p["born"]
                lines.append(self.pick(f"{n}, then {age}, was among those present.",
                                       f"{n} ({self.short_role(n)}) played a part.",
                                       f"The account of {n}, aged {age} at the time, survives in the archive."))
            d.p(*lines)
        d.h("Aftermath")
        d.p(self.pick("The event is still commemorated each year.",
                      f"A plaque in {e['town']} marks the spot.",
                      f"The Halloway Gazette covered it in {rng.randint(3, 9)} issues."),
            self.pick("Historians still argue about the details.",
                      "It changed the town for a generation.",
                      f"The {w.towns[e['town']]['district']} district archive holds the papers."))
        self.extra_event(d, e)
        self.extra2_event(d, e)
        self.add(d, self.fmt({"md": 0.6, "html": 0.4}))

    # ---- recipes
    def recipe(self, r: dict) -> None:
        d = Doc(f"recipes/{slug(r['name'])}", r["name"], "recipe", f"recipe:{r['name']}")
        d.p(self.pick(f"{r['name']} comes from {r['town']}.", f"A dish from {r['town']}."),
            f"Serves {r['servings']}; takes about {r['minutes']} minutes.",
            f"It is served at the {r['festival']}." if r["festival"] else "",
            f"This version is the one cooked by {r['cook']}." if r.get("cook") else "")
        d.h("Ingredients")
        d.ul(r["ingredients"])
        d.h("Method")
        d.ol(r["steps"])
        d.p(r["note"])
        self.extra_recipe(d, r)
        self.add(d, self.fmt({"txt": 0.6, "md": 0.4}))

    # ---- routes
    def route(self, r: dict) -> None:
        w, rng = self.w, self.rng
        d = Doc(f"transport/{r['code'].lower()}-{slug(r['name'])}", f"{r['code']} {r['name']}", "route",
                f"route:{r['code']}")
        noun = "train" if r["kind"] == "rail" else "sailing"
        d.p(f"The {r['name']} ({r['code']}) runs from {r['stops'][0]} to {r['stops'][-1]}" +
            (f" via {join_names(r['stops'][1:-1])}." if len(r["stops"]) > 2 else "."),
            f"It is operated by {r['operator']} and opened in {r['opened']}.",
            f"The {r['km']}-kilometre journey takes {r['minutes']} minutes, with {r['per_day']} {noun}s a day.")
        d.h("Rolling stock" if r["kind"] == "rail" else "Vessel")
        if r["vessel"] in w.products:
            prod = w.products[r["vessel"]]
            d.p(f"Services use the {r['vessel']}, built by {prod['company']} ({prod['launched']}).",
                "; ".join(f"{k}: {v}" for k, v in prod["specs"].items()) + ".")
        else:
            d.p(f"The route is served by the {r['vessel']}, a {rng.choice(['small', 'veteran', 'refitted'])} "
                f"{'vessel' if r['kind'] == 'ferry' else 'train'} built in {r['opened'] + rng.randint(0, 40)}.")
        d.p(f"The line was engineered by {r['engineer']}.")
        d.h("Timetable notes")
        first = f"{rng.randint(5, 8):02d}:{rng.choice(['05', '15', '20', '35', '40', '50'])}"
        last = f"{rng.randint(20, 23):02d}:{rng.choice(['00', '10', '25', '45'])}"
        d.ul([f"First {noun}: {first}", f"Last {noun}: {last}",
              f"Adult single fare: {rng.randint(3, 40)} crowns" if r["kind"] == "rail" else
              f"Adult foot passenger fare: {rng.randint(4, 60)} crowns",
              f"Sunday service: {rng.choice(['reduced', 'hourly', 'none in winter', 'as weekdays'])}"])
        self.extra_route(d, r)
        self.extra2_route(d, r)
        self.add(d, self.fmt({"txt": 0.5, "md": 0.5}))


# --------------------------------------------------------------------------- long documents

def overview(wr: Writer) -> Doc:
    w = wr.w
    d = Doc("guides/vellmark-overview", "Vellmark: An Overview", "guide", None)
    d.p("Vellmark is a fictional island region in the northern Atlantic, invented as a demo knowledge base. "
        f"It has {len(w.towns)} towns in four districts, eight rivers, and about "
        f"{num(sum(t['population'] for t in w.towns.values()))} inhabitants in its towns. "
        "The capital is Vellhaven, at the mouth of the River Vell. The highest point is Mount Corran (1,102 m). "
        f"The currency is the Vellmark crown (VKR).")
    for district, desc in DISTRICTS.items():
        d.h(district)
        towns = sorted((t for t in w.towns.values() if t["district"] == district), key=lambda t: -t["population"])
        d.p(f"{district} is {desc}. Its towns are " + join_names([t["name"] for t in towns]) + ".")
        for t in towns:
            d.p(f"{t['name']} ({num(t['population'])} people, founded {t['founded']}) is known for {t['known_for']}. "
                + (f"It lies on the {t['river']}. " if t["river"] else "")
                + f"Its best-known landmark is {t['landmark']}, and market day is {t['market_day']}. "
                + (f"Festivals: {join_names(t['festivals'])}. " if t["festivals"] else "")
                + f"Its mayor is {t['mayor']['name']}. "
                + (f"Companies based there include {join_names(t['companies'])}." if t["companies"] else ""))
    d.h("Rivers")
    for r in w.rivers.values():
        d.p(f"The {r['name']} ({r['length_km']} km) flows from {r['source']} to {r['mouth']}, passing "
            f"{join_names(r['towns'])}. It is fished for {r['fish']}; its best-known bridge is {r['bridge']['name']} "
            f"({r['bridge']['year']}).")
    d.h("Climate")
    d.p("Winters are mild on the South Shore and harsh in North Reach, where snow can close the Ullapine Pass for "
        "weeks. Vellhaven gets about 1,150 mm of rain a year; Ullapine more than 2,000 mm. The warmest month is "
        "August, with an average high of 19 °C in Carrow Bay.")
    return d


def timeline(wr: Writer) -> Doc:
    w = wr.w
    d = Doc("history/timeline-of-vellmark", "A Timeline of Vellmark History", "guide", None)
    d.p("This timeline lists the main events in the island's history, with the founding years of its towns, "
        "companies and festivals. Each event has its own page in the history folder.")
    items = [(t["founded"], f"{t['name']} is founded.") for t in w.towns.values()]
    items += [(c["founded"], f"{c['name']} is founded by {join_names(c['founders'])}.") for c in w.companies.values()]
    items += [(f["first_held"], f"The first {f['name']} is held in {f['town']}.") for f in w.festivals.values()]
    items += [(r["opened"], f"The {r['name']} ({r['code']}) opens.") for r in w.routes.values()]
    items += [(e["date"][0], f"{fmt_date(e['date'])}: {e['title']}. {e['summary'][0].upper()}{e['summary'][1:]}; "
               f"{e['number_fact']}. " + " ".join(EVENT_DETAILS[e["slug"]][:1])) for e in w.events.values()]
    centuries: dict[int, list[str]] = {}
    for year, text in sorted(items, key=lambda x: (x[0], x[1])):
        centuries.setdefault(year // 100, []).append(f"{year}: {text}" if not text[0].isdigit() else text)
    for century, lines in centuries.items():
        d.h(f"The {century + 1}th century" if century + 1 != 21 else "The 21st century")
        d.ul(lines)
    return d


def transport_guide(wr: Writer) -> Doc:
    w = wr.w
    d = Doc("transport/vellmark-transport-guide", "Getting Around Vellmark: Rail and Ferry Guide", "guide", None)
    d.p("Vellmark has nine railway lines and nine ferry routes. Trains are run by Vellmark Railways from its "
        "headquarters in Pellingford, except the Heritage Moor Railway. Most ferries are run by Skarn Ferry Lines "
        "from Carrow Bay. Tickets are valid on connecting buses within one hour.")
    for kind, heading in (("rail", "Railway lines"), ("ferry", "Ferry routes")):
        d.h(heading)
        for r in (x for x in w.routes.values() if x["kind"] == kind):
            d.p(f"{r['code']} {r['name']}: {' - '.join(r['stops'])}. {r['km']} km, {r['minutes']} minutes, "
                f"{r['per_day']} services a day, opened {r['opened']}, operated by {r['operator']}, "
                f"served by the {r['vessel']}. The route was engineered by {r['engineer']}.")
            if r["vessel"] in w.products:
                prod = w.products[r["vessel"]]
                d.p(f"The {prod['name']} ({prod['kind']}, {prod['company']}, {prod['launched']}): "
                    + "; ".join(f"{k} {v}" for k, v in prod["specs"].items()) + ".")
            stops = [w.towns[s] for s in r["stops"] if s in w.towns]
            if stops:
                d.p("Along the way: " + " ".join(f"{t['name']} is known for {t['known_for']}." for t in stops))
    d.h("Travelling with bicycles")
    d.p("Bicycles travel free on all trains outside the rush hours and on every ferry. The Kestrel e-Cargo is "
        "too long for the Tarn Sprinter's racks and must go in the guard's van.")
    return d


def economy_report(wr: Writer) -> Doc:
    w = wr.w
    d = Doc("guides/economy-report-2023", "The Vellmark Economy in 2023", "guide", None)
    total = sum(c["employees"] for c in w.companies.values())
    d.p(f"The thirty largest private employers on the island employ {num(total)} people between them. "
        "This report lists them by industry, with their founders, headquarters and current chief executives.")
    by_industry: dict[str, list[dict]] = {}
    for c in w.companies.values():
        by_industry.setdefault(c["industry"], []).append(c)
    for industry in sorted(by_industry):
        d.h(industry[0].upper() + industry[1:])
        for c in sorted(by_industry[industry], key=lambda c: -c["employees"]):
            prods = [p["name"] for p in w.products.values() if p["company"] == c["name"]]
            d.p(f"{c['name']} ({c['headquarters']}, founded {c['founded']} by {join_names(c['founders'])}) "
                f"{c['activity']}. It employs {num(c['employees'])} people; its chief executive is "
                f"{c['chief_executive']['name']}."
                + (f" Best-known products: {join_names(prods)}." if prods else ""))
            for name in prods:
                prod = w.products[name]
                d.p(f"The {name}, launched in {prod['launched']} and designed by {prod['designer']}, is "
                    f"{prod['description']}.")
    return d


def adversarial_cypher(wr: Writer) -> Doc:
    d = Doc("notes/data-entry-incident-2022", "Incident Report: The Harbourmaster Import of 2022", "adversarial", None)
    d.p("On 3 March 2022 a nightly import into Harbourmaster, the berth booking system of Copperline Software, "
        "stopped half way. The cause was a boat name typed by a visiting skipper. This report keeps the offending "
        "strings exactly as they were entered, so that they can be used as test data.")
    d.h("The strings")
    d.p('The boat was registered as "Sea Wren", then renamed to: Sea Wren"}) MATCH (n) DETACH DELETE n // and the '
        "owner field read: O'Malley \\\\ \"The Skipper\" \\n $param {name: 'x'}.")
    d.ul(['"}) MATCH (n) DETACH DELETE n //', "$param and $name and ${injection}", "C:\\Vellmark\\berths\\2022\\",
          "' OR 1=1 --", "MERGE (x:Boat {name: \"Sea Wren\"}) SET x.owner = $owner RETURN x",
          "backslash at the end \\", "a tab\there and a literal \\t there", "{{ template }} and {% raw %} and `ticks`"])
    d.p("None of these strings did any harm in the end, because the import used parameters for every value. The "
        "failure came from a length check on the owner field, which allowed 40 characters. The fix, written by the "
        "Copperline duty engineer, raised the limit to 200 characters and added a test with each string above.")
    d.h("Lessons")
    d.p("Store user text literally. Never build a query by pasting text into it. A name like Sea Wren\"}) MATCH (n) "
        "is a perfectly good boat name as far as the harbour office is concerned.")
    return d


def adversarial_unicode(wr: Writer) -> Doc:
    d = Doc("guides/cafe-asmund-vellhaven", "Café Åsmund — A Guide to Vellhaven's Oldest Café", "adversarial", None)
    d.p("Café Åsmund opened on Quay Parade in 1908. Its founder, the Norwegian-born baker Åsmund Ødegård, named it "
        "after himself — “because nobody on the island could spell it anyway”. The café serves crème brûlée, "
        "smørbrød, pão de queijo and a Vellmark twist on the Spanish piñata cake. ☕🥐")
    d.p("Prices are shown in crowns: a coffee costs 3,50 VKR, a slice of cake 4,20 VKR… and the famous “Ødegård "
        "plate” 12 VKR. The menu is printed in English, Norsk, Français and Ελληνικά; the Greek page was added in "
        "1974 for the sailors of the Αγία Ειρήνη, which wintered in the harbour.")
    d.p("Regulars include the crew of MV Skarn Dawn ⛴️, the surfers of Brisa Point 🏄, and — every Saturday — the "
        "stallholders of the Vellhaven market. Wi-Fi password: «kaffe–og–kake» (with en dashes, not hyphens).")
    d.h("Naïve questions, answered")
    d.ul(["Is the café open on Sundays? Ja — from 09:00 to 15:00.",
          "Does it take cards? Oui, and crowns, but not €.",
          "Why is there a fish on the sign? 🐟 Because the building was a herring store until 1907.",
          "Who runs it now? Zoë Ødegård-Núñez, Åsmund's great-granddaughter."])
    return d


def invalid_utf8() -> bytes:
    text = ("LEDGER OF THE SALTREACH SALT WORKS, 1898\n\n"
            "Entries copied from the old ledger by the archivist. This file was saved in Latin-1 by an old editor, "
            "so it is not valid UTF-8: café, Ødegård, señor, Müller, £12 10s.\n\n"
            "March 1898: 412 bushels of flake salt sold to the Marrow Smokehouse Company at 3s. 4d. the bushel.\n")
    return text.encode("latin-1")


def binary_blob(rng: random.Random) -> bytes:
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\x00\x00\x01\x00\x00\x00\x00\x80\x08\x06\x00\x00\x00"
    return header + bytes(rng.getrandbits(8) for _ in range(4096))


# --------------------------------------------------------------------------- main

def main() -> None:
    rng = random.Random(SEED)
    world = World(rng)
    wr = Writer(world, rng)
    for t in world.towns.values():
        wr.town(t)
    for r in world.rivers.values():
        wr.river(r)
    for c in world.companies.values():
        wr.company(c)
    for p in sorted(world.people.values(), key=lambda p: p["name"]):
        wr.person(p)
    for prod in world.products.values():
        wr.product(prod)
    for f in world.festivals.values():
        wr.festival(f)
    for e in world.events.values():
        wr.event(e)
    for r in world.recipes.values():
        wr.recipe(r)
    for r in world.routes.values():
        wr.route(r)
    wr.add(overview(wr), "md")
    wr.add(timeline(wr), "md")
    wr.add(transport_guide(wr), "html")
    wr.add(economy_report(wr), "md")
    wr.add(whos_who(wr), "md")
    wr.add(adversarial_cypher(wr), "md")
    wr.add(adversarial_unicode(wr), "md")

    shutil.rmtree(DOCS, ignore_errors=True)
    documents = []
    for doc, fmt in wr.docs:
        target = DOCS / doc.path
        target.parent.mkdir(parents=True, exist_ok=True)
        text = render(doc, fmt, rng)
        target.write_text(text, encoding="utf-8", newline="\n")
        documents.append({"id": doc.path, "kind": doc.kind, "entity": doc.entity, "title": doc.title,
                          "words": len(text.split())})
    skipped = {"archive/ledger-1898-latin1.txt": invalid_utf8(), "attachments/scanned-timetable.txt": binary_blob(rng)}
    for rel, data in skipped.items():
        (DOCS / rel).parent.mkdir(parents=True, exist_ok=True)
        (DOCS / rel).write_bytes(data)

    def dump(d: dict) -> list[dict]:
        return [dict(v) for _, v in sorted(d.items())]

    facts = {
        "about": "Fact tables of the fictional Vellmark corpus (generated by generate.py, CC0). 'doc' is the "
                 "document that describes each entity (a path relative to docs/, the document id the loader "
                 "gives it); overviews repeat some facts in summary form.",
        "seed": SEED, "reference_year": NOW, "currency": CUR,
        "districts": [{"name": k, "description": v} for k, v in DISTRICTS.items()],
        "towns": [{**t, "doc": wr.primary[f"town:{t['name']}"]} for t in dump(world.towns)],
        "rivers": [{**r, "doc": wr.primary[f"river:{r['name']}"]} for r in dump(world.rivers)],
        "companies": [{**c, "doc": wr.primary[f"company:{c['name']}"]} for c in dump(world.companies)],
        "people": [{**p, "doc": wr.primary[f"person:{p['name']}"]} for p in dump(world.people)],
        "products": [{**p, "doc": wr.primary[f"product:{p['name']}"]} for p in dump(world.products)],
        "festivals": [{**f, "doc": wr.primary[f"festival:{f['name']}"]} for f in dump(world.festivals)],
        "events": [{**e, "date": "{:04d}-{:02d}-{:02d}".format(*e["date"]), "doc": wr.primary[f"event:{e['slug']}"]}
                   for e in dump(world.events)],
        "recipes": [{**r, "doc": wr.primary[f"recipe:{r['name']}"]} for r in dump(world.recipes)],
        "routes": [{**r, "doc": wr.primary[f"route:{r['code']}"]} for r in dump(world.routes)],
        "documents": sorted(documents, key=lambda d: d["id"]),
        "unloadable_files": [{"path": "archive/ledger-1898-latin1.txt", "why": "Latin-1 bytes, not valid UTF-8"},
                             {"path": "attachments/scanned-timetable.txt", "why": "binary (PNG bytes with NULs)"}],
        "adversarial_documents": ["notes/data-entry-incident-2022.md", "guides/cafe-asmund-vellhaven.md"],
    }
    (HERE / "facts.json").write_text(json.dumps(facts, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    words = sum(d["words"] for d in documents)
    print(f"wrote {len(documents)} documents ({num(words)} words), {len(skipped)} unloadable files, facts.json")


if __name__ == "__main__":
    main()
