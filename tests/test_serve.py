"""serve.py: the HTTP API in this process through FastAPI's test client (schema, per-name errors, every limit and
its status code, priors and abstention, the same answers as `predict.py --json`, concurrent requests sharing one
model call), and, marked slow, the page in a real headless Chromium against a server on a loopback port, ended
with SIGTERM.

Skipped without FastAPI (pip install -r requirements-serve.txt); the browser test also without Chromium.
"""
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")  # the test client's transport
from fastapi.testclient import TestClient  # noqa: E402

import predict  # noqa: E402
import serve  # noqa: E402
from tests.conftest import ROOT, TINY_COUNTRIES, last_letter_country, last_letter_probabilities  # noqa: E402


@contextmanager
def served(checkpoint, **settings):
    """A test client of the app for `checkpoint`, its lifespan (the batcher) running; 500s come back as responses."""
    app = serve.create_app(serve.Settings(checkpoints=[str(checkpoint)], stats_every_s=0, **settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, app.state.service


def predict_json(capsys, *argv) -> list[dict]:
    """What `predict.py --json ARGV` prints, one dict per answered name."""
    assert predict.main([*argv, "--json"]) in (0, 1)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def assert_same(got: list[dict], expected: list[dict]) -> None:
    """Equal records, probabilities and effects to 2e-6 (a batch of other names may round the 6th digit apart)."""
    assert [{**r, "top": [t["country"] for t in r["top"]], "explanation": None} for r in got] == \
           [{**r, "top": [t["country"] for t in r["top"]], "explanation": None} for r in expected]
    for g, e in zip(got, expected):
        assert [t["probability"] for t in g["top"]] == pytest.approx([t["probability"] for t in e["top"]], abs=2e-6)
        assert [x["letter"] for x in g.get("explanation", [])] == [x["letter"] for x in e.get("explanation", [])]
        assert [x["effect"] for x in g.get("explanation", [])] == \
               pytest.approx([x["effect"] for x in e.get("explanation", [])], abs=2e-6)


# --- the API ---

def test_answers_in_the_schema_of_predict_json_with_errors_in_band(hand_checkpoint):
    names = ["nakamura", "Ivanov", "", "42", "x" * 65, "Smith"]
    with served(hand_checkpoint) as (client, _):
        response = client.post("/v1/predict", json={"names": names, "topk": 2})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    results = response.json()["results"]
    assert [r["name"] for r in results] == names  # one result per name, in order
    assert results[2] == {"name": "", "error": "empty name ''"}
    assert results[3] == {"name": "42", "error": "name '42' has no letters"}
    assert results[4]["error"].endswith("has 65 characters; at most 64 are read")
    for r in (results[0], results[1], results[5]):
        assert set(r) == {"name", "normalised", "country", "abstained", "top", "seen_in_training"}
        assert r["country"] == last_letter_country(r["name"]) and r["abstained"] is False and len(r["top"]) == 2
        expected = last_letter_probabilities(r["name"])
        assert {t["country"]: t["probability"] for t in r["top"]} == pytest.approx(
            {c: expected[c] for c in (t["country"] for t in r["top"])}, abs=2e-6)
    assert results[1]["seen_in_training"] == []  # the hand-built checkpoint records no training names


def test_the_same_answers_as_predict_json_for_the_same_names_and_checkpoint(tiny_checkpoint, capsys):
    names = ["Nakamura", "Petrov", "Smith", "Müller", "O'Brien", "Kowalska", "Zzyzx"]
    cases = [({}, []),
             ({"topk": 3, "prior": "uniform", "explain": True}, ["--topk", "3", "--prior", "uniform", "--explain"]),
             ({"topk": 2, "prior": "data", "min_probability": 0.9}, ["--topk", "2", "--prior", "data",
                                                                      "--min-probability", "0.9"])]
    with served(tiny_checkpoint) as (client, _):
        for body, flags in cases:
            got = client.post("/v1/predict", json={"names": names, **body}).json()["results"]
            assert_same(got, predict_json(capsys, *names, *flags, "--checkpoint", str(tiny_checkpoint)))
        one = client.get("/v1/predict", params={"name": "Nakamura", "topk": 3, "explain": "true"})
        assert one.status_code == 200
        assert_same([one.json()], predict_json(capsys, "Nakamura", "--topk", "3", "--explain",
                                               "--checkpoint", str(tiny_checkpoint)))


def test_a_prior_reweights_by_bayes_rule_and_abstention_keeps_the_best_guess(hand_checkpoint):
    shares = {"Japanese": 0.98, "English": 0.01, "Russian": 0.01}
    with served(hand_checkpoint) as (client, _):
        result = client.post("/v1/predict", json={"names": ["Smith"], "topk": 3, "prior": shares}).json()["results"][0]
        # the hand-built model assumes the tiny data's equal mix, so the new mix multiplies its probabilities
        p = last_letter_probabilities("Smith")
        weighted = {c: p[c] * shares[c] for c in TINY_COUNTRIES}
        assert result["country"] == "Japanese"
        assert {t["country"]: t["probability"] for t in result["top"]} == pytest.approx(
            {c: w / sum(weighted.values()) for c, w in weighted.items()}, abs=2e-6)
        uniform = client.post("/v1/predict", json={"names": ["Smith"], "prior": "uniform"}).json()["results"][0]
        assert uniform["country"] == "English"  # the tiny data's mix is already equal: nothing moves

        for threshold, abstained in ((0.9, True), (0.5, False)):
            r = client.post("/v1/predict", json={"names": ["Smith"], "min_probability": threshold}).json()["results"][0]
            assert r["abstained"] is abstained and r["country"] == ("unknown" if abstained else "English")
            assert r["top"][0]["country"] == "English"  # the best guess is kept
        assert client.get("/v1/predict", params={"name": "Smith", "min_probability": 0.9}).json()["country"] == "unknown"


@pytest.mark.parametrize("body, where", [
    ({"names": "Smith"}, "names"),
    ({"names": []}, "names"),
    ({"names": [42]}, "names"),
    ({"names": ["Smith"], "topk": 0}, "topk"),
    ({"names": ["Smith"], "min_probability": 2}, "min_probability"),
    ({"names": ["Smith"], "prior": "everyone"}, "prior"),
    ({"names": ["Smith"], "explain": "maybe"}, "explain"),
    ({"names": ["Smith"], "checkpoint": "/etc/passwd"}, "checkpoint"),  # no path is chosen by a request
    ({}, "names"),
])
def test_a_request_of_the_wrong_shape_is_422_with_the_reason(hand_checkpoint, body, where):
    with served(hand_checkpoint) as (client, _):
        response = client.post("/v1/predict", json=body)
    assert response.status_code == 422
    reply = response.json()
    assert reply["error"].startswith("not a valid request") and any(where in map(str, d["loc"]) for d in reply["detail"])
    assert "Traceback" not in response.text and '"input"' not in response.text  # the input is not echoed


def test_a_prior_the_model_cannot_use_is_422(hand_checkpoint):
    with served(hand_checkpoint) as (client, _):
        for prior, message in (({"Atlantean": 1}, "prior: countries the model does not know: Atlantean"),
                               ({"English": -1}, "prior: the share of English must be a finite number >= 0"),
                               ({"English": 0}, "prior: the shares add up to 0")):
            response = client.post("/v1/predict", json={"names": ["Smith"], "prior": prior})
            assert (response.status_code, response.json()) == (422, {"error": message})
        assert client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"}
                           ).status_code == 422


def test_limits_on_names_and_body_size_are_413(hand_checkpoint):
    with served(hand_checkpoint, max_names=5, max_body_bytes=300) as (client, _):
        response = client.post("/v1/predict", json={"names": ["Smith"] * 6})
        assert (response.status_code, response.json()) == (413, {"error": "6 names; at most 5 per request"})
        assert client.post("/v1/predict", json={"names": ["Smith"] * 5}).status_code == 200
        big = json.dumps({"names": ["x" * 400]}).encode()
        response = client.post("/v1/predict", content=big, headers={"content-type": "application/json"})
        assert (response.status_code, response.json()) == (413, {"error": "request body over 300 bytes"})

        def chunks():  # no content-length: the limit is counted as the body arrives
            yield big[:200]
            yield big[200:]
        response = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        small = json.dumps({"names": ["Smith"]}).encode()
        response = client.post("/v1/predict", content=iter([small[:5], small[5:]]),
                               headers={"content-type": "application/json"})
        assert response.status_code == 200 and response.json()["results"][0]["country"] == "English"
        # a GET name is bounded by the query's own limit
        assert client.get("/v1/predict", params={"name": "x" * 300}).status_code == 422
        assert client.get("/v1/predict", params={"name": "42"}).json() == {"error": "name '42' has no letters"}


def test_a_full_queue_is_503_with_retry_after_and_the_server_recovers(hand_checkpoint):
    with served(hand_checkpoint, max_queue=2, max_batch=1, max_wait_ms=0) as (client, service):
        gate, started, run_batch = threading.Event(), threading.Event(), service.batcher.run_batch

        def held(jobs):  # the model call waits for the gate, so the queue fills behind it
            started.set()
            gate.wait(10)
            return run_batch(jobs)

        service.batcher.run_batch = held
        replies = {}

        def ask(key, names):
            replies[key] = client.post("/v1/predict", json={"names": names})

        first = threading.Thread(target=ask, args=("first", ["Smith"]))
        first.start()
        assert started.wait(10)
        queued = threading.Thread(target=ask, args=("queued", ["Ivanov", "Jones"]))
        queued.start()
        wait_until(lambda: service.batcher.queued == 2, "two names to wait")
        refused = client.post("/v1/predict", json={"names": ["Nakamura"]})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"].startswith("overloaded")
        assert client.get("/readyz").status_code == 503 and client.get("/healthz").status_code == 200
        gate.set()
        first.join(10)
        queued.join(10)
        assert replies["first"].status_code == replies["queued"].status_code == 200
        assert [r["country"] for r in replies["queued"].json()["results"]] == ["Russian", "English"]
        assert client.post("/v1/predict", json={"names": ["Nakamura"]}).status_code == 200  # recovered
        assert client.get("/readyz").json() == {"ready": True, "queued_names": 0}
        assert service.batcher.stats.rejected == 1


def test_a_failure_inside_is_500_without_its_details(hand_checkpoint):
    with served(hand_checkpoint) as (client, service):
        def broken(jobs):
            raise RuntimeError("secret detail at /some/path")
        service.batcher.run_batch = broken
        response = client.post("/v1/predict", json={"names": ["Smith"]})
        assert (response.status_code, response.json()) == (500, {"error": "internal error"})
        service.batcher.run_batch = service.run_batch
        assert client.post("/v1/predict", json={"names": ["Smith"]}).status_code == 200  # the batcher goes on


def test_concurrent_requests_share_one_model_call(hand_checkpoint):
    names = ["nakamura", "Ivanov", "Smith", "Abe", "Petrov", "Jones", "Sato", "Popov"]
    # a batch closes when it holds 8 names, long before its 2 s wait
    with served(hand_checkpoint, max_batch=len(names), max_wait_ms=2000) as (client, service):
        replies = [None] * len(names)

        def ask(i):
            replies[i] = client.get("/v1/predict", params={"name": names[i]})

        started = time.perf_counter()
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(names))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert time.perf_counter() - started < 1.9  # closed by size, not by the wait
        assert [r.json()["country"] for r in replies] == [last_letter_country(n) for n in names]
        assert service.model_calls == 1 and service.batcher.stats.batches == 1 and service.batcher.stats.jobs == 8
        stats = client.get("/v1/stats").json()
        assert stats["requests_by_status"] == {"200": 8} and stats["units"] == 8

    with served(hand_checkpoint, max_batch=1, max_wait_ms=0) as (client, service):  # batching off
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert service.model_calls == 4


