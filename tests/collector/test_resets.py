"""Rates around an engine restart and a gap, end to end: simulated engines scraped every 15 s,
killed (connections refused), restarted from zero or merely paused, and inferwatch's tokens/s
compared with what the engine produced over the same window at every scrape after recovery.

The engine's truth over a window is the tokens it generated in it over the time it was serving
in it (a killed engine serves nothing; a paused-only-for-us one keeps serving)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.e2e_helpers import Clock, harness

STEP, WINDOW = 15.0, 300.0
PROFILE = Profile(request_rate=6.0)


class Truth:
    """What the simulated engine counted (tokens, or finished requests), across restarts, by
    scrape time."""

    def __init__(self, count: Callable[[SimBackend], float]) -> None:
        self.total: dict[float, float] = {}
        self.offset = 0.0
        self.count = count

    def note(self, t: float, sim: SimBackend) -> None:
        self.total[t] = self.offset + self.count(sim)

    def restarted(self, at: float) -> None:
        """The engine's counters start from zero; what it had counted by ``at`` stays counted."""
        self.offset = self.total[at]

    def rate(self, now: float, serving: float) -> float:
        return (self.total[now] - self.total[now - WINDOW]) / serving


FIGURES: dict[str, Callable[[SimBackend], float]] = {
    "tokens_per_second": lambda sim: sum(st.generation_tokens for st in sim.models.values()),
    "requests_per_second": lambda sim: sum(sum(st.finished.values()) for st in sim.models.values()),
}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["vllm", "llamacpp"])  # with and without process_start_time_seconds
@pytest.mark.parametrize("kind", ["kill and restart", "pause"])
async def test_rates_stay_true_around_an_outage(store_url: str, engine: str, kind: str) -> None:
    clock = Clock()
    sim = SimBackend("e", make_renderer(engine), ("m",), PROFILE, seed=5, now=clock())
    # llama.cpp counts no requests: its requests/s is null, not compared
    truths = {f: Truth(count) for f, count in FIGURES.items() if engine != "llamacpp" or f == "tokens_per_second"}
    async with harness([sim], store_url, clock, scrape_interval="15s") as h:
        async def scrape() -> None:
            await h.collector.scrape_once()
            for truth in truths.values():
                truth.note(clock(), sim)

        await scrape()
        for _ in range(int(WINDOW / STEP) + 2):  # a full window of steady state
            clock.advance(STEP)
            await scrape()
        got = (await h.backends())["e"]
        for figure, truth in truths.items():
            assert got[figure] == pytest.approx(truth.rate(clock(), WINDOW), rel=0.02), figure
        # the outage: 35 s of refused connections (two failed scrapes)
        sim.incident.outage = True
        down_from = clock()
        for _ in range(2):
            clock.advance(STEP)
            await h.collector.scrape_once()  # refused: nothing to note
            for truth in truths.values():
                truth.total[clock()] = truth.total[clock() - STEP]  # nothing served (kill) ...
        restart_at = clock() + 5.0
        clock.advance(5.0)
        if kind == "kill and restart":  # killed right after the last good scrape: nothing served since
            for truth in truths.values():
                truth.restarted(down_from)
            sim.restart(restart_at)  # counters from zero, process_start_time_seconds = now
        sim.incident.outage = False
        errors: dict[str, list[float]] = {f: [] for f in truths}
        for k in range(int(WINDOW / STEP) + 2):  # every scrape from recovery until the outage left the window
            clock.advance(STEP if k else STEP - 5.0)
            await scrape()
            got = (await h.backends())["e"]
            for figure, truth in truths.items():
                if kind == "pause":  # it kept serving: the notes taken while refused were wrong
                    for t in (down_from + STEP, down_from + 2 * STEP):
                        truth.total.pop(t, None)
                    if clock() - WINDOW in truth.total:
                        errors[figure].append(got[figure] / truth.rate(clock(), WINDOW) - 1)
                    continue
                lost = max(0.0, min(clock(), restart_at) - max(clock() - WINDOW, down_from))  # not serving
                errors[figure].append(got[figure] / truth.rate(clock(), WINDOW - lost) - 1)
        for figure, errs in errors.items():
            assert errs and max(map(abs, errs)) < 0.10, (figure, [round(e, 3) for e in errs])
