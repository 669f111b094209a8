"""The conversation sent to the model, the JSON schema that constrains its answer, and reading it back.

One request classifies several names: the user message lists them as a JSON array and the model
answers one JSON object, {name: country}. The schema names every asked name as a required key and
allows only the given countries as values (an `enum`), which OpenAI, llama.cpp server, vLLM and
Ollama enforce while decoding; parse_answer checks it again, because not every server does.
"""
import hashlib
import json

from llm.client import LLMError, Reply

PROMPT_VERSION = 1  # bump when the wording changes, so cached answers to the old prompt are not reused


def system_message(countries: list[str]) -> dict:
    return {"role": "system", "content": (
        "You tell the country of origin of surnames. For each surname in the user's JSON array, pick the one "
        f"country it most likely comes from, from this list only: {', '.join(countries)}. "
        "Reply with a JSON object that maps each surname, exactly as written, to its country.")}


def user_message(names: list[str]) -> dict:
    return {"role": "user", "content": json.dumps(names, ensure_ascii=False)}


def build_messages(names: list[str], countries: list[str], examples: list[tuple[str, str]]) -> list[dict]:
    """System message, then the labelled examples as one question and its model answer, then the question.

    The examples use the very format of the real question, which is what shows a model the task:
    zero-shot has none, one-shot one, few-shot K.
    """
    messages = [system_message(countries)]
    if examples:
        messages += [user_message([name for name, _ in examples]),
                     {"role": "assistant", "content": json.dumps(dict(examples), ensure_ascii=False)}]
    return messages + [user_message(names)]


def response_format(names: list[str], countries: list[str]) -> dict:
    """A strict JSON schema: an object with exactly these names as keys, each valued by one of the countries."""
    return {"type": "json_schema", "json_schema": {
        "name": "surname_countries",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {name: {"type": "string", "enum": list(countries)} for name in names},
            "required": list(names),
            "additionalProperties": False,
        },
    }}


def prompt_key(countries: list[str], examples: list[tuple[str, str]]) -> str:
    """sha256 of everything in a request but the names: answers to one prompt are reusable, not others'."""
    text = json.dumps({"version": PROMPT_VERSION, "messages": build_messages([], countries, examples)},
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def parse_answer(reply: Reply, names: list[str]) -> dict[str, str | None]:
    """The model's raw answer for each asked name (None: it gave none); LLMError if the JSON is unreadable.

    A refusal answers no name. Whether an answer is one of the countries is the caller's check.
    """
    if reply.refusal and not reply.content:
        return {name: None for name in names}
    if reply.finish_reason == "length":
        raise LLMError(f"the model's answer was cut off (finish_reason 'length') for {len(names)} names; "
                       "ask fewer names per request")
    try:
        answer = json.loads(reply.content or "")
    except json.JSONDecodeError as e:
        raise LLMError(f"the model's answer is not valid JSON ({e.msg} at character {e.pos}): "
                       f"{(reply.content or '')[:80]!r}") from None
    if not isinstance(answer, dict):
        raise LLMError(f"the model answered a JSON {type(answer).__name__}, not an object of name: country")
    raw = {name: answer.get(name) for name in names}
    return {name: value if value is None or isinstance(value, str) else json.dumps(value) for name, value in raw.items()}
