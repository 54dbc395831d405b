"""The demo's 12-shot batch: main-thread cost of each pump, and wall time against the ideal.

Prints the longest pump and its 99th percentile in milliseconds (target: longest < 10 ms),
and the batch's wall time as a ratio to the ideal: the slowest shot's render time times the
number of rounds at the concurrency limit.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import demo  # noqa: E402
import shotline_dev  # noqa: E402


def _p99(sorted_ms: list[float]) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, math.ceil(0.99 * len(sorted_ms)) - 1)]


def main() -> None:
    shotline_dev.expose_checkout()
    shotline_dev.enable()
    from shotline.addon.blend import runtime
    from shotline.addon.services import registry

    out = Path(tempfile.mkdtemp(prefix="shotline-bench-"))
    scene, shots = demo.build(out)
    pumps: list[float] = []
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    original_pump = runtime.queue().pump

    def watching_pump(*args, **kwargs):
        events = original_pump(*args, **kwargs)
        now = time.perf_counter()
        for event in events:
            if event.kind == "started":
                started.setdefault(event.job_id, now)
            elif event.kind == "done":
                finished[event.job_id] = now
        return events

    runtime.queue().pump = watching_pump
    cpu: list[float] = []
    timed_pump = runtime.pump

    def cpu_timed_pump(*args, **kwargs):  # the main thread's own CPU time, apart from waiting for a core
        t0 = time.thread_time()
        events = timed_pump(*args, **kwargs)
        cpu.append(time.thread_time() - t0)
        return events

    runtime.pump = cpu_timed_pump
    wall = demo.generate(scene, shots, on_pump=pumps.append)
    renders = [finished[j] - started[j] for j in finished if j in started]
    limit = registry.get("animatic").max_concurrency
    ideal = max(renders) * math.ceil(len(shots) / limit)
    pumps_ms, cpu_ms = sorted(p * 1000 for p in pumps), sorted(c * 1000 for c in cpu)
    placed = sum(s.shotline.status == 'PLACED' for s in shots)
    print(f"shots placed:            {placed}/{len(shots)} (concurrency limit {limit})")
    print(f"pumps, wall time:        {len(pumps_ms)}; longest {pumps_ms[-1]:.2f} ms, p99 {_p99(pumps_ms):.2f} ms, "
          f"median {pumps_ms[len(pumps_ms) // 2]:.3f} ms (target: longest < 10 ms)")
    print(f"pumps, main-thread CPU:  longest {cpu_ms[-1]:.2f} ms, p99 {_p99(cpu_ms):.2f} ms "
          f"(wall minus CPU is time the main thread waited for a core held by the encoders)")
    print(f"shot render time:        slowest {max(renders):.2f} s, fastest {min(renders):.2f} s")
    print(f"batch wall / ideal:      {wall:.1f} s / {ideal:.1f} s = {wall / ideal:.2f}x")
    shotline_dev.disable()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    import os

    os._exit(0)
