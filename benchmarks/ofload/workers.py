"""Several generator processes against one controller, started together.

Each worker emulates its own data center (its own fabric switch, datapath
ids and VM serials), so the controller sees one forest of independent trees
and no link crosses two workers. Workers connect and pre-encode first; the
parent then checks the controller is ready and starts them all at once.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from dataclasses import replace
from typing import Callable, List, Optional

from benchmarks.ofload.driver import Load, LoadConfig

WORKER_DPID_STRIDE = 0x00100000
WORKER_SERIAL_STRIDE = 1 << 24


def worker_config(config: LoadConfig, index: int) -> LoadConfig:
    """The config of worker ``index``: its own datapath ids, serials and names."""
    return replace(config, dpid_base=config.dpid_base + index * WORKER_DPID_STRIDE,
                   serial_base=config.serial_base + index * WORKER_SERIAL_STRIDE,
                   name_prefix=f"{config.name_prefix}{index}")


async def _worker(config: LoadConfig, conn) -> None:
    load = Load(config)
    try:
        await load.connect()
        load.pre_encode()
        conn.send(("connected", load.topology.link_count))
        loop = asyncio.get_running_loop()
        order = await loop.run_in_executor(None, conn.recv)
        if order != "go":
            return
        load.announce_gateway()
        await asyncio.sleep(0.3)
        conn.send(("result", await load.run(config.duration)))
    except Exception as error:  # reported to the parent, which raises it
        conn.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        load.close()


def _worker_main(config: LoadConfig, conn) -> None:
    asyncio.run(_worker(config, conn))


def run_workers(config: LoadConfig, workers: int = 1,
                ready: Optional[Callable[[int], None]] = None,
                timeout: float = 60.0) -> dict:
    """Run ``workers`` generators; ``ready(total_links)`` runs before they start."""
    context = multiprocessing.get_context("fork")
    pipes, processes = [], []
    try:
        for index in range(workers):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main,
                                      args=(worker_config(config, index), child), daemon=True)
            process.start()
            pipes.append(parent)
            processes.append(process)
        links = sum(_expect(pipe, "connected", timeout) for pipe in pipes)
        if ready is not None:
            ready(links)
        for pipe in pipes:
            pipe.send("go")
        wait = config.duration + config.vm_timeout + timeout
        return merge([_expect(pipe, "result", wait) for pipe in pipes])
    finally:
        for pipe in pipes:
            try:
                pipe.send("stop")
            except (BrokenPipeError, OSError):
                pass
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def _expect(pipe, kind: str, timeout: float):
    if not pipe.poll(timeout):
        raise RuntimeError(f"load generator worker sent no '{kind}' within {timeout}s")
    got, value = pipe.recv()
    if got == "error":
        raise RuntimeError(f"load generator worker failed: {value}")
    if got != kind:
        raise RuntimeError(f"load generator worker sent '{got}', expected '{kind}'")
    return value


def merge(results: List[dict]) -> dict:
    """One figure set from the workers' (they ran at the same time)."""
    first = results[0]
    merged = {
        "mode": first["mode"], "workers": len(results),
        "window": sum(r["window"] for r in results),
        "seconds": max(r["seconds"] for r in results),
        "latencies_ms": [x for r in results for x in r["latencies_ms"]],
        "provisioned_macs": [x for r in results for x in r["provisioned_macs"]],
        "generator_cpu_seconds": [r["generator_cpu_seconds"] for r in results],
        "pool_exhausted": any(r["pool_exhausted"] for r in results),
    }
    for key in ("switches", "servers", "sent", "completed_in_window", "completed", "released",
                "lost", "still_outstanding", "vms_per_second", "encode_seconds"):
        merged[key] = sum(r[key] for r in results)
    for key in ("messages", "binding_mods"):
        total: Counter = Counter()
        for r in results:
            total.update(r[key])
        merged[key] = dict(total)
    return merged
