"""The one database every store shares: engine, metadata, migrations, and the codecs for numbers.

``storage.database.Database`` opens SQLite or PostgreSQL and runs the Alembic history in
``storage/migrations`` (one history for every table). Each concern owns its tables and its SQL in
its own package, on the shared ``metadata``:

* ``collector.store.MetricsStore``: scrape records, cursors, latest status, rollups;
* ``collector.observations.ObservationStore``: probe results, certificate checks, GPU samples;
* ``alerts.outbox.AlertStore``: the notification outbox, alert states and alert history;
* ``alerts.silences.SilenceStore``: silences.

Nothing here knows what a metric or an alert is.
"""
