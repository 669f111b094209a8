"""Serve a trained model over HTTP: a JSON API with micro-batching, and a web page to try names in.

    pip install -r requirements-serve.txt
    python serve.py                                  # http://127.0.0.1:8000/ the page, /docs the API
    python serve.py --checkpoint a.bin b.bin --port 8080 --threads 2
    curl -s 127.0.0.1:8000/v1/predict -H 'content-type: application/json' -d '{"names": ["Nakamura"], "topk": 3}'
    curl -s '127.0.0.1:8000/v1/predict?name=Nakamura'

The model is the newest finished run's best checkpoint in save_model/ unless --checkpoint says, as for
predict.py, and every answer has the schema of `predict.py --json`. Requests that arrive together are
answered by one model call (up to --max-batch names, waiting at most --max-wait-ms for more), on one
worker thread off the event loop. Past the limits (--max-names per request, --max-body-bytes,
--max-queue names waiting) the answer is 413, 422 or 503 with Retry-After, never a stack trace; a
name that cannot be classified (empty, no letters, over 64 characters) is an error for that name
alone. It binds 127.0.0.1 unless --host says, allows no cross-origin calls unless --cors-origin
says, and logs counts and timings, never what a client sent. SIGTERM or Ctrl-C finishes the
requests in flight, then exits. The API, the limits and running behind a proxy: docs/serve.md.
"""
import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from config.config import MAX_NAME_LENGTH, ROOT
from utils.cli import add_model_arguments
from utils.errors import UserError, run_script

WEB = ROOT / "web"  # the page: plain HTML, CSS and JavaScript, no build step
NOT_A_NATIONALITY = ("A surname is not a nationality: the answer is the language tradition a spelling most resembles "
                     "in the training data, nothing more. Do not use it to make decisions about individuals.")
SETTINGS_ENV = "SURNAME_SERVE_SETTINGS"  # how --workers N hands the settings to each worker process
log = logging.getLogger("serve")


@dataclass
class Settings:
    checkpoints: list[str] = field(default_factory=list)  # empty: the newest finished run in save_model/
    device: str = "cpu"
    threads: int = 1  # torch CPU threads
    max_batch: int = 1024  # names per model call (1: no micro-batching)
    max_wait_ms: float = 2.0  # how long the first request of a batch may wait for others
    max_queue: int = 4096  # names waiting for the model; past it, 503
    max_names: int = 1000  # names per request; past it, 413
    max_body_bytes: int = 1 << 20  # request body; past it, 413
    retry_after_s: int = 1  # what a 503 tells the client to wait
    cors_origins: list[str] = field(default_factory=list)
    stats_every_s: float = 60.0  # how often the counts are logged (0: only at exit)


def parse_args(argv=None) -> tuple[argparse.Namespace, Settings]:
    d = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, prior=False)  # --checkpoint, --device, --threads; each request may give its prior
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes sharing the port, each with its own copy of the model (default: 1)")
    parser.add_argument("--max-batch", type=int, default=d.max_batch,
                        help=f"most names in one model call; 1 turns micro-batching off (default: {d.max_batch})")
    parser.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                        help=f"how long a request may wait for others to share its model call (default: {d.max_wait_ms})")
    parser.add_argument("--max-queue", type=int, default=d.max_queue,
                        help=f"most names waiting for the model; past it requests get 503 (default: {d.max_queue})")
    parser.add_argument("--max-names", type=int, default=d.max_names,
                        help=f"most names in one request; past it 413 (default: {d.max_names})")
    parser.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                        help=f"largest request body; past it 413 (default: {d.max_body_bytes})")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow browser pages from ORIGIN (e.g. https://example.org) to call the API; repeatable "
                             "(default: none)")
    parser.add_argument("--stats-every", type=float, default=d.stats_every_s, metavar="SECONDS",
                        help=f"log the request counts and timings this often (default: {d.stats_every_s:g}; 0: at exit)")
    args = parser.parse_args(argv)
    if min(args.max_batch, args.max_queue, args.max_names, args.max_body_bytes, args.workers) < 1:
        parser.error("--max-batch, --max-queue, --max-names, --max-body-bytes and --workers must be at least 1")
    if args.max_wait_ms < 0 or args.stats_every < 0:
        parser.error("--max-wait-ms and --stats-every must be at least 0")
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    settings = Settings(checkpoints=[str(p) for p in args.checkpoint or []], device=args.device, threads=args.threads,
                        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                        max_names=args.max_names, max_body_bytes=args.max_body_bytes, cors_origins=args.cors_origin,
                        stats_every_s=args.stats_every)
    return args, settings


# --- the model behind the API: loaded once, run only on the batcher's worker thread ---

