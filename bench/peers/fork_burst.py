"""Burst concurrency (bench/fork_boot.py, part 3): many invocations at once, each needing a new
instance (`?boot=fork`).

Every invocation has its own connection to the daemon's unix socket, all made before the clock
starts; then the requests are written back to back from one asyncio loop and the answers read as
they come. The burst's wall time runs from the first write to the last answer read; boots/s is
the successful fresh instances over that time. Each answer's Server-Timing gives its boot
(sandbox + init), its queue wait and the daemon's total; the client gives its own latency
(write → answer read). The instances are deleted afterwards (untimed).
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
import urllib.parse

from .daemon import parse_server_timing
from .fork_density import distribution
from .scenarios import EVENT, EXPECTED_ANSWER

CONNECT_BATCH = 100
ANSWER_TIMEOUT_S = 120.0


def raise_nofile(needed: int) -> str | None:
    """Soft RLIMIT_NOFILE up to the hard limit, for `needed` client sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, needed + 256)) if hard != resource.RLIM_INFINITY else needed + 256
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < needed + 64:
        return f"RLIMIT_NOFILE hard limit {hard} is below {needed} sockets"
    return None


def _request(function: str) -> bytes:
    body = EVENT.encode()
    path = f"/v1/functions/{urllib.parse.quote(function)}/invoke?boot=fork"
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def _burst(socket_path: str, functions: list[str], n: int) -> dict:
    conns = []
    for start in range(0, n, CONNECT_BATCH):
        batch = [asyncio.open_unix_connection(socket_path)
                 for _ in range(start, min(n, start + CONNECT_BATCH))]
        conns += await asyncio.gather(*batch)
    requests = [_request(functions[i % len(functions)]) for i in range(n)]
    sent = [0] * n
    done = [0] * n

    async def one(i: int):
        reader = conns[i][0]
        try:
            status, headers, body = await asyncio.wait_for(_read_answer(reader),
                                                           ANSWER_TIMEOUT_S)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError, ValueError) as e:
            done[i] = time.perf_counter_ns()
            return None, {}, repr(e).encode()
        done[i] = time.perf_counter_ns()
        return status, headers, body

    readers = [asyncio.ensure_future(one(i)) for i in range(n)]
    t0 = time.perf_counter_ns()
    for i, (_, writer) in enumerate(conns):
        sent[i] = time.perf_counter_ns()
        writer.write(requests[i])
    await asyncio.gather(*(w.drain() for _, w in conns))
    answers = await asyncio.gather(*readers)
    t1 = max(done)
    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    return {"t0": t0, "t1": t1, "sent": sent, "done": done, "answers": answers}


def run_burst(socket_path: str, functions: list[str], n: int) -> dict:
    """Fires n forced fork boots at once; the figures, and the ids of the instances made."""
    problem = raise_nofile(n)
    if problem:
        return {"error": problem, "requested": n}
    raw = asyncio.run(_burst(socket_path, functions, n))
    expected = json.loads(EXPECTED_ANSWER)
    ok_client, boot, queue, total, ids, failures = [], [], [], [], [], {}
    for i, (status, headers, body) in enumerate(raw["answers"]):
        instance = headers.get("x-ember-instance", "")
        if instance:
            ids.append(instance)
        why = None
        if status != 200:
            why = f"HTTP {status}: {body.decode(errors='replace')[:200]}"
        elif headers.get("x-ember-boot-mode") != "fork" or \
                headers.get("x-ember-instance-reused") == "true":
            why = (f"not a fresh fork boot (boot mode {headers.get('x-ember-boot-mode')}, "
                   f"reused {headers.get('x-ember-instance-reused')})")
        else:
            try:
                if json.loads(body) != expected:
                    why = f"unexpected answer {body[:100]!r}"
            except ValueError:
                why = f"not JSON: {body[:100]!r}"
        if why:
            key = why[:160]
            failures[key] = failures.get(key, 0) + 1
            continue
        st = parse_server_timing(headers.get("server-timing", ""))
        ok_client.append((raw["done"][i] - raw["sent"][i]) / 1e6)
        boot.append(st.get("sandbox", 0.0) + st.get("init", 0.0))
        queue.append(st.get("queue", float("nan")))
        total.append(st.get("total", float("nan")))
    wall_s = (raw["t1"] - raw["t0"]) / 1e9
    ok = len(ok_client)
    return {
        "requested": n, "ok": ok, "failed": n - ok, "failures": failures,
        "unique_instances": len(set(ids)), "wall_ms": wall_s * 1e3,
        "boots_per_s": ok / wall_s if wall_s > 0 else None,
        "boot_ms": distribution(boot), "queue_ms": distribution(queue),
        "server_total_ms": distribution(total), "client_ms": distribution(ok_client),
        "ids": ids,
    }