def test_requests_with_different_priors_in_one_batch_each_get_their_own(hand_checkpoint):
    service = serve.Service(serve.Settings(checkpoints=[str(hand_checkpoint)]))
    shares = {"Japanese": 0.98, "English": 0.01, "Russian": 0.01}
    jobs = [serve.Job(["Smith"], 1, *service.prior(prior), 0.0, False) for prior in ("model", shares, "model")]
    first, second, third = service.run_batch(jobs)
    assert first[0]["country"] == third[0]["country"] == "English" and second[0]["country"] == "Japanese"
    assert service.model_calls == 2  # one per class mix


def test_the_model_card_health_docs_and_page(hand_checkpoint):
    with served(hand_checkpoint) as (client, _):
        card = client.get("/v1/model").json()
        assert card["countries"] == TINY_COUNTRIES and card["families"] == ["rnn"]
        assert card["models"][0]["file"] == hand_checkpoint.name and "/" not in card["models"][0]["file"]
        assert card["models"][0]["data"]["file"] == "tiny.tsv" and card["limits"]["max_name_length"] == 64
        assert card["note"].startswith("A surname is not a nationality")
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"ready": True, "queued_names": 0}
        assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
        assert client.get("/docs").status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and "<textarea" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert "http" not in page.text.replace("http-equiv", "")  # nothing from another site
        assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
        assert client.get("/nowhere").json() == {"error": "Not Found"}
        assert "access-control-allow-origin" not in client.get(
            "/v1/model", headers={"origin": "https://elsewhere.example"}).headers  # no CORS unless asked
    with served(hand_checkpoint, cors_origins=["https://example.org"]) as (client, _):
        response = client.get("/v1/model", headers={"origin": "https://example.org"})
        assert response.headers["access-control-allow-origin"] == "https://example.org"


