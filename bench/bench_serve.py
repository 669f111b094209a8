"""serve.py under load on loopback: requests/s, names/s, latency and memory, with micro-batching and without.

    python -m bench.bench_serve --checkpoint save_model/ngram+gru_classification_best.bin
    python -m bench.bench_serve --checkpoint CK --requests 2000 --concurrency 32 --sizes 1 100 --overload

For each request size (names per request) it starts `serve.py` twice on a free 127.0.0.1 port, once as
configured (micro-batching on) and once with --max-batch 1 (off), and sends --requests POST /v1/predict
requests from --concurrency keep-alive connections (a small asyncio HTTP/1.1 client here, lighter than any
client library, so the client takes less of the machine from the server). Each phase stops after its requests
or --seconds, whichever comes first. It prints a Markdown table: requests/s, names/s, p50/p95/p99 latency,
errors (anything but 200), the server's RSS once the model is loaded, after a warm-up round and at the end;
then the ratios on/off. --overload adds a phase with twice --concurrency clients against a server with a short
queue (--overload-queue names): how many get a fast 503, how fast, and whether a request right after the load
is answered. Names are drawn, seeded, from the data set. Phases run one after another, never two at once
(2-core machine).
"""
import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint serve.py loads")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "names.tsv", help="names are drawn from its rows")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100], help="names per request, one phase each")
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests per phase of 1-name requests; of N-name requests, this / N but at least 200")
    parser.add_argument("--concurrency", type=int, default=32, help="connections sending at once")
    parser.add_argument("--seconds", type=float, default=15.0, help="a phase stops after this long at most")
    parser.add_argument("--threads", type=int, default=1, help="serve.py --threads")
    parser.add_argument("--max-batch", type=int, default=1024, help="serve.py --max-batch with batching on")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="serve.py --max-wait-ms with batching on")
    parser.add_argument("--overload", action="store_true", help="also the overload phase")
    parser.add_argument("--overload-queue", type=int, default=256, help="serve.py --max-queue in the overload phase")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if min(args.sizes + [args.requests, args.concurrency]) < 1 or args.seconds <= 0:
        parser.error("--sizes, --requests and --concurrency must be at least 1, --seconds above 0")
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """serve.py as a child process on a free loopback port; waits for /healthz, ends with SIGTERM."""

    def __init__(self, checkpoint: Path, threads: int, *flags: str):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "serve.py"), "--checkpoint", str(checkpoint), "--port", str(self.port),
             "--threads", str(threads), "--stats-every", "0", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise SystemExit(f"serve.py did not start:\n{self.process.communicate()[0]}")
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self) -> str:
        self.process.terminate()
        return self.process.communicate(timeout=60)[0]


async def request(reader, writer, body: bytes, port: int) -> int:
    """One POST /v1/predict on a keep-alive connection; the status code."""
    writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return status


async def load(port: int, bodies: list[bytes], concurrency: int, seconds: float) -> list[tuple[int, float]]:
    """(status, seconds) of each request sent, `concurrency` connections taking bodies in turn until none are left or
    `seconds` have passed."""
    results, position, deadline = [], 0, time.monotonic() + seconds

    async def client():
        nonlocal position
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while position < len(bodies) and time.monotonic() < deadline:
                body, position = bodies[position], position + 1
                started = time.perf_counter()
                try:
                    status = await request(reader, writer, body, port)
                except (OSError, asyncio.IncompleteReadError):
                    status = 0  # the server closed the connection
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                results.append((status, time.perf_counter() - started))
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


def phase(args, names: list[str], size: int, batching: bool, concurrency: int, flags: tuple = ()) -> dict:
    n_requests = max(200, args.requests // size)
    rng = random.Random(size)
    bodies = [json.dumps({"names": rng.sample(names, size)}).encode() for _ in range(n_requests)]
    server = Server(args.checkpoint, args.threads, *(("--max-batch", str(args.max_batch), "--max-wait-ms",
                                                        str(args.max_wait_ms)) if batching else ("--max-batch", "1")),
                    *flags)
    try:
        rss_loaded = rss_mb(server.process.pid)
        # warm-up: every connection sends once
        asyncio.run(load(server.port, bodies[:concurrency], concurrency, args.seconds))
        rss_start = rss_mb(server.process.pid)
        started = time.perf_counter()
        results = asyncio.run(load(server.port, bodies, concurrency, args.seconds))
        wall = time.perf_counter() - started
        rss_end = rss_mb(server.process.pid)
        after = asyncio.run(load(server.port, bodies[:1], 1, 30))  # one request once the load has stopped
    finally:
        server.stop()
    ok = [t for status, t in results if status == 200]
    refused = [t for status, t in results if status == 503]
    quantiles = statistics.quantiles(ok, n=100) if len(ok) > 1 else [float("nan")] * 99
    return {"size": size, "batching": batching, "concurrency": concurrency, "requests": len(results),
            "seconds": wall, "requests_per_s": len(ok) / wall, "names_per_s": len(ok) * size / wall,
            "p50_ms": 1000 * quantiles[49], "p95_ms": 1000 * quantiles[94], "p99_ms": 1000 * quantiles[98],
            "errors": len(results) - len(ok), "refused_503": len(refused),
            "refused_p99_ms": 1000 * statistics.quantiles(refused, n=100)[98] if len(refused) > 1 else None,
            "answered_after": after[0][0] == 200, "rss_loaded_mb": rss_loaded, "rss_start_mb": rss_start,
            "rss_end_mb": rss_end}


def main(argv=None) -> int:
    args = parse_args(argv)
    names = sorted({line.split("\t")[0] for line in args.data.read_text(encoding="utf-8").splitlines() if "\t" in line})
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; checkpoint {args.checkpoint}; "
          f"{args.concurrency} connections; serve.py --threads {args.threads}", file=sys.stderr)
    rows = []
    for size in args.sizes:
        for batching in (True, False):
            rows.append(phase(args, names, size, batching, args.concurrency))
            print(f"  {size} names/request, batching {'on' if batching else 'off'}: "
                  f"{rows[-1]['requests_per_s']:.0f} requests/s", file=sys.stderr)
    if args.overload:
        rows.append(phase(args, names, max(args.sizes), True, 2 * args.concurrency,
                          ("--max-queue", str(args.overload_queue))))
    print("| names/request | micro-batching | connections | requests | requests/s | names/s | p50 ms | p95 ms | "
          "p99 ms | errors (503) | RSS MB: loaded, warm → end |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {'on' if r['batching'] else 'off'} | {r['concurrency']} | {r['requests']:,} | "
              f"{r['requests_per_s']:,.0f} | {r['names_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['errors']} ({r['refused_503']}) | "
              f"{r['rss_loaded_mb']:.0f}, {r['rss_start_mb']:.0f} → {r['rss_end_mb']:.0f} |")
    for size in args.sizes:
        on, off = (next(r for r in rows if (r["size"], r["batching"], r["concurrency"]) == (size, b, args.concurrency))
                   for b in (True, False))
        print(f"{size} names/request: micro-batching on/off = {on['requests_per_s'] / off['requests_per_s']:.2f}x "
              f"requests/s and names/s, p99 latency {on['p99_ms'] / off['p99_ms']:.2f}x")
    if args.overload:
        r = rows[-1]
        print(f"overload ({r['concurrency']} connections, --max-queue {args.overload_queue}): {r['refused_503']} of "
              f"{r['requests']} refused with 503 (p99 {r['refused_p99_ms'] or float('nan'):.1f} ms), "
              f"{r['errors'] - r['refused_503']} other errors; answered after the load: {r['answered_after']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
