"""The dcgm-exporter source: a remote ``/metrics`` of ``DCGM_FI_*`` series read into GPU
samples (``exporters.gpu_scrape.from_dcgm``), fetched with the same limits as an engine scrape
(timeout, body cap, content-type check). Never raises: a failure is a ``GpuReading`` with an
error naming the URL."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.samples import GpuReading
from exporters.base import Clock, Schedule
from exporters.families import ParseError
from exporters.gpu_scrape import WANTED_DCGM, from_dcgm
from exporters.http import FetchError, Http, Limits
from exporters.parser import parse

__all__ = ["DcgmScrape", "metrics_url"]


def metrics_url(url: str) -> str:
    """The exporter's URL with ``/metrics`` added when it names no path.

    >>> metrics_url("http://node-7:9400"), metrics_url("http://node-7:9400/custom")
    ('http://node-7:9400/metrics', 'http://node-7:9400/custom')
    """
    return url if urlsplit(url).path not in ("", "/") else url.rstrip("/") + "/metrics"


@dataclass(frozen=True, slots=True)
class DcgmScrape:
    url: str
    host: str  # the host its GPUs are labelled with when the exposition names none
    limits: Limits
    interval: float
    schedule: Schedule = "after"

    @property
    def name(self) -> str:
        return f"dcgm {metrics_url(self.url)}"

    async def collect(self, http: Http, clock: Clock = time.time) -> GpuReading:
        ts = clock()
        url = metrics_url(self.url)
        try:
            body = await http.exposition(url, self.limits)
            samples = from_dcgm(parse(body, keep=WANTED_DCGM), self.host)
        except FetchError as exc:
            return GpuReading(ts, self.name, (), f"{url}: {exc.reason}")
        except ParseError as exc:
            return GpuReading(ts, self.name, (), f"{url}: parse error at line {exc.lineno}: {exc.message}")
        except Exception as exc:  # a reading never raises into the loop
            return GpuReading(ts, self.name, (), f"{url}: {type(exc).__name__}: {exc}")
        return GpuReading(ts, self.name, tuple(samples))
