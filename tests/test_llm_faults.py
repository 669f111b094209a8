"""The llm backend when things go wrong: Ctrl-C, hung servers, bad answers, secrets in the URL, shared caches.
The ones that need processes of their own or wait on real timeouts are in the slow tier."""
import argparse
import signal
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_llm import KNOWN, checkpoint, classifier, cli_env, server  # noqa: F401 (fixtures)

SURNAMES = ["".join(letters).capitalize() for letters in product("bdkmt", "aeiou", "lnrs", "aeo")][:200]


def predict_llm(checkpoint_path: Path, cache: Path, *args: str) -> list[str]:
    """The predict.py command line of the llm backend, the answers cached in `cache`."""
    return [sys.executable, str(ROOT / "predict.py"), *args, "--backend", "llm", "--checkpoint", str(checkpoint_path),
            "--llm-model", "test-model", "--llm-cache", str(cache)]


def wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds  # generous: the script imports torch first, on a shared machine
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def asked(request: dict) -> list[str]:
    return request["body"]["response_format"]["json_schema"]["schema"]["required"]


def foreground() -> None:
    """In the child, Ctrl-C as a terminal's foreground command gets it: a parent that ignores SIGINT (some earlier
    code in a long test session does) would otherwise pass the ignoring on, and predict.py would never see it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_stops_at_once_and_keeps_the_answers_received(server, checkpoint, tiny_checkpoint, tmp_path):
    server.script = [None] * 4 + [("hang",)] * 50  # four requests answered, then a server that never answers
    command = predict_llm(tiny_checkpoint, tmp_path / "cache", *SURNAMES)  # 20 requests of 10 names, 4 at a time
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT.parent,
                               env=cli_env(OPENAI_API_KEY="local", OPENAI_BASE_URL=server.url),
                               preexec_fn=foreground)
    try:
        # 8 requests: each of the 4 workers got its answer and now hangs on its next request
        wait_for(lambda: len(server.requests) == 8 or process.poll() is not None)
        assert process.poll() is None, process.communicate()[1]
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, stderr = process.communicate(timeout=10)
        seconds = time.monotonic() - interrupted
    finally:
        process.kill()
    assert process.returncode == 130 and seconds < 3, (process.returncode, seconds, stderr)
    assert stderr.splitlines() == [f"interrupted: kept the 40 new answers in {tmp_path / 'cache' / 'answers.sqlite'}; "
                                   "the other 160 names are asked next time"]
    assert len(server.requests) == 8  # the 12 requests still queued were never sent
    answered = {name for request in server.requests[:4] for name in asked(request)}
    assert set(classifier(server, checkpoint, tmp_path).cache.answers) == answered and len(answered) == 40


WRITER = """
import sys, time
from llm.cache import AnswerCache
directory, who, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
cache = AnswerCache(directory, "http://server/v1", "model", "prompt")
time.sleep(max(0.0, start - time.time()))  # both writers begin at the same moment
for i in range(150):
    cache.update({f"{who}{i}": {"answer": "English", "tokens": 1.0, "seconds": 0.1}})
