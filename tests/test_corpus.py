"""tools/build_corpus.py on tiny fake wheels made here: which word is the surname, the nationality table, the conflict
rule, the external_val exclusion, --check, and a hostile pickle refused before it runs. Nothing is downloaded."""
import gzip
import hashlib
import json
import pickle
import sqlite3
import zipfile
from pathlib import Path

import pytest

from tools.build_corpus import build_rows, main, polish_base_forms, read_pickle, spelling_key, surname_of
from utils.errors import DataError, UserError

LEXICONS = {"Chinese": {"mao", "chan", "li", "wang"}, "Korean": {"kim", "park"}, "Vietnamese": {"nguyen"},
            "Japanese": {"oda", "kurosawa"}, "Japanese given": {"nobunaga", "akira"}}


@pytest.mark.parametrize("full, country, surname", [
    ("Albert Einstein", "German", "Einstein"),
    ("A. E. van Vogt", "Dutch", "van Vogt"),  # particles stay with the surname, initials in front are fine
    ("Ludwig van Beethoven", "German", "van Beethoven"),
    ("Osama bin Laden", "Arabic", "bin Laden"),
    ("Martin Luther King, Jr.", "English", "King"),
    ("Sammy Davis Jr.", "English", "Davis"),
    ("Gabriel García Márquez", "Spanish", "Márquez"),
    ("Andrew Lloyd-Webber", "English", "Lloyd-Webber"),  # double-barrelled: whole
    ("Robert Oppenheimer (physicist)", "German", "Oppenheimer"),
    ("Mao Zedong", "Chinese", "Mao"),  # surname first
    ("Jackie Chan", "Chinese", "Chan"),  # Western order: the known surname is last
    ("Kim Dae-jung", "Korean", "Kim"),
    ("Nguyen Van Thieu", "Vietnamese", "Nguyen"),
    ("Oda Nobunaga", "Japanese", "Oda"),  # the last word is a given name: turned round
    ("Akira Kurosawa", "Japanese", "Kurosawa"),
])
def test_the_surname_is_found_in_each_naming_order(full, country, surname):
    assert surname_of(full, country, LEXICONS) == surname


@pytest.mark.parametrize("full, country", [
    ("Aristotle", "Greek"),  # a mononym
    ("Stephen I of Hungary", "English"),  # a regnal name
    ("Stephen, King of England", "English"),
    ("Saint George", "Greek"),
    ("John F.", "English"),  # an initial where the surname should be
    ("Zhang Ziyi", "Chinese"),  # no known Chinese surname in it
])
def test_names_without_a_surname_give_none(full, country):
    assert surname_of(full, country, LEXICONS) is None


def test_a_surname_takes_its_majority_country_or_is_dropped():
    votes = [("Weber", "German", "a", 3), ("Weber", "English", "a", 1),  # 3 of 4: German
             ("Martin", "French", "a", 1), ("Martin", "English", "a", 1),  # a tie: dropped
             ("Costa", "Portuguese", "a", 3), ("Costa", "Italian", "a", 2),  # 3 of 5 < 2/3: dropped
             ("Müller", "German", "b", 1), ("Muller", "German", "a", 2)]  # one surname after normalisation
    rows, dropped = build_rows(votes, excluded=set())
    assert rows == [("Muller", "German", "a"), ("Weber", "German", "a")]
    assert dropped == {"conflicting": 2}


def test_external_names_are_left_out_in_any_spelling():
    votes = [("Müller", "German", "a", 5), ("Schmidt", "German", "a", 1), ("Le Duc", "French", "a", 1),
             ("Gurev", "Russian", "a", 1), ("Dupont", "French", "a", 1)]
    excluded = {spelling_key(name) for name in ("MULLER", "Leduc", "Гурьев")}
    rows, dropped = build_rows(votes, excluded)
    assert rows == [("Dupont", "French", "a"), ("Schmidt", "German", "a")] and dropped == {"in external_val": 3}


def test_polish_case_forms_and_diacritic_free_twins_are_dropped():
    words = {"nowak", "nowaka", "nowakowi", "kowalski", "kowalska", "kowalskiego", "kowalscy", "wiśniewski",
             "wisniewski", "przygoda", "przygodą"}
    assert polish_base_forms(words) == {"nowak", "kowalski", "kowalska", "wiśniewski", "przygoda"}


class Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_a_hostile_pickle_is_refused_before_it_runs(tmp_path):
    exploit = Exploit()
    exploit.target = str(tmp_path / "pwned")
    data = pickle.dumps({"Albert Einstein": [exploit]})
    with pytest.raises(DataError, match="refused to unpickle"):
        read_pickle(data)
    assert not (tmp_path / "pwned").exists()
    assert read_pickle(pickle.dumps({"A B": ["German"]})) == {"A B": ["German"]}


# --- the whole build on fake wheels ---

PEOPLE = {
    "Albert Einstein": ["German"], "Fritz Haber": ["Austrian"], "Max Weber": ["German"],
    "Joe Weber": ["American"],  # left out by the table: no vote
    "Jan van Eyck": ["Dutch"], "Marie Curie": ["French"], "Pierre Curie": ["French"],
    "Mario Curie": ["Italian"],  # outvoted 2 to 1 (exactly 2/3): French
    "Mao Zedong": ["Chinese"], "Jackie Chan": ["Chinese"], "Lionel Messi": ["Argentine"],
    "Ayrton Senna": ["Brazilian"], "Nikolai Gogol": ["Ukrainian"],  # left out on purpose
    "Sergei Smirnov": ["Russian"], "Anna Novak": ["Czech", "Slovak"],
}


def fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


def sinonym_files() -> dict[str, bytes]:
    lexicons = {"japanese_surnames": ["sato", "satou", "tanaka"], "japanese_given_names": ["akira"],
                "korean_surnames": ["kim"], "vietnamese_surnames": ["nguyen"]}
    return {"sinonym/data/east_asian_roman_lexicons.json.gz": gzip.compress(json.dumps(lexicons).encode()),
            "sinonym/data/familyname_orcid.csv": "surname,ppm\n毛,10\n".encode(),
            "sinonym/data/surname_romanizations.csv": b"spelling,mandarin_target,surname_ppm_as_written,target_share\n"
                                                      b"chan,chen,1,1.0\nfai,hui,1,0.018\n"}


def polish_trie(tmp_path: Path) -> bytes:
    marisa_trie = pytest.importorskip("marisa_trie")
    path = tmp_path / "pl.marisa"
    marisa_trie.RecordTrie("<I", [("nowak", (1,)), ("nowaka", (2,)), ("kowalska", (3,))]).save(str(path))
    return path.read_bytes()


def arabic_db(tmp_path: Path) -> bytes:
    path = tmp_path / "names.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE units (arabic_key TEXT, latin TEXT, latin_lang TEXT, country TEXT, role TEXT, "
                   "count INTEGER, source TEXT)")
        db.executemany("INSERT INTO units VALUES ('', ?, '', ?, ?, ?, 'wikidata')",
                       [("Haddad", "LB", "surname", 3), ("Tehrani", "IR", "surname", 5), ("Omar", "EG", "given", 9)])
    return path.read_bytes()


