"""Answers already paid for, on disk: one JSON file per server, model and prompt, one entry per name.

The file is rewritten through a temp file and a rename after every answered request, so a run that
fails midway leaves every answer it got, and a reader never sees half a file.
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path

from utils.errors import UserError


class AnswerCache:
    def __init__(self, directory: str | Path, server: str, model: str, prompt_key: str):
        self.key = {"server": server, "model": model, "prompt": prompt_key}
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:24]
        self.path = Path(directory) / f"{digest}.json"
        self.answers: dict[str, dict] = {}  # name -> {"answer": raw text or None, "tokens": float, "seconds": float}
        if self.path.is_file():
            try:
                stored = json.loads(self.path.read_text(encoding="utf-8"))
                self.answers = stored["answers"] if stored["key"] == self.key else {}
            except (ValueError, KeyError, TypeError):
                raise UserError(f"{self.path}: unreadable answer cache; delete it to start afresh") from None

    def __contains__(self, name: str) -> bool:
        return name in self.answers

    def __getitem__(self, name: str) -> dict:
        return self.answers[name]

    def update(self, answers: dict[str, dict]) -> None:
        """Add answers and write the file at once."""
        self.answers.update(answers)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"key": self.key, "answers": self.answers}, f, ensure_ascii=False, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