"""


@pytest.mark.slow
def test_concurrent_processes_writing_one_cache_lose_no_answer(tmp_path):
    from llm.cache import AnswerCache

    start = time.time() + 2.0
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), who, str(start)], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for who in ("a", "b")]
    for writer in writers:
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
    answers = AnswerCache(tmp_path, "http://server/v1", "model", "prompt").answers
    assert set(answers) == {f"{who}{i}" for who in "ab" for i in range(150)}


def test_an_answer_outside_the_list_is_not_cached(server, checkpoint, tmp_path):
    server.answer = lambda name: "Klingon" if name == "Smith" else KNOWN[name]
    first = classifier(server, checkpoint, tmp_path).classify(["Smith", "Sato"])
    assert [(a.country, a.raw) for a in first] == [(None, "Klingon"), ("Japanese", "Japanese")]
    server.answer = KNOWN.get
    again = classifier(server, checkpoint, tmp_path).classify(["Smith", "Sato"])
    assert [(a.country, a.cached) for a in again] == [("English", False), ("Japanese", True)]
    assert [asked(r) for r in server.requests] == [["Smith", "Sato"], ["Smith"]]  # asked again, alone


def test_public_url_masks_passwords_and_keys():
    from llm.client import hide_secrets, public_url

    assert public_url("http://user:s3cret@host:8000/v1") == "http://***@host:8000/v1"
    assert public_url("https://host/v1?api-version=2&api_key=s3cret&key=k3y") == \
        "https://host/v1?api-version=2&api_key=***&key=***"
    assert public_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1/"
    assert public_url("http://user:p@ss:w0rd@[::1/v1") == "http://***@[::1/v1"  # malformed: masked all the same
    url = "https://u:s3cret@host/v1?key=k3y"
    assert hide_secrets(f"bad s3cret and k3y at {url} for u", url) == "bad *** and *** at https://***@host/v1?key=*** for u"


def test_a_password_in_the_url_is_never_shown_nor_stored(server, checkpoint, tiny_checkpoint, tmp_path, monkeypatch,
                                                        capsys):
    import predict
    from tests.test_cli import run_main
    from tests.test_llm import set_env

    url = server.url.replace("http://", "http://user:s3cret@")
    server.script = [None, (500, {"error": {"message": f"no model at {url}"}}, {})]  # a server that quotes the URL
    set_env(monkeypatch, OPENAI_API_KEY="local")
    code = run_main(predict.main, predict_llm(tiny_checkpoint, tmp_path / "cache", *SURNAMES[:11], "--base-url", url,
                                              "--llm-retries", "0")[2:])
    said = capsys.readouterr().err + (code if isinstance(code, str) else "")
    assert code != 0 and len(said.splitlines()) == 1, said
    assert "HTTP 500" in said and "http://***@127.0.0.1" in said and "s3cret" not in said
    assert len(server.requests) == 2  # two batches, sent side by side: the first to arrive is answered
    assert set(classifier(server, checkpoint, tmp_path, base_url=url).cache.answers) == set(asked(server.requests[0]))
    files = list((tmp_path / "cache").iterdir())
    assert files and not any(b"s3cret" in path.read_bytes() for path in files)


@pytest.mark.slow
def test_llm_timeout_against_a_hung_server_is_one_line(server, tiny_checkpoint, tmp_path):
    server.script = [("hang",)] * 3
    command = predict_llm(tiny_checkpoint, tmp_path / "cache", "Sato", "--llm-timeout", "0.5", "--llm-retries", "1")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT.parent,
                               env=cli_env(OPENAI_API_KEY="local", OPENAI_BASE_URL=server.url))
    try:
        line = process.stderr.readline()
        said = time.monotonic()
        rest = process.communicate(timeout=60)[1]
    finally:
        process.kill()
    assert process.returncode == 1 and [line, rest] == [
        f"error: {server.url}: no answer within 0.5 s (tried 2 times); the server is slow or overloaded "
        "(see --llm-timeout and --llm-retries)\n", ""]
    assert len(server.requests) == 2
    assert said - server.requests[0]["time"] < 0.5 * 2 + 1.0  # two tries and the client's backoff (< 0.5 s)


@pytest.mark.parametrize("flag", ["--llm-timeout=0", "--llm-timeout=nan", "--llm-retries=-1"])
def test_bad_timeout_and_retries_are_refused(flag):
    from llm.cli import add_llm_arguments

    parser = argparse.ArgumentParser()
    add_llm_arguments(parser, "backend")
    with pytest.raises(SystemExit) as e:
        parser.parse_args([flag])
    assert e.value.code == 2
    assert parser.parse_args(["--llm-timeout", "2.5", "--llm-retries", "0"]).llm_timeout == 2.5
