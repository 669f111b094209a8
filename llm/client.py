"""The OpenAI client: server, key and limits from flags or the environment; its errors as one line."""
import os
import time
from dataclasses import dataclass

from utils.errors import UserError


class LLMError(UserError):
    """The language model could not be asked, or its answer could not be read."""


@dataclass
class Reply:
    content: str | None  # the message text: here a JSON object
    refusal: str | None  # set when the model declined to answer
    finish_reason: str | None  # "length" means the answer was cut off
    tokens: int  # prompt + completion tokens the server reports (0 if it reports none)
    seconds: float  # wall time of the request, retries included


def make_client(base_url: str | None, timeout: float, max_retries: int, api_key: str | None = None):
    """An openai.OpenAI for `base_url` (else $OPENAI_BASE_URL, else OpenAI); the key from $OPENAI_API_KEY."""
    import openai

    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise LLMError("no API key: set OPENAI_API_KEY (a local server accepts any value, e.g. OPENAI_API_KEY=local)")
    url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    options = {"base_url": url} if url else {}  # absent: the client's own default, OpenAI's API
    return openai.OpenAI(api_key=key, timeout=timeout, max_retries=max_retries, **options)


def _server_message(e) -> str:
    """The server's own explanation, if its error body has one, on one short line."""
    body = getattr(e, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message", message)
    text = str(message or getattr(e, "message", "") or type(e).__name__)
    return " ".join(text.split())[:200]


def chat(client, model: str, messages: list[dict], response_format: dict, temperature: float) -> Reply:
    """One chat completion; LLMError with the reason on any failure the client's retries did not cure."""
    import openai

    where = str(client.base_url).rstrip("/")
    start = time.perf_counter()
    try:
        completion = client.chat.completions.create(model=model, messages=messages, response_format=response_format,
                                                    temperature=temperature)
    except openai.APITimeoutError:
        raise LLMError(f"{where}: no answer within {client.timeout} s (tried {client.max_retries + 1} times); "
                       "the server is slow or overloaded") from None
    except openai.APIConnectionError as e:
        cause = e.__cause__ or e
        raise LLMError(f"cannot reach {where} ({type(cause).__name__}: {' '.join(str(cause).split())[:120]}); "
                       "is the server running? check --base-url or OPENAI_BASE_URL") from None
    except openai.AuthenticationError as e:
        raise LLMError(f"{where} rejected the API key (HTTP 401: {_server_message(e)}); check OPENAI_API_KEY") from None
    except openai.APIStatusError as e:
        raise LLMError(f"{where} answered HTTP {e.status_code}: {_server_message(e)}") from None
    except ValueError:  # the client's json.loads of a body that is not JSON
        raise LLMError(f"{where}: the response is not JSON; is this an OpenAI-compatible /v1 URL?") from None
    except openai.OpenAIError as e:  # e.g. a body that is not a chat completion
        raise LLMError(f"{where}: unreadable response ({type(e).__name__}: {_server_message(e)})") from None
    seconds = time.perf_counter() - start
    if not getattr(completion, "choices", None):
        raise LLMError(f"{where}: the response holds no answer (no choices); is this a chat-completions endpoint?")
    choice = completion.choices[0]
    usage = getattr(completion, "usage", None)
    return Reply(content=choice.message.content, refusal=getattr(choice.message, "refusal", None),
                 finish_reason=choice.finish_reason, tokens=int(getattr(usage, "total_tokens", 0) or 0),
                 seconds=seconds)
