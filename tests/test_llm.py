"""The llm backend against a real OpenAI-compatible HTTP server on 127.0.0.1, through the real openai client."""
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from config.config import LLMConfig
from tests.conftest import ROOT, TINY

KNOWN = {name: country for country, names in TINY.items() for name in names}  # what the fake model "knows"


class FakeServer:
    """Answers POST /v1/chat/completions like a model that knows TINY, and keeps every request body.

    `script` holds the next responses to give, as (status, body dict or raw text, headers), ("sleep",
    seconds) before a normal answer, ("hang",): no answer until the test ends, or None for a normal
    answer; `answer` makes the model say something else.
    """

    def __init__(self):
        self.requests, self.script, self.lock = [], [], threading.Lock()
        self.release = threading.Event()  # set when the test ends: hung requests give up
        self.answer = lambda name: KNOWN.get(name, "English")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization"),
                                            "time": time.monotonic()})
                    step = server.script.pop(0) if server.script else None
                if step and step[0] == "hang":
                    server.release.wait()
                    return
                if step and step[0] == "sleep":
                    time.sleep(step[1])
                    step = None
                status, payload, headers = step or (200, server.completion(body), {})
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def completion(self, body: dict, content: str | None = None) -> dict:
        names = body["response_format"]["json_schema"]["schema"]["required"]
        if content is None:
            content = json.dumps({name: self.answer(name) for name in names})
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 90, "completion_tokens": 10, "total_tokens": 100}}