@dataclass
class Job:
    """The classifiable names of one request and how to answer them."""
    names: list[str]
    topk: int
    prior_key: object  # requests with equal keys share a model call
    prior: object  # [n_countries] tensor, or None for the mix the model assumes
    min_probability: float
    explain: bool


class Service:
    def __init__(self, settings: Settings):
        from models.inference import load_model
        from utils.batching import MicroBatcher
        from utils.class_mix import PRIORS, read_prior

        self.settings = settings
        model = load_model(settings.checkpoints, settings.device, prior=None)
        self.paths, self.payloads, self.predictor = model.paths, model.payloads, model.predictor  # payloads: the card's
        self.countries = self.predictor.countries
        data_prior = self.predictor.members[0].train_prior
        self.priors = {name: read_prior(name, self.countries, data_prior) for name in PRIORS}
        self.batcher = MicroBatcher(self.run_batch, max_batch=settings.max_batch,
                                    max_wait=settings.max_wait_ms / 1000, max_queue=settings.max_queue)
        self.model_calls = 0  # Predictor.predict calls, the explanations' not counted

    def run_batch(self, jobs: list[Job]) -> list[list[dict]]:
        """Each job's records; one predict call per class mix among the jobs (usually one)."""
        from models.predictor import Prediction

        results: list[list[dict]] = [[] for _ in jobs]
        groups: dict[object, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.prior_key, []).append(i)
        for indices in groups.values():
            self.predictor.set_prior(jobs[indices[0]].prior)
            predictions = iter(self.predictor.predict([n for i in indices for n in jobs[i].names],
                                                      topk=max(jobs[i].topk for i in indices)))
            self.model_calls += 1
            for i in indices:
                job = jobs[i]
                for _ in job.names:
                    p = next(predictions)
                    p = Prediction(p.name, p.normalised, p.top[:job.topk], p.unknown_chars)
                    explanation = self.predictor.explain(p.normalised, p.country) if job.explain else None
                    results[i].append(self.predictor.record(p, job.min_probability, explanation))
        return results

    def prior(self, spec) -> tuple[object, object]:
        """(grouping key, tensor) of a request's prior: a name, or {country: share} as a prior file holds it
        (countries left out get 0; shares are normalised); UserError if it is bad."""
        import math

        import torch

        if isinstance(spec, str):
            if spec not in self.priors:
                raise UserError(f"prior {spec!r}: not one of {', '.join(self.priors)} nor an object of country shares")
            return spec, self.priors[spec]
        unknown = sorted(set(spec) - set(self.countries))
        if unknown:
            raise UserError(f"prior: countries the model does not know: {', '.join(unknown[:10])[:500]}")
        values = [spec.get(country, 0.0) for country in self.countries]
        for country, share in zip(self.countries, values):
            if not math.isfinite(share) or share < 0:
                raise UserError(f"prior: the share of {country} must be a finite number >= 0")
        if max(values) <= 0:
            raise UserError("prior: the shares add up to 0")
        tensor = torch.tensor(values, dtype=torch.float64) / max(values)  # by the largest first: no sum overflows
        tensor = tensor / tensor.sum()
        return tuple(tensor.tolist()), tensor

    def card(self) -> dict:
        """What GET /v1/model says: the families, countries, training data and scores, from the checkpoints."""
        models = []
        for path, payload in zip(self.paths, self.payloads):
            args, metrics = payload["model_args"], payload.get("metrics", {})
            families = [m["family"] for m in args["members"]] if payload["family"] == "mix" else [payload["family"]]
            models.append({
                "file": path.name, "family": payload["family"], "families": families, "epoch": payload.get("epoch"),
                "finished": bool(payload.get("finished")), "temperature": payload["temperature"],
                "data": payload["data"], "names_in_training": len(payload.get("seen", {})),
                "test": {k[len("test_"):]: v for k, v in metrics.items() if k.startswith("test_")},
                "evaluations": evaluations(path)})
        return {"countries": self.countries, "families": sorted({f for m in models for f in m["families"]}),
                "models": models, "priors": list(self.priors) + ["{country: share, ...}"],
                "data_prior": dict(zip(self.countries, [round(float(s), 6) for s in self.priors["data"]])),
                "limits": {"max_names": self.settings.max_names, "max_name_length": MAX_NAME_LENGTH,
                           "max_body_bytes": self.settings.max_body_bytes, "max_queue": self.settings.max_queue,
                           "max_batch": self.settings.max_batch, "max_wait_ms": self.settings.max_wait_ms},
                "note": NOT_A_NATIONALITY}


def evaluations(checkpoint: Path) -> list[dict]:
    """The headline scores of evaluate.py's reports beside a checkpoint (<stem>_eval_<set>.json), if any."""
    found = []
    for report in sorted(checkpoint.parent.glob(f"{checkpoint.stem}_eval_*.json")):
        try:
            r = json.loads(report.read_text(encoding="utf-8"))
            found.append({"set": str(r["set"]), "rows": int(r["rows"]), "accuracy": float(r["accuracy"]),
                          "balanced_accuracy": float(r["balanced_accuracy"]), "macro_f1": float(r["macro_f1"])})
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a report being written, or of another format: the card goes without it
    return found


