"""A cheap lexical guard against semantic near-misses.

Mean-pooled sentence embeddings place "How far is Paris from Lyon in km?" and "... in
miles?", "Is X safe?" and "Is X not safe?", or "How do I thicken a sauce?" and "... thin a
sauce?" very close together. Before a semantic hit is served, the guard requires the two
user turns to agree on what cosine similarity blurs. The checks, in order:

- numbers: the same set of numbers (digits, number words, ordinals; "one" is ignored, it is
  as often a pronoun);
- negation: both negated or both not (not, no, never, n't, without, ...);
- prevention: both ask to prevent something or neither does (stop, prevent, avoid, cease,
  disable, "keep ... from/out/away"): "How do I stop Windows restarting" is not "How do I
  make Windows restart";
- intent: both ask why or neither does (why, cause, reason, "what makes"): "Why is my tap
  leaking?" is not "How can I fix a leaking tap?";
- units: the same units of measure where a unit follows a number or "in/into/to/per"
  ("5 km", "in miles"); km and kilometres are one unit, km and miles are not;
- entities: every word capitalised inside a sentence, acronym, mixed-case or alphanumeric
  token (iPhone, GPT-4, C++) of either text appears as a word in the other;
- opposites: for a listed pair of opposite words (largest/smallest, before/after, buy/sell,
  on/off, ...) the two texts use the same members of the pair;
- swap: the content words (not ``STOPWORDS``; who/when/where/why count as content, a
  trailing plural or verb "s" is dropped) are the same but two have traded places
  ("convert euros to dollars" / "dollars to euros", "can a landlord sue a tenant" / "a
  tenant sue a landlord"); embeddings barely see word order (such pairs score above 0.99);
- substitution: the content words are the same but for one word replaced by another that is
  neither a spelling variant nor shares its stem ("thicken"/"thin" at 0.89, "key"/"value",
  "online"/"store", "when"/"where"): a one-word edit of a question is more often another
  question than a paraphrase, and synonym swaps are the price.

It is not a parser: it blocks some true paraphrases (a lost hit costs one engine call) to
keep wrong hits rare. ``mismatch`` says which check failed, for the evaluation report.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?\b|[A-Za-z0-9][A-Za-z0-9+#.'’-]*[A-Za-z0-9+#]|[A-Za-z0-9]")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
_ORDINAL_DIGITS = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
_SENTENCE_PUNCTUATION = re.compile(r"[.!?:;\n]")
TITLE_CASE_SHARE = 0.6

NUMBER_WORDS: dict[str, str] = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
    if w != "one"
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
     "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000", "dozen": "12",
     "half": "0.5", "quarter": "0.25", "twice": "2", "double": "2", "triple": "3"}
ORDINAL_WORDS: dict[str, str] = {
    w: f"#{i}" for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth".split(), start=1)
}
NEGATIONS = frozenset(
    "not no never none nobody nothing nowhere neither nor without cannot cant dont doesnt didnt isnt arent wasnt "
    "werent wont wouldnt shouldnt couldnt hasnt havent hadnt mustnt".split()
)
# A question that asks for a cause ("why", "what causes", "what makes") is not one that asks
# what to do, however alike the words ("Why does my cat scratch the sofa?" / "How do I stop my
# cat scratching the sofa?" score 0.90).
WHY_WORDS = frozenset("why cause causes caused causing reason reasons".split())
WHY_AFTER_WHAT = frozenset("makes made make".split())  # "what makes X ..." asks why
# Asking to prevent something is not asking to do it ("How do I stop Windows restarting" /
# "How do I make Windows restart" score 0.94; the other checks see one content word dropped).
PREVENT_WORDS = frozenset(
    "stop stops stopping prevent prevents preventing prevention avoid avoids avoiding cease disable".split()
)
KEEP_WORDS = frozenset("keep keeps keeping".split())  # "keep X from ...", "keep X out"
KEEP_AWAY_WORDS = frozenset("from out away".split())
_UNIT_GROUPS = {
    "km": "km kms kilometer kilometers kilometre kilometres",
    "m": "meter meters metre metres",
    "cm": "cm centimeter centimeters centimetre centimetres",
    "mm": "mm millimeter millimeters millimetre millimetres",
    "mile": "mile miles mi",
    "ft": "ft foot feet",
    "inch": "inch inches",
    "yard": "yard yards yd",
    "kg": "kg kgs kilo kilos kilogram kilograms kilogramme kilogrammes",
    "g": "gram grams gramme grammes",
    "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces",
    "ton": "ton tons tonne tonnes",
    "l": "liter liters litre litres",
    "ml": "ml milliliter milliliters millilitre millilitres",
    "gallon": "gallon gallons gal",
    "cup": "cup cups",
    "celsius": "celsius centigrade",
    "fahrenheit": "fahrenheit",
    "kelvin": "kelvin",
    "second": "sec secs seconds",
    "minute": "min mins minute minutes",
    "hour": "hr hrs hour hours",
    "day": "day days",
    "week": "week weeks",
    "month": "month months",
    "year": "yr yrs year years",
    "usd": "usd dollar dollars $",
    "eur": "eur euro euros €",
    "gbp": "gbp sterling £",
    "yen": "yen jpy",
    "percent": "percent percentage %",
    "byte": "byte bytes",
    "kb": "kb kilobyte kilobytes",
    "mb": "mb megabyte megabytes",
    "gb": "gb gigabyte gigabytes",
    "tb": "tb terabyte terabytes",
    "mph": "mph",
    "kmh": "kmh kph",
    "watt": "w watt watts",
    "kwh": "kwh",
    "volt": "v volt volts",
    "calorie": "calorie calories kcal",
}
UNITS: dict[str, str] = {variant: unit for unit, variants in _UNIT_GROUPS.items() for variant in variants.split()}
OPPOSITES: tuple[tuple[str, str], ...] = tuple(
    tuple(pair.split("/"))  # type: ignore[misc]
    for pair in (
        "largest/smallest biggest/smallest large/small big/small larger/smaller bigger/smaller highest/lowest "
        "high/low higher/lower tallest/shortest longest/shortest long/short longer/shorter most/least more/less "
        "more/fewer maximum/minimum max/min before/after above/below over/under increase/decrease increases/decreases "
        "raise/lower buy/sell buying/selling north/south east/west northern/southern eastern/western male/female "
        "men/women man/woman boys/girls hot/cold warm/cool hottest/coldest first/last best/worst better/worse "
        "fastest/slowest fast/slow faster/slower cheapest/expensive cheap/expensive oldest/youngest oldest/newest "
        "old/new old/young older/younger heaviest/lightest heavy/light inside/outside import/export "
        "upload/download encrypt/decrypt encode/decode add/remove enable/disable start/stop open/close win/lose "
        "positive/negative left/right top/bottom input/output push/pull send/receive true/false accept/reject "
        "allow/deny allow/block ascending/descending compress/decompress serialize/deserialize install/uninstall "
        "import/export past/future advantages/disadvantages pros/cons benefits/risks benefits/drawbacks "
        "lose/gain losing/gaining weight/height morning/evening morning/night day/night summer/winter "
        "spring/autumn spring/fall sunrise/sunset rise/fall birth/death born/died love/hate like/dislike "
        "legal/illegal safe/dangerous safe/unsafe healthy/unhealthy possible/impossible always/sometimes "
        "inner/outer internal/external uppercase/lowercase upper/lower plus/minus sum/difference "
        "multiply/divide add/subtract vertical/horizontal wet/dry rich/poor arrive/depart arrival/departure "
        "import/export debit/credit asset/liability profit/loss supply/demand on/off up/down"
    ).split()
)
OPPOSITE_WORDS = frozenset(w for pair in OPPOSITES for w in pair)
STOPWORDS = frozenset(
    "a an the is are was were be been being am do does did doing have has had having i me my mine we us our you "
    "your he him his she her it its they them their what what's whats which whom whose how this "
    "that these those there here of in on at to from by with for about as into onto than then so and or but if can "
    "could would should will shall may might must please tell give show s just also any some one "
    "explain describe define definition meaning mean way know many much number amount".split()
)
UNIT_CONTEXT_WORDS = frozenset({"in", "into", "to", "per"})
SPELLING_VARIANT_RATIO = 0.75  # difflib ratio above which two words are one word misspelt or respelt
STEM_CHARS = 4  # words sharing their first STEM_CHARS letters count as one stem (begin/beginning)


def _tokens(text: str) -> list[str]:
    return [t.replace("’", "'") for t in _TOKEN.findall(text)]


def _starts(text: str) -> set[int]:
    """Indices of tokens that open a sentence (the first, and any after . ! ? : ; or a newline)."""
    starts, previous_end = set(), 0
    for index, match in enumerate(_TOKEN.finditer(text)):
        if index == 0 or _SENTENCE_PUNCTUATION.search(text, previous_end, match.start()):
            starts.add(index)
        previous_end = match.end()
    return starts


def _stem(word: str) -> str:
    """Drop a plural or third-person "s" (cats/cat, eats/eat), crudely: enough to compare."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _plain(token: str) -> str:
    word = token.lower()
    for suffix in ("'s", "'"):
        word = word.removesuffix(suffix)
    return word


