"""The command-line flags of the llm backend, shared by predict.py and evaluate.py (no openai import here)."""
import argparse
from dataclasses import replace

from config.config import LLMConfig


def add_llm_arguments(parser: argparse.ArgumentParser, backend_help: str) -> None:
    llm = LLMConfig()
    parser.add_argument("--backend", choices=("rnn", "llm"), default="rnn", help=f"{backend_help} (default: rnn)")
    parser.add_argument("--shots", type=int, default=llm.shots,
                        help=f"llm: labelled training names shown before the question (default: {llm.shots})")
    parser.add_argument("--llm-model", default=llm.model, help=f"llm: chat model to ask (default: {llm.model})")
    parser.add_argument("--base-url", default=llm.base_url,
                        help="llm: the server's /v1 URL (default: $OPENAI_BASE_URL, else OpenAI)")
    parser.add_argument("--llm-cache", default=llm.cache_dir, help=f"llm: answer cache folder (default: {llm.cache_dir})")


def llm_config(args: argparse.Namespace) -> LLMConfig:
    """LLMConfig's defaults with the flags of add_llm_arguments applied."""
    return replace(LLMConfig(), model=args.llm_model, base_url=args.base_url, shots=args.shots, cache_dir=args.llm_cache)