# --- the HTTP layer ---

class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`, whether it says its length or is chunked."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                return await too_large(send, self.max_bytes)
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True  # chunked: read it all here, within the limit, then replay it
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await too_large(send, self.max_bytes)
        body = b"".join(chunks)

        async def replay():
            nonlocal body
            message, body = {"type": "http.request", "body": body, "more_body": False}, b""
            return message

        return await self.app(scope, replay, send)


async def too_large(send, max_bytes: int) -> None:
    body = json.dumps({"error": f"request body over {max_bytes} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class RequestCounts:
    """Requests by status and their total time: the only thing logged about requests."""

    def __init__(self):
        self.by_status: dict[int, int] = {}
        self.seconds = 0.0

    def summary(self, batcher) -> str:
        n, s = sum(self.by_status.values()), batcher.stats
        statuses = ", ".join(f"{code}: {count}" for code, count in sorted(self.by_status.items()))
        return (f"requests {n} ({statuses or 'none'}), mean {1000 * self.seconds / max(n, 1):.1f} ms; "
                f"model rows {s.units} in {s.batches} calls (mean {s.units / max(s.batches, 1):.1f}), "
                f"model busy {s.busy_seconds:.1f} s; refused as overloaded {s.rejected}")


class Counting:
    """ASGI middleware: adds each request's status and time to a RequestCounts."""

    def __init__(self, app, counts: RequestCounts):
        self.app, self.counts = app, counts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            by_status = self.counts.by_status
            by_status[status[0]] = by_status.get(status[0], 0) + 1
            self.counts.seconds += time.perf_counter() - started


def create_app(settings: Settings):
    """The FastAPI app: loads the model now (UserError if it cannot), starts the batcher with the app."""
    from contextlib import asynccontextmanager
    from typing import Annotated, Literal

    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException

    from utils.batching import Overloaded
    from utils.data import check_name
    from utils.errors import InvalidNameError

    service = Service(settings)
    counts = RequestCounts()

    @asynccontextmanager
    async def lifespan(app):
        await service.batcher.start()
        reporter = asyncio.create_task(report(counts, service, settings.stats_every_s))
        log.info("model: %s; %d countries; micro-batching up to %d names, %g ms", " + ".join(map(str, service.paths)),
                 len(service.countries), settings.max_batch, settings.max_wait_ms)
        try:
            yield
        finally:
            reporter.cancel()
            await service.batcher.stop()
            log.info("served: %s", counts.summary(service.batcher))

    app = FastAPI(title="Surname → country of origin", version="1", lifespan=lifespan, redoc_url=None,
                  description="Which of the model's countries a surname most likely comes from, with probabilities. "
                              + NOT_A_NATIONALITY)
    app.state.service = service

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        names: list[str] = Field(min_length=1, description=f"surnames; at most {settings.max_names}")
        topk: int = Field(1, ge=1, le=1000, description="how many of the likeliest countries to give")
        prior: Literal["model", "data", "uniform"] | dict[str, Annotated[float, Field(strict=True)]] = Field(
            "model", description="the class mix of your names: model (as trained), data (the training data's), "
                                 "uniform, or {country: share}")
        min_probability: float = Field(0.0, ge=0, le=1, description="answer 'unknown' below this probability")
        explain: bool = Field(False, description="each letter's effect on the answer's probability")

    async def answer(names: list[str], topk: int, prior, min_probability: float, explain: bool) -> list[dict]:
        """One record per name, in order: the model's answer, or {"name", "error"} for a name it cannot read."""
        try:
            prior_key, prior_tensor = service.prior(prior)
        except UserError as e:
            raise ValidationProblem(str(e)) from None
        records: list[dict | None] = [None] * len(names)
        valid, rows = [], 0
        for i, name in enumerate(names):
            try:
                normalised = check_name(name)
                rows += 1 + len(normalised) if explain else 1  # an explanation runs one row per letter
                valid.append(i)
            except InvalidNameError as e:
                records[i] = {"name": name, "error": str(e)}
        if valid:
            job = Job([names[i] for i in valid], min(topk, len(service.countries)), prior_key, prior_tensor,
                      min_probability, explain)
            for i, record in zip(valid, await service.batcher.submit(job, size=rows)):
                records[i] = record
        return records

    @app.post("/v1/predict", summary="Classify names",
              responses={413: {"description": "too many names or too large a body"},
                         422: {"description": "not a valid request"},
                         503: {"description": "overloaded: retry after the Retry-After seconds"}})
    async def predict(request: PredictRequest):
        """One result per name, in the order given, each as `predict.py --json` prints it: `country` (or
        `unknown` with `abstained` true), `top` [{country, probability}], `normalised`, `seen_in_training`,
        and `explanation` when asked. A name that cannot be classified gets `{"name", "error"}` instead."""
        if len(request.names) > settings.max_names:
            return error(413, f"{len(request.names)} names; at most {settings.max_names} per request")
        return JSONResponse({"results": await answer(request.names, request.topk, request.prior,
                                                     request.min_probability, request.explain)})

    @app.get("/v1/predict", summary="Classify one name")
    async def predict_one(name: str = Query(max_length=4 * MAX_NAME_LENGTH), topk: int = Query(1, ge=1, le=1000),
                          prior: Literal["model", "data", "uniform"] = "model",
                          min_probability: float = Query(0.0, ge=0, le=1), explain: bool = False):
        """The one name's result, as in POST /v1/predict; 422 with the reason if it cannot be classified."""
        record = (await answer([name], topk, prior, min_probability, explain))[0]
        return error(422, record["error"]) if "error" in record else JSONResponse(record)

    @app.get("/v1/model", summary="The model card")
    async def model_card():
        """The model's families, countries, training data, test-split scores and any evaluation reports."""
        return JSONResponse(service.card())

    @app.get("/healthz", summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the model runs and its queue has room")
    async def readyz():
        ready = service.batcher.running and service.batcher.queued < settings.max_queue
        body = {"ready": ready, "queued_names": service.batcher.queued}
        return JSONResponse(body, 200) if ready else error(503, "not ready", extra=body)

    @app.get("/v1/stats", summary="Counts and timings since start")
    async def stats():
        return {"requests_by_status": {str(k): v for k, v in sorted(counts.by_status.items())},
                **asdict(service.batcher.stats), "predict_calls": service.model_calls}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page():
        return FileResponse(WEB / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    def error(status: int, message: str, extra: dict | None = None) -> JSONResponse:
        headers = {"Retry-After": str(settings.retry_after_s)} if status == 503 else None
        return JSONResponse({"error": message, **(extra or {})}, status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        # the reasons, without the input echoed back (it can be large) or links
        detail = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", "")} for err in e.errors()[:20]]
        return JSONResponse({"error": "not a valid request; see detail", "detail": detail}, 422)

    @app.exception_handler(ValidationProblem)
    async def invalid_value(request: Request, e: ValidationProblem):
        return error(422, str(e))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, e: Overloaded):
        return error(503, f"overloaded ({e}); retry after {settings.retry_after_s} s")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        return JSONResponse({"error": str(e.detail)}, e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def crashed(request: Request, e: Exception):
        log.error("internal error: %s", type(e).__name__)  # the type only: a message may quote a request
        return error(500, "internal error")

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["content-type"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Counting, counts=counts)
    return app


class ValidationProblem(Exception):
    """A request that parses but asks for something impossible (an unknown country in its prior): 422."""


PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


async def report(counts, service: Service, every: float) -> None:
    """Log the counts every `every` seconds while anything happened."""
    if not every:
        return
    last = None
    while True:
        await asyncio.sleep(every)
        summary = counts.summary(service.batcher)
        if summary != last:
            log.info("served: %s", summary)
            last = summary


def app_from_environment():
    """The app of one --workers process: the settings come through the environment."""
    from models.inference import set_threads

    settings = Settings(**json.loads(os.environ[SETTINGS_ENV]))
    set_logging()
    set_threads(settings.threads)
    return freeze(create_app(settings))


def freeze(app):
    """Put everything alive now (the model, its training names, the libraries) out of the garbage collector's sight:
    they live as long as the process, and its full passes over them stalled batches by 100-400 ms under load."""
    gc.collect()
    gc.freeze()
    return app


def set_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv=None) -> int:
    args, settings = parse_args(argv)
    try:
        import uvicorn
        import fastapi  # noqa: F401
    except ImportError:
        raise UserError("serving needs FastAPI and uvicorn: pip install -r requirements-serve.txt") from None
    set_logging()
    common = dict(host=args.host, port=args.port, access_log=False, server_header=False, log_level="info")
    from models.inference import read_checkpoints, set_threads

    if args.workers > 1:  # each process loads the model itself; the port is shared
        # one pick for every worker; a missing or damaged file is one line here, not a traceback per worker
        settings.checkpoints = [str(path) for path, _ in read_checkpoints(settings.checkpoints)]
        os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
        uvicorn.run("serve:app_from_environment", factory=True, workers=args.workers, **common)
        return 0
    set_threads(settings.threads)
    app = freeze(create_app(settings))
    uvicorn.run(app, **common)
    return 0


if __name__ == "__main__":
    run_script(main)
