"""Classify normalised surnames with a chat model: batches, a concurrency limit, the cache, the country check."""
from dataclasses import dataclass

from config.config import LLMConfig
from llm.cache import AnswerCache
from llm.client import chat, make_client, public_url
from llm.pool import run_threads
from llm.prompt import build_messages, parse_answer, prompt_key, response_format
from llm.shots import draw_examples, training_pairs


@dataclass
class Answer:
    name: str  # the normalised name the model was asked about
    country: str | None  # one of the countries, or None: no answer
    raw: str | None  # what the model said, for a "no answer" worth reporting
    tokens: float  # this name's share of its request's tokens
    seconds: float  # this name's share of its request's wall time
    cached: bool  # answered from the cache in this run, for free


class LLMClassifier:
    def __init__(self, client, cfg: LLMConfig, countries: list[str], examples: list[tuple[str, str]]):
        self.client, self.cfg, self.countries, self.examples = client, cfg, list(countries), examples
        self.cache = AnswerCache(cfg.cache_dir, public_url(client.base_url), cfg.model,  # no secret in the key
                                 prompt_key(self.countries, examples))

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, cfg: LLMConfig, data=None, api_key: str | None = None) -> "LLMClassifier":
        """The checkpoint's country list; with cfg.shots > 0, examples from its training split (`data`: where
        the training data now is, if not where the checkpoint says)."""
        client = make_client(cfg.base_url, cfg.timeout, cfg.max_retries, api_key)  # first: a missing key fails fast
        countries = list(checkpoint["countries"])
        examples = []
        if cfg.shots:
            record = checkpoint["data"]
            examples = draw_examples(training_pairs(record, countries, data), cfg.shots, record["seed"])
        return cls(client, cfg, countries, examples)

    def _ask(self, names: list[str]) -> dict[str, dict]:
        """One request for a batch of distinct names, on a worker thread: {name: entry}, the valid ones cached.

        Cached here, as soon as they arrive, rather than by the main thread: an answer paid for is on disk
        even if Ctrl-C ends the run a moment later. An answer outside the country list is not cached, so
        the next run asks again.
        """
        entries = self._request(names)
        self.cache.update({name: e for name, e in entries.items() if e["answer"] in self.countries})
        return entries

    def _request(self, names: list[str]) -> dict[str, dict]:
        reply = chat(self.client, self.cfg.model, build_messages(names, self.countries, self.examples),
                     response_format(names, self.countries), self.cfg.temperature)
        raw = parse_answer(reply, names)
        return {name: {"answer": raw[name], "tokens": reply.tokens / len(names), "seconds": reply.seconds / len(names)}
                for name in names}

    def classify(self, names: list[str], progress: bool = False) -> list[Answer]:
        """An Answer per name, in order; names the cache knows are not asked again.

        Any failure stops the run with LLMError after the batches already answered are in the cache.
        Ctrl-C stops it at once, without waiting for the requests in flight, with a KeyboardInterrupt
        that says how many answers were kept.
        """
        todo = [name for name in dict.fromkeys(names) if name not in self.cache]
        batches = [todo[i:i + self.cfg.batch_size] for i in range(0, len(todo), self.cfg.batch_size)]
        received = {}  # every answer of this run, valid or not
        bar = None
        if progress and batches:
            from tqdm import tqdm

            bar = tqdm(total=len(batches), unit="request", desc=f"asking {self.cfg.model}")

        def keep(entries: dict[str, dict]) -> None:
            received.update(entries)
            if bar is not None:
                bar.update()

        try:
            run_threads(self._ask, batches, self.cfg.workers, keep)
        except KeyboardInterrupt:
            kept = sum(name in self.cache for name in todo)
            raise KeyboardInterrupt(f"kept the {kept} new answers in {self.cache.path}; the other "
                                    f"{len(todo) - kept} names are asked next time") from None
        finally:
            if bar is not None:
                bar.close()
        answers = []
        for name in names:
            entry = received[name] if name in received else self.cache[name]
            country = entry["answer"] if entry["answer"] in self.countries else None  # validated, never mapped
            answers.append(Answer(name, country, entry["answer"], entry["tokens"], entry["seconds"],
                                  cached=name not in received))
        return answers