def test_command_line_defaults_are_safe_and_bad_flags_are_refused(capsys):
    args, settings = serve.parse_args([])
    assert args.host == "127.0.0.1" and args.workers == 1 and settings.threads == 1 and settings.cors_origins == []
    assert settings.max_batch > 1 and settings.max_wait_ms > 0
    for bad in (["--max-batch", "0"], ["--max-wait-ms", "-1"], ["--port", "70000"], ["--workers", "0"]):
        with pytest.raises(SystemExit):
            serve.parse_args(bad)
    assert "must be" in capsys.readouterr().err


def wait_until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# --- a real browser, against a real server ---

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_and_driver() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("no Chromium and chromedriver here (Debian: apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.mark.slow
def test_the_page_in_a_real_browser_then_sigterm(hand_checkpoint, tmp_path):
    browser, driver_path = chromium_and_driver()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), "--checkpoint", str(hand_checkpoint),
                               "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        wait_until(lambda: server.poll() is not None or port_open(port), "the server to listen", timeout=60)
        assert server.poll() is None, server.stdout.read()
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,1000"):
            options.add_argument(flag)
        chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
        try:
            chrome.get(f"http://127.0.0.1:{port}/")
            box = chrome.switch_to.active_element
            box.send_keys(Keys.TAB)  # the keyboard reaches the box first
            box = chrome.find_element(By.ID, "names")
            assert chrome.switch_to.active_element == box
            box.send_keys("Nakamura")
            box.send_keys(Keys.CONTROL + Keys.ENTER)
            result = WebDriverWait(chrome, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".result"))[0]
            assert result.find_element(By.CSS_SELECTOR, ".answer").text.startswith("Japanese")
            fill = result.find_element(By.CSS_SELECTOR, ".bars li:first-child .fill")
            assert fill.size["width"] > 0.5 * result.find_element(By.CSS_SELECTOR, ".track").size["width"]
            assert len(result.find_elements(By.CSS_SELECTOR, ".strip span")) == len("Nakamura")
            WebDriverWait(chrome, 20).until(lambda d: "not a nationality" in d.find_element(By.ID, "card").text
                                            and "Countries" in d.find_element(By.ID, "card").text)
            chrome.save_screenshot(str(tmp_path / "page.png"))
            chrome.set_window_size(390, 1000)  # a phone's width: nothing wider than the screen
            assert chrome.execute_script("return document.documentElement.scrollWidth") <= 390
            chrome.save_screenshot(str(tmp_path / "page_phone.png"))
        finally:
            chrome.quit()
        assert (tmp_path / "page.png").read_bytes()[:4] == b"\x89PNG"
        server.send_signal(signal.SIGTERM)  # finishes what is in flight, then exits
        output, _ = server.communicate(timeout=30)
        # uvicorn exits by the signal it was sent, once the shutdown is done
        assert server.returncode in (0, -signal.SIGTERM) and "Finished server process" in output
        # the page, its style and script, the model card and Nakamura with its 8 letters hidden in turn
        assert re.search(r"served: requests \d+ \(200: 5\b.*; model rows 9 in 1 calls", output), output
        assert "Nakamura" not in output  # nothing a client sent is logged
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_the_load_bench_runs_end_to_end(hand_checkpoint, tmp_path):
    """bench/bench_serve.py on a few requests (correctness only: no timing is asserted)."""
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench.bench_serve", "--checkpoint", str(hand_checkpoint),
                             "--sizes", "2", "--requests", "40", "--concurrency", "4", "--seconds", "10",
                             "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| 2 | on | 4 | 200 |" in result.stdout and "| 2 | off | 4 | 200 |" in result.stdout
    assert "2 names/request: micro-batching on/off = " in result.stdout
    rows = json.loads(out.read_text())
    assert [(r["batching"], r["errors"], r["answered_after"]) for r in rows] == [(True, 0, True), (False, 0, True)]


def test_serve_imports_no_other_script():
    from tests.test_layout import SCRIPTS, project_imports

    assert not project_imports(ROOT / "serve.py") & SCRIPTS
    assert not project_imports(ROOT / "bench" / "bench_serve.py")  # it starts serve.py; it imports nothing of ours