def _number(token: str, word: str) -> str | None:
    if _NUMBER.match(token):
        return token.replace(",", "") if re.match(r"^\d{1,3}(,\d{3})+$", token) else token
    if m := _ORDINAL_DIGITS.match(word):
        return f"#{m.group(1)}"
    return NUMBER_WORDS.get(word) or ORDINAL_WORDS.get(word)


@dataclass(frozen=True)
class Facts:
    numbers: frozenset[str]
    negated: bool
    asks_why: bool
    prevents: bool
    units: frozenset[str]
    entities: frozenset[str]
    words: frozenset[str]
    content: tuple[str, ...]  # the words that are not STOPWORDS, stemmed, in order


def facts(text: str) -> Facts:
    """The facts of ``text`` the guard compares."""
    tokens = _tokens(text)
    words = [_plain(t) for t in tokens]
    starts = _starts(text)
    # In Title Case or ALL CAPS text capitals carry no information: only digits and symbols mark entities.
    alphabetic = [t for t in tokens if t[0].isalpha()]
    shouting = len(alphabetic) >= 3 and sum(t[0].isupper() for t in alphabetic) >= TITLE_CASE_SHARE * len(alphabetic)
    numbers: set[str] = set()
    units = {UNITS[symbol] for symbol in ("$", "€", "£", "%") if symbol in text}
    entities: set[str] = set()
    negated = False
    values = [_number(t, w) for t, w in zip(tokens, words)]
    for i, (token, word, number) in enumerate(zip(tokens, words, values)):
        if number is not None:
            numbers.add(number)
        if word.replace("'", "") in NEGATIONS or word.endswith("n't"):
            negated = True
        if word in UNITS and i and (words[i - 1] in UNIT_CONTEXT_WORDS or values[i - 1] is not None):
            units.add(UNITS[word])
        if number is None and _is_entity(token, word, i in starts, shouting):
            entities.add(word)
    # Numbers and units enter the content as their value, so "first"/"1st" and "km"/"kilometres" are one word;
    # the words of a checked intent as one word each, so "stop"/"prevent" and "why"/"what makes" are no substitution.
    intents = [_intent_word(w, previous) for w, previous in zip(words, ["", *words])]
    content = tuple(
        v or UNITS.get(w) or intent or _stem(w)
        for w, v, intent in zip(words, values, intents) if w not in STOPWORDS
    )
    prevents = "<prevent>" in intents or _keeps_away(words)
    return Facts(frozenset(numbers), negated, "<why>" in intents, prevents, frozenset(units),
                 frozenset(entities), frozenset(words), content)


