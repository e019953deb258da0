"""The foundation every other package builds on: value types, the vocabulary, units and numbers.

Imports nothing of inferwatch's own (only the standard library and pydantic), so any package may
import it and none of it changes when a package above it does:

* ``core.samples``: the frozen value types that cross package boundaries (scrape snapshots and
  deltas, probe, certificate and GPU results);
* ``core.audit``: the deployment checklist (``CHECKS``) and its verdict and run types;
* ``core.conventions``: the normalised vocabulary, every signal and ``inferwatch_*`` name;
* ``core.units``: durations (``15s``, ``1h30m``) and sizes (``16MiB``) as config writes them;
* ``core.numbers``: small numeric helpers (non-finite values, exact quantiles of observations);
* ``core.quantiles``: ``histogram_quantile`` and histogram merges with Prometheus semantics;
* ``core.labels``: what a valid label name is.
"""
