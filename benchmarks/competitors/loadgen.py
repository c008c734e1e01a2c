"""A closed-loop HTTP load generator with keep-alive connections (asyncio and aiohttp).

    .anchors/loadgen/bin/python benchmarks/competitors/loadgen.py URL [--body FILE]
        [-c CONCURRENCY] [-d SECONDS] [--warmup SECONDS] [--method POST] [--label NAME]

`-c` clients each keep one connection open and send their next request as soon as the answer to
the previous one has been read in full, for --warmup seconds (not counted) and then -d seconds.
A request's latency runs from sending it to reading the last byte of its answer; only 2xx answers
count towards rps and the latencies. With --body the request is a POST of that file's bytes as
application/json (unless --method says otherwise); without, a GET.

`--header NAME:VALUE` (repeatable) adds a header to every request (e.g. the V2 binary
extension's `Inference-Header-Content-Length`). `--grpc METHOD` loads a gRPC server instead: URL
is host:port, and each request is one unary call of METHOD (`/inference.GRPCInferenceService/
ModelInfer`) carrying --body's bytes as the serialized request message, over one channel per
client; a call that ends with a status other than OK counts as non_2xx (by status name).

Prints one JSON line: rps, ok, non_2xx, errors (by exception type), latency_ms mean, p50, p90,
p99 and max. Exits 1 when no request succeeded. The load generator shares the machine's CPUs with
the server it loads, so serving.py also loads a bare endpoint to show the ceiling of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp


@dataclass
class Tally:
    """What the clients saw in the measured window."""

    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int | str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def quantile(ordered: list[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, interpolated between neighbours."""
    position = (len(ordered) - 1) * q
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


async def client(
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    body: bytes | None,
    window: tuple[float, float],
    tally: Tally,
) -> None:
    """One closed-loop client: request, read all, repeat until the window closes."""
    counted_from, stop_at = window
    while (sent := time.perf_counter()) < stop_at:
        counted = sent >= counted_from
        try:
            async with session.request(args.method, args.url, data=body) as answer:
                await answer.read()
            took = time.perf_counter() - sent
        except Exception as error:  # a load test counts failures and goes on
            if counted:
                tally.errors[type(error).__name__] += 1
            continue
        if counted:
            tally.statuses[answer.status] += 1
            if 200 <= answer.status < 300:
                tally.latencies_s.append(took)


async def grpc_client(
    args: argparse.Namespace, body: bytes, window: tuple[float, float], tally: Tally
) -> None:
    """One closed-loop gRPC client on its own channel: call, await the answer, repeat."""
    import grpc

    counted_from, stop_at = window
    async with grpc.aio.insecure_channel(args.url) as channel:
        call = channel.unary_unary(args.grpc)  # bytes in, bytes out: no message classes
        while (sent := time.perf_counter()) < stop_at:
            counted = sent >= counted_from
            try:
                await call(body, timeout=args.timeout)
                took, status = time.perf_counter() - sent, 200
            except grpc.aio.AioRpcError as error:
                took, status = 0.0, error.code().name
            except Exception as error:  # a load test counts failures and goes on
                if counted:
                    tally.errors[type(error).__name__] += 1
                continue
            if counted:
                tally.statuses[status] += 1
                if status == 200:
                    tally.latencies_s.append(took)


async def drive(args: argparse.Namespace, body: bytes | None) -> tuple[Tally, float]:
    tally = Tally()
    counted_from = time.perf_counter() + args.warmup
    window = (counted_from, counted_from + args.duration)
    if args.grpc:
        assert body is not None, "--grpc needs --body (the serialized request message)"
        await asyncio.gather(
            *(grpc_client(args, body, window, tally) for _ in range(args.concurrency))
        )
        return tally, time.perf_counter() - counted_from
    headers = {"Content-Type": "application/json"} if body is not None else {}
    for header in args.header:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:
        await asyncio.gather(
            *(client(session, args, body, window, tally) for _ in range(args.concurrency))
        )
    return tally, time.perf_counter() - counted_from


def _ok(status: int | str) -> bool:
    return isinstance(status, int) and 200 <= status < 300


def summary(args: argparse.Namespace, tally: Tally, measured_s: float) -> dict[str, object]:
    ordered = sorted(tally.latencies_s)

    def ms(value: float) -> float:
        return round(value * 1e3, 3)

    latency = None
    if ordered:
        latency = {
            "mean": ms(statistics.fmean(ordered)),
            "p50": ms(quantile(ordered, 0.50)),
            "p90": ms(quantile(ordered, 0.90)),
            "p99": ms(quantile(ordered, 0.99)),
            "max": ms(ordered[-1]),
        }
    return {
        "label": args.label,
        "url": args.url,
        "concurrency": args.concurrency,
        "measured_s": round(measured_s, 3),
        "rps": round(len(ordered) / measured_s, 2),
        "ok": len(ordered),
        "non_2xx": sum(n for status, n in tally.statuses.items() if not _ok(status)),
        "statuses": {str(s): n for s, n in sorted(tally.statuses.items(), key=str)},
        "errors": dict(tally.errors),
        "latency_ms": latency,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--body", type=Path, help="file to send (JSON); none: GET")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not counted, first")
    parser.add_argument("--method", help="default: POST with --body, GET without")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--label", default="")
    parser.add_argument("--header", action="append", default=[], help="NAME:VALUE, repeatable")
    parser.add_argument("--grpc", help="a gRPC method to call (URL is then host:port)")
    args = parser.parse_args()
    body = args.body.read_bytes() if args.body else None
    args.method = args.method or ("POST" if body is not None else "GET")
    tally, measured_s = asyncio.run(drive(args, body))
    print(json.dumps(summary(args, tally, measured_s)), flush=True)
    return 0 if tally.latencies_s else 1


if __name__ == "__main__":
    sys.exit(main())