@pytest.fixture
def fake_sources(tmp_path):
    """Four fake wheels, their sources file (with their real sha256s), a nationality table and a file to exclude."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    made = {
        "name2nat": fake_wheel(wheels / "name2nat.whl", {"name2nat/name2nats.pkl": pickle.dumps(PEOPLE)}),
        "zxcvbn-pl": fake_wheel(wheels / "pl.whl", {"zxcvbn_pl/data/pl_last_names.marisa": polish_trie(tmp_path)}),
        "arabic-name-romanizer": fake_wheel(wheels / "ar.whl", {
            "arabic_name_romanizer/resources/names.sqlite3": arabic_db(tmp_path)}),
        "sinonym": fake_wheel(wheels / "sinonym.whl", sinonym_files()),
    }
    sources = [{"name": name, "package": name, "version": "0", "wheel": path.name,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "licence": "CC0-1.0", "attribution": "test"}
               for name, path in made.items()]
    (tmp_path / "sources.json").write_text(json.dumps(sources))
    (tmp_path / "nat.tsv").write_text("# header\nGerman\tGerman\tx\nAustrian\tGerman\tx\nAmerican\t\tx\n"
                                      "Dutch\tDutch\tx\nFrench\tFrench\tx\nItalian\tItalian\tx\nChinese\tChinese\tx\n"
                                      "Argentine\tSpanish\tx\nBrazilian\tPortuguese\tx\nUkrainian\t\tx\n"
                                      "Russian\tRussian\tx\nCzech\tCzech\tx\nSlovak\tCzech\tx\n")
    (tmp_path / "external.tsv").write_text("Smirnóv\tRussian\n")
    return tmp_path


def build_args(root: Path, *extra: str) -> list[str]:
    return ["--wheels", str(root / "wheels"), "--sources", str(root / "sources.json"), "--nationalities",
            str(root / "nat.tsv"), "--exclude", str(root / "external.tsv"), "--out", str(root / "corpus.tsv"),
            "--readme", str(root / "README.md"), *extra]


def test_the_build_applies_the_table_the_order_rules_and_the_exclusion(fake_sources):
    assert main(build_args(fake_sources)) == 0
    rows = [line.split("\t") for line in (fake_sources / "corpus.tsv").read_text().splitlines()]
    got = {name: (country, source) for name, country, source in rows}
    assert got["Einstein"] == ("German", "name2nat") and got["Haber"] == ("German", "name2nat")
    assert got["Weber"] == ("German", "name2nat")  # the American Weber has no vote
    assert got["van Eyck"] == ("Dutch", "name2nat") and got["Curie"] == ("French", "name2nat")
    assert got["Mao"][0] == "Chinese" and got["Chan"][0] == "Chinese"
    assert got["Messi"] == ("Spanish", "name2nat") and got["Senna"] == ("Portuguese", "name2nat")
    assert got["Novak"] == ("Czech", "name2nat")  # Czech and Slovak: one country, two votes
    assert "Gogol" not in got and "Smirnov" not in got  # Ukrainian left out; Smirnov is in the external file
    assert got["Nowak"] == ("Polish", "zxcvbn-pl") and "Nowaka" not in got and got["Kowalska"][0] == "Polish"
    assert got["Haddad"] == ("Arabic", "arabic-name-romanizer") and "Tehrani" not in got and "Omar" not in got
    assert got["Sato"] == ("Japanese", "sinonym") and "Satou" not in got and got["Kim"] == ("Korean", "sinonym")
    assert [r[0] for r in rows] == [r[0] for r in sorted(rows, key=lambda r: (r[1], r[0].lower(), r[0]))]
    readme = (fake_sources / "README.md").read_text()
    assert "| German | 3 |" in readme and "in external_val 1" in readme


def test_check_passes_on_a_rebuild_and_fails_on_a_changed_row(fake_sources):
    main(build_args(fake_sources))
    assert main(build_args(fake_sources, "--check")) == 0
    corpus = fake_sources / "corpus.tsv"
    corpus.write_text(corpus.read_text().replace("Einstein\tGerman", "Einstein\tFrench"))
    with pytest.raises(UserError, match="differs from a rebuild: 1 rows only in the file"):
        main(build_args(fake_sources, "--check"))


def test_a_wheel_with_another_checksum_is_refused(fake_sources):
    sources = json.loads((fake_sources / "sources.json").read_text())
    sources[0]["sha256"] = "0" * 64
    (fake_sources / "sources.json").write_text(json.dumps(sources))
    with pytest.raises(DataError, match="is not the pinned"):
        main(build_args(fake_sources))
    assert not (fake_sources / "corpus.tsv").exists()


def test_the_committed_corpus_leaves_out_every_external_name():
    from config.config import CORPUS, EXTERNAL_VAL
    from utils.data import load_samples

    if not EXTERNAL_VAL.exists():
        pytest.skip("no ../shared/data/external_val.tsv beside the checkout")
    external = {spelling_key(s.name) for s in load_samples(EXTERNAL_VAL)}
    corpus = {spelling_key(s.name) for s in load_samples(CORPUS)}
    assert len(corpus) > 200_000 and not corpus & external