def _intent_word(word: str, previous: str) -> str | None:
    """The one word that stands for ``word`` in the checks of intent ("<prevent>", "<why>")."""
    if word in PREVENT_WORDS:
        return "<prevent>"
    if word in WHY_WORDS or (previous == "what" and word in WHY_AFTER_WHAT):
        return "<why>"
    return None


def _keeps_away(words: list[str]) -> bool:
    """"keep X from ...", "keep X out of ...": prevention without a prevention word."""
    keep = next((i for i, w in enumerate(words) if w in KEEP_WORDS), None)
    return keep is not None and any(w in KEEP_AWAY_WORDS for w in words[keep + 1:])


def _is_entity(token: str, word: str, at_start: bool, shouting: bool) -> bool:
    letters = [c for c in token if c.isalpha()]
    if not letters or word == "i":
        return False
    if any(c.isdigit() for c in token) or any(c in "+#" for c in token):
        return True  # GPT-4, python3, C++, C#
    if shouting:
        return False
    if any(c.isupper() for c in letters[1:]):
        return True  # NASA, iPhone, JavaScript
    # A capital opening a sentence says nothing; a named entity there is caught by the
    # substitution check when it is the only difference.
    return token[0].isupper() and not at_start


def _related(x: str, y: str) -> bool:
    """One word respelt, misspelt or inflected (colour/color, begin/beginning), not two words."""
    if x[:STEM_CHARS] == y[:STEM_CHARS] and min(len(x), len(y)) >= STEM_CHARS:
        return True
    return difflib.SequenceMatcher(None, x, y).ratio() >= SPELLING_VARIANT_RATIO


def _swapped(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether ``b`` is ``a`` with two words (not equal ones) trading places."""
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return len(diff) == 2 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def _substituted(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether ``b`` is ``a`` with one word replaced by an unrelated word."""
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return len(diff) == 1 and not _related(a[diff[0]], b[diff[0]])


def mismatch(a: str, b: str) -> str | None:
    """The name of the first check that tells ``a`` and ``b`` apart, or None if they agree."""
    fa, fb = facts(a), facts(b)
    if fa.numbers != fb.numbers:
        return "numbers"
    if fa.negated != fb.negated:
        return "negation"
    if fa.prevents != fb.prevents:
        return "prevention"
    if fa.asks_why != fb.asks_why:
        return "intent"
    if fa.units != fb.units:
        return "units"
    if not fa.entities <= fb.words or not fb.entities <= fa.words:
        return "entities"
    if (fa.words | fb.words) & OPPOSITE_WORDS:
        for x, y in OPPOSITES:
            if (x in fa.words) != (x in fb.words) and ((y in fa.words) or (y in fb.words)):
                return "opposites"
    if _swapped(fa.content, fb.content):
        return "swap"
    if _substituted(fa.content, fb.content):
        return "substitution"
    return None


def allows(a: str, b: str) -> bool:
    """Whether the guard lets a cached answer to ``a`` serve ``b`` (symmetric)."""
    return mismatch(a, b) is None
