"""The OpenAI client: server, key and limits from flags or the environment; its errors as one line, secrets masked."""
import os
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote

from utils.errors import UserError

USERINFO = re.compile(r"(?<=//)[^/?#\s]*@")  # user:password@ right after the scheme, up to its last @
SECRET_PARAMETER = re.compile(r"\b([\w.-]*(?:key|token|secret|password|signature)[\w.-]*=)[^&#\s'\"]+",
                              re.IGNORECASE)  # key=..., api_key=..., access_token=...


class LLMError(UserError):
    """The language model could not be asked, or its answer could not be read."""


@dataclass
class Reply:
    content: str | None  # the message text: here a JSON object
    refusal: str | None  # set when the model declined to answer
    finish_reason: str | None  # "length" means the answer was cut off
    tokens: int  # prompt + completion tokens the server reports (0 if it reports none)
    seconds: float  # wall time of the request, retries included


def public_url(url) -> str:
    """`url` with its credentials masked: a user:password@ as ***@, the value of key=, api_key=, token=... as ***.

    What messages show and what the answer cache is keyed by, so a secret in --base-url never reaches
    a terminal, a log or a file. Regular expressions, not urlsplit, because a malformed URL must be
    masked too (urlsplit raises on some), and so must any URL quoted inside a message.
    """
    return SECRET_PARAMETER.sub(r"\1***", USERINFO.sub("***@", str(url)))


def hide_secrets(text: str, url) -> str:
    """`text` with `url`'s credentials masked: where it quotes a URL, and the password or key values on their own."""
    url = str(url)
    found = [m.group(0)[:-1].partition(":")[2] for m in USERINFO.finditer(url)]  # the password, not the user name
    found += [m.group(0)[len(m.group(1)):] for m in SECRET_PARAMETER.finditer(url)]
    text = public_url(text)
    for secret in sorted({s for raw in found if raw for s in (raw, unquote(raw))}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def make_client(base_url: str | None, timeout: float, max_retries: int, api_key: str | None = None):
    """An openai.OpenAI for `base_url` (else $OPENAI_BASE_URL, else OpenAI); the key from $OPENAI_API_KEY."""
    import openai

    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise LLMError("no API key: set OPENAI_API_KEY (a local server accepts any value, e.g. OPENAI_API_KEY=local)")
    url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    options = {"base_url": url} if url else {}  # absent: the client's own default, OpenAI's API
    try:
        return openai.OpenAI(api_key=key, timeout=timeout, max_retries=max_retries, **options)
    except Exception as e:  # httpx's InvalidURL, e.g. http://[::1, the one thing this constructor raises
        raise LLMError(hide_secrets(f"{public_url(url)} is not a usable URL ({e}); check --base-url or OPENAI_BASE_URL",
                                    url)) from None


def _server_message(e) -> str:
    """The server's own explanation, if its error body has one, on one short line."""
    body = getattr(e, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message", message)
    text = str(message or getattr(e, "message", "") or type(e).__name__)
    return " ".join(text.split())[:200]


def _explain(e: Exception, client) -> str:
    """What went wrong with a request, on one line, for an error the client's retries did not cure."""
    import openai

    where = public_url(client.base_url).rstrip("/")
    if isinstance(e, openai.APITimeoutError):
        return (f"{where}: no answer within {client.timeout} s (tried {client.max_retries + 1} times); "
                "the server is slow or overloaded (see --llm-timeout and --llm-retries)")
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__ or e
        return (f"cannot reach {where} ({type(cause).__name__}: {' '.join(str(cause).split())[:120]}); "
                "is the server running? check --base-url or OPENAI_BASE_URL")
    if isinstance(e, openai.AuthenticationError):
        return f"{where} rejected the API key (HTTP 401: {_server_message(e)}); check OPENAI_API_KEY"
    if isinstance(e, openai.APIStatusError):
        return f"{where} answered HTTP {e.status_code}: {_server_message(e)}"
    if isinstance(e, ValueError):  # the client's json.loads of a body that is not JSON
        return f"{where}: the response is not JSON; is this an OpenAI-compatible /v1 URL?"
    return f"{where}: unreadable response ({type(e).__name__}: {_server_message(e)})"  # e.g. not a chat completion


def chat(client, model: str, messages: list[dict], response_format: dict, temperature: float) -> Reply:
    """One chat completion; LLMError with the reason on any failure the client's retries did not cure."""
    import openai

    start = time.perf_counter()
    try:
        completion = client.chat.completions.create(model=model, messages=messages, response_format=response_format,
                                                    temperature=temperature)
    except (openai.OpenAIError, ValueError) as e:
        raise LLMError(hide_secrets(_explain(e, client), client.base_url)) from None  # the server may quote the URL
    seconds = time.perf_counter() - start
    if not getattr(completion, "choices", None):
        raise LLMError(f"{public_url(client.base_url).rstrip('/')}: the response holds no answer (no choices); "
                       "is this a chat-completions endpoint?")
    choice = completion.choices[0]
    usage = getattr(completion, "usage", None)
    return Reply(content=choice.message.content, refusal=getattr(choice.message, "refusal", None),
                 finish_reason=choice.finish_reason, tokens=int(getattr(usage, "total_tokens", 0) or 0),
                 seconds=seconds)
