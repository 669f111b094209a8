"""The command-line flags of the llm backend, shared by predict.py and evaluate.py (no openai import here)."""
import argparse
import math
from dataclasses import replace

from config.config import LLMConfig


def positive_seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def tries_after_the_first(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text!r}")
    return value


def add_llm_arguments(parser: argparse.ArgumentParser, backend_help: str) -> None:
    llm = LLMConfig()
    parser.add_argument("--backend", choices=("rnn", "llm"), default="rnn", help=f"{backend_help} (default: rnn)")
    parser.add_argument("--shots", type=int, default=llm.shots,
                        help=f"llm: labelled training names shown before the question (default: {llm.shots})")
    parser.add_argument("--llm-model", default=llm.model, help=f"llm: chat model to ask (default: {llm.model})")
    parser.add_argument("--base-url", default=llm.base_url,
                        help="llm: the server's /v1 URL (default: $OPENAI_BASE_URL, else OpenAI)")
    parser.add_argument("--llm-cache", default=llm.cache_dir, help=f"llm: answer cache folder (default: {llm.cache_dir})")
    parser.add_argument("--llm-timeout", type=positive_seconds, default=llm.timeout, metavar="SECONDS",
                        help=f"llm: seconds to wait for each try of a request (default: {llm.timeout:g})")
    parser.add_argument("--llm-retries", type=tries_after_the_first, default=llm.max_retries, metavar="N",
                        help="llm: tries after the first on a timeout, a lost connection, HTTP 408/409/429 or 5xx; "
                             f"a hung server fails after about SECONDS x (N + 1) (default: {llm.max_retries})")


def llm_config(args: argparse.Namespace) -> LLMConfig:
    """LLMConfig's defaults with the flags of add_llm_arguments applied."""
    return replace(LLMConfig(), model=args.llm_model, base_url=args.base_url, shots=args.shots,
                   cache_dir=args.llm_cache, timeout=args.llm_timeout, max_retries=args.llm_retries)
