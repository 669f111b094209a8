"""Classify normalised surnames with a chat model: batches, a concurrency limit, the cache, the country check."""
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from config.config import LLMConfig
from llm.cache import AnswerCache
from llm.client import LLMError, chat, make_client
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
        self.cache = AnswerCache(cfg.cache_dir, str(client.base_url), cfg.model, prompt_key(self.countries, examples))

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

    def _ask(self, names: list[str], stop: threading.Event) -> dict[str, dict]:
        """One request for a batch of distinct names: {name: cache entry}; none once `stop` is set."""
        if stop.is_set():
            raise CancelledError
        try:
            return self._request(names)
        except LLMError:
            stop.set()  # here, not in the caller, so this worker's next batch already sees it
            raise

    def _request(self, names: list[str]) -> dict[str, dict]:
        reply = chat(self.client, self.cfg.model, build_messages(names, self.countries, self.examples),
                     response_format(names, self.countries), self.cfg.temperature)
        raw = parse_answer(reply, names)
        return {name: {"answer": raw[name], "tokens": reply.tokens / len(names), "seconds": reply.seconds / len(names)}
                for name in names}

    def classify(self, names: list[str], progress: bool = False) -> list[Answer]:
        """An Answer per name, in order; names the cache knows are not asked again.

        Any failure stops the run with LLMError after the batches already answered are in the cache.
        """
        todo = [name for name in dict.fromkeys(names) if name not in self.cache]
        fresh = set(todo)
        batches = [todo[i:i + self.cfg.batch_size] for i in range(0, len(todo), self.cfg.batch_size)]
        error, stop = None, threading.Event()
        with ThreadPoolExecutor(max_workers=self.cfg.workers) as pool:
            futures = [pool.submit(self._ask, batch, stop) for batch in batches]
            done = as_completed(futures)
            if progress and futures:
                from tqdm import tqdm

                done = tqdm(done, total=len(futures), unit="request", desc=f"asking {self.cfg.model}")
            for future in done:
                try:
                    self.cache.update(future.result())
                except CancelledError:
                    continue
                except LLMError as e:  # nothing more is sent; requests in flight still finish and are kept
                    if error is None:
                        error = e
                        for other in futures:
                            other.cancel()
        if error is not None:
            raise error
        answers = []
        for name in names:
            entry = self.cache[name]
            country = entry["answer"] if entry["answer"] in self.countries else None  # validated, never mapped
            answers.append(Answer(name, country, entry["answer"], entry["tokens"], entry["seconds"], name not in fresh))
        return answers