@pytest.fixture
def server():
    fake = FakeServer()
    thread = threading.Thread(target=fake.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.release.set()
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    from models.checkpoint import load

    return load(tiny_checkpoint)


def classifier(server, checkpoint, tmp_path, data=None, **overrides):
    from llm.classify import LLMClassifier

    settings = {"model": "test-model", "base_url": server.url, "cache_dir": str(tmp_path / "cache"),
                "timeout": 5.0, "max_retries": 0, **overrides}
    cfg = replace(LLMConfig(), **settings)
    return LLMClassifier.from_checkpoint(checkpoint, cfg, data=data, api_key="sk-test")


def test_request_carries_model_messages_and_the_exact_country_list(server, checkpoint, tmp_path):
    answers = classifier(server, checkpoint, tmp_path).classify(["Nakamura", "Ivanov"])
    assert [a.country for a in answers] == ["Japanese", "Russian"]
    [request] = server.requests
    body = request["body"]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert body["model"] == "test-model" and body["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]  # zero-shot: no examples
    assert json.loads(body["messages"][-1]["content"]) == ["Nakamura", "Ivanov"]
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["Nakamura", "Ivanov"] and schema["additionalProperties"] is False
    for name in ("Nakamura", "Ivanov"):
        assert schema["properties"][name]["enum"] == list(checkpoint["countries"]) == sorted(TINY)


def test_few_shot_examples_come_from_the_training_split_only(server, checkpoint, tiny_checkpoint_data, tmp_path):
    from utils.data import SurnameData

    data = SurnameData.from_record(checkpoint["data"], tiny_checkpoint_data)  # the checkpoint's split, rebuilt
    names, split = data.names, data.split
    train = {names[r] for r in split.train}
    held_out = {names[r] for r in split.val + split.test}

    clf = classifier(server, checkpoint, tmp_path, tiny_checkpoint_data, shots=5)
    assert clf.examples == classifier(server, checkpoint, tmp_path, tiny_checkpoint_data, shots=5).examples
    clf.classify([names[r] for r in split.test])
    shown_sets = []
    for request in server.requests:
        system, question, answer, _ = request["body"]["messages"]
        assert [question["role"], answer["role"]] == ["user", "assistant"]
        shown = json.loads(answer["content"])
        assert json.loads(question["content"]) == list(shown) and len(shown) == 5
        assert set(shown) <= train and not set(shown) & held_out
        assert all(KNOWN[name] == country for name, country in shown.items())
        shown_sets.append(shown)
    assert len({country for country in shown_sets[0].values()}) == 3  # countries take turns
    assert all(shown == shown_sets[0] for shown in shown_sets)  # the same examples in every call


def test_answer_outside_the_list_is_no_answer(server, checkpoint, tmp_path):
    server.answer = lambda name: "Klingon" if name == "Tanaka" else KNOWN[name]
    answers = classifier(server, checkpoint, tmp_path).classify(["Tanaka", "Smith"])
    assert (answers[0].country, answers[0].raw) == (None, "Klingon")
    assert answers[1].country == "English"


def test_batches_and_cache(server, checkpoint, tiny_checkpoint_data, tmp_path):
    names = TINY["Japanese"] + TINY["Russian"]
    clf = classifier(server, checkpoint, tmp_path, batch_size=5, workers=2)
    first = clf.classify(names + ["Tanaka"])  # a repeated name is asked once
    assert len(server.requests) == 7  # 32 distinct names, 5 a request
    asked = [n for r in server.requests for n in json.loads(r["body"]["messages"][-1]["content"])]
    assert sorted(asked) == sorted(names)
    assert [a.country for a in first] == [KNOWN[n] for n in names + ["Tanaka"]]
    assert sum(a.tokens for a in first[:-1]) == pytest.approx(700)

    again = classifier(server, checkpoint, tmp_path, batch_size=5).classify(names)  # a new run, same prompt
    assert len(server.requests) == 7 and all(a.cached for a in again)
    assert [a.country for a in again] == [a.country for a in first[:-1]]
    classifier(server, checkpoint, tmp_path, tiny_checkpoint_data, shots=1).classify(names[:2])  # another prompt
    assert len(server.requests) == 8


def test_503_then_success_is_retried(server, checkpoint, tmp_path):
    server.script = [(503, {"error": {"message": "overloaded"}}, {"retry-after-ms": "10"})]
    answers = classifier(server, checkpoint, tmp_path, max_retries=2).classify(["Sato"])
    assert answers[0].country == "Japanese" and len(server.requests) == 2


@pytest.mark.parametrize("step, message", [
    ((503, {"error": {"message": "overloaded"}}, {"retry-after-ms": "10"}), "HTTP 503: overloaded"),
    ((400, {"error": {"message": "response_format is not supported"}}, {}), "HTTP 400: response_format is not"),
    ((401, {"error": {"message": "bad key"}}, {}), "rejected the API key"),
    (("sleep", 1.5), "no answer within 0.5 s"),
])
def test_server_failures_are_one_line(server, checkpoint, tmp_path, step, message):
    from llm.client import LLMError

    server.script = [step] * 3
    with pytest.raises(LLMError) as e:
        classifier(server, checkpoint, tmp_path, max_retries=1, timeout=0.5).classify(["Sato"])
    assert message in str(e.value) and "\n" not in str(e.value)
    assert len(server.requests) == (1 if step[0] in (400, 401) else 2)  # 4xx is final; 5xx and timeouts retried


def test_malformed_json_and_unreachable_server(server, checkpoint, tmp_path):
    from llm.client import LLMError

    server.script = [(200, server.completion({"model": "m", "response_format": {"json_schema": {"schema": {
        "required": []}}}}, content='{"Sato": "Japa'), {})]
    with pytest.raises(LLMError, match="not valid JSON"):
        classifier(server, checkpoint, tmp_path).classify(["Sato"])
    server.script = [(200, "<html>not an API</html>", {})]
    with pytest.raises(LLMError, match="the response is not JSON"):
        classifier(server, checkpoint, tmp_path).classify(["Sato"])
    server.httpd.shutdown()
    server.httpd.server_close()
    with pytest.raises(LLMError, match="cannot reach http://127.0.0.1"):
        classifier(server, checkpoint, tmp_path).classify(["Sato"])


def test_a_run_failing_midway_keeps_its_answers(server, checkpoint, tmp_path):
    from llm.client import LLMError

    names = TINY["English"]
    server.script = [None, (500, {"error": {"message": "boom"}}, {})]  # the first request answered, the second not
    with pytest.raises(LLMError, match="HTTP 500"):
        classifier(server, checkpoint, tmp_path, batch_size=4, workers=1).classify(names)
    assert len(server.requests) == 2  # stopped sending after the failure
    clf = classifier(server, checkpoint, tmp_path, batch_size=4, workers=1)
    assert set(clf.cache.answers) == set(names[:4])
    answers = clf.classify(names)
    assert len(server.requests) == 2 + 3  # only the 12 names it did not have
    assert [a.country for a in answers] == ["English"] * len(names)


def test_evaluate_llm_end_to_end(server, checkpoint, tmp_path):
    from llm.evaluate import evaluate_llm, seeded_subset

    countries = list(checkpoint["countries"])
    names = TINY["Japanese"][:4] + TINY["Russian"][:4]
    y_true = [countries.index(KNOWN[n]) for n in names]
    server.answer = lambda name: "Martian" if name == "Ivanov" else ("Japanese" if name == "Smirnov" else KNOWN[name])
    result = evaluate_llm(classifier(server, checkpoint, tmp_path, batch_size=3), names, y_true, progress=False)
    assert result["y_pred"] == y_true[:4] + [None, countries.index("Japanese")] + y_true[6:]
    assert result["no_answer"] == 1 and result["metrics"]["accuracy"] == pytest.approx(6 / 8)
    assert result["metrics"]["balanced_accuracy"] == pytest.approx((1 + 2 / 4) / 2)  # Japanese all, Russian 2 of 4
    assert result["tokens"] == result["tokens_this_run"] == 300 and result["from_cache"] == 0
    assert result["seconds_per_name"] > 0
    again = evaluate_llm(classifier(server, checkpoint, tmp_path, batch_size=3), names, y_true, progress=False)
    assert again["y_pred"] == result["y_pred"] and again["from_cache"] == 7  # "Martian" was not cached: asked again
    assert again["tokens_this_run"] == 100 and again["tokens"] == round(300 - 100 / 3 + 100)
    assert seeded_subset(list(range(100)), 10, 0) == seeded_subset(list(range(100)), 10, 0) != list(range(10))


def cli_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return {**env, **extra}


def set_env(monkeypatch, **values) -> None:
    """This process's environment as cli_env(**values) gives a child's: no OPENAI_* but `values`."""
    for key in [k for k in os.environ if k.startswith("OPENAI_")]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_predict_cli_llm(server, tiny_checkpoint, tiny_checkpoint_data, tmp_path, monkeypatch, capsys):
    import predict
    from tests.test_cli import run_main

    common = ["--checkpoint", str(tiny_checkpoint), "--llm-cache", str(tmp_path / "cache"), "--backend", "llm",
              "--data", str(tiny_checkpoint_data)]
    server.answer = lambda name: "Klingon" if name == "Smith" else KNOWN[name]
    set_env(monkeypatch, OPENAI_API_KEY="local", OPENAI_BASE_URL=server.url)
    assert run_main(predict.main, ["nakamura", "Smith", "--shots", "2", *common]) == 1  # a name without an answer
    out = capsys.readouterr()
    assert out.out == "nakamura\tJapanese\nSmith\tno answer\n"
    assert "answered 'Klingon' for 'Smith'" in out.err
    assert len(server.requests[0]["body"]["messages"]) == 4  # two shots

    set_env(monkeypatch)
    assert run_main(predict.main, ["Sato", *common, "--base-url", server.url]) == \
        "error: no API key: set OPENAI_API_KEY (a local server accepts any value, e.g. OPENAI_API_KEY=local)"
    set_env(monkeypatch, OPENAI_API_KEY="local")
    assert run_main(predict.main, ["Sato", *common, "--topk", "3"]) == 2
    assert "--topk is for a trained model" in capsys.readouterr().err
    assert len(server.requests) == 1


@pytest.mark.slow
def test_rnn_backend_does_not_import_openai(tiny_checkpoint):
    code = ("import runpy, sys\n"
            "sys.argv = ['predict.py', 'Sato', '--checkpoint', sys.argv[1]]\n"
            "try:\n    runpy.run_path('predict.py', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('openai' in sys.modules, 'llm.classify' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(tiny_checkpoint)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False False"  # neither the client nor the backend behind the flags


def test_evaluate_cli_llm_side_by_side_with_the_rnn(server, tiny_checkpoint, tiny_checkpoint_data, tmp_path,
                                                     monkeypatch, capsys):
    import evaluate
    from models.checkpoint import load
    from tests.test_cli import run_main
    from utils.data import SurnameData

    data = SurnameData.from_record(load(tiny_checkpoint)["data"], tiny_checkpoint_data)
    test_names = {data.names[r] for r in data.split.test}
    server.answer = lambda name: "Atlantis" if name == sorted(test_names)[0] else KNOWN[name]
    set_env(monkeypatch, OPENAI_API_KEY="local", OPENAI_BASE_URL=server.url)
    code = run_main(evaluate.main, ["--checkpoint", str(tiny_checkpoint), "--backend", "llm", "--limit", "6", "--shots",
                                    "1", "--llm-model", "test-model", "--llm-cache", str(tmp_path / "cache"),
                                    "--split-data", str(tiny_checkpoint_data), "--out", str(tmp_path), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    side = report["side_by_side"]
    assert report["rows"] == side["rows"] == 6 and report["limit"] == 6
    asked = [n for r in server.requests for n in r["body"]["response_format"]["json_schema"]["schema"]["required"]]
    assert set(asked) <= test_names and len(asked) == len(set(asked))  # test names only, each asked once
    assert set(side["rnn"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "seconds_per_name"}
    llm = side["llm"]
    assert llm["model"] == "test-model" and llm["shots"] == 1 and llm["tokens"] > 0
    assert llm["no_answer"] == (1 if sorted(test_names)[0] in asked else 0)
    assert llm["accuracy"] == pytest.approx((6 - llm["no_answer"]) / 6)  # the fake model knows every other name
    assert (tmp_path / "gru_classification_best_eval_test.md").read_text().count("| llm test-model |") == 1
