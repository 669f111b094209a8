"""Answers already paid for, on disk: one SQLite file per cache folder, one row per (server, model, prompt; name).

Each request's answers are one transaction, committed as soon as they arrive, so a run stopped midway keeps
every answer it got, and several processes can write at once: SQLite's lock serialises the writers, each
adding its own rows, and WAL lets readers go on meanwhile.
"""
import hashlib
import json
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path

from utils.errors import UserError

FILE_NAME = "answers.sqlite"
LOCK_WAIT = 30.0  # seconds a writer waits for another's transaction; each takes milliseconds


class AnswerCache:
    def __init__(self, directory: str | Path, server: str, model: str, prompt_key: str):
        """`server` must hold no credentials (client.public_url): only its hash is stored, but the hash is the key."""
        key = json.dumps({"server": server, "model": model, "prompt": prompt_key}, sort_keys=True)
        self.key = hashlib.sha256(key.encode()).hexdigest()
        self.path = Path(directory) / FILE_NAME
        self.lock = threading.Lock()  # the worker threads of one run add answers side by side
        for attempt in range(200):
            try:
                self.answers = self._open()  # name -> {"answer", "tokens", "seconds"}
                break
            except UserError as e:
                # switching a new file to WAL needs it alone, and SQLite refuses at once rather than wait, so two
                # runs that open a new cache at the same moment take turns here
                if "database is locked" not in str(e) or attempt == 199:
                    raise
                time.sleep(0.05)

    def _open(self) -> dict[str, dict]:
        with self._transaction() as db:
            db.execute("PRAGMA journal_mode=WAL")  # stored in the file: every later connection uses it
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT, name TEXT, answer TEXT, tokens REAL, "
                       "seconds REAL, PRIMARY KEY (key, name))")
            rows = db.execute("SELECT name, answer, tokens, seconds FROM answers WHERE key = ?", (self.key,))
            return {name: {"answer": answer, "tokens": tokens, "seconds": seconds} for name, answer, tokens, seconds in rows}

    @contextmanager
    def _transaction(self):
        """A connection of its own, committed (or rolled back) and closed at the end; SQLite failures as one line."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=LOCK_WAIT)) as db, db:
                yield db
        except sqlite3.DatabaseError as e:
            raise UserError(f"{self.path}: unusable answer cache ({e}); delete it to start afresh") from None

    def __contains__(self, name: str) -> bool:
        return name in self.answers

    def __getitem__(self, name: str) -> dict:
        return self.answers[name]

    def update(self, answers: dict[str, dict]) -> None:
        """Add answers, on disk at once; safe from several threads and processes."""
        if not answers:
            return
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                           [(self.key, name, a["answer"], a["tokens"], a["seconds"]) for name, a in answers.items()])
        with self.lock:
            self.answers.update(answers)
