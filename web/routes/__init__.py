"""One router per resource; ``web.app.create_app`` includes them all.

* ``health``: ``/healthz``, ``/readyz``          * ``metrics``: ``/metrics``
* ``backends``: ``/api/v1/backends[/{name}[/series]]``
* ``alerts``: ``/api/v1/alerts``                 * ``silences``: ``/api/v1/silences[/{id}]``
* ``slos``: ``/api/v1/slos``                     * ``gpus``: ``/api/v1/gpus``
* ``certificates``: ``/api/v1/certificates``
* ``audits``: ``/api/v1/audits[/{target}]`` (``router``) and the pages ``/audits[/{target}]`` (``pages``)
* ``pages``: the dashboard pages ``/``, ``/backends/{name}``, ``/gpus``, ``/slos``
* ``alert_pages``: ``/alerts`` and its silence forms   * ``static``: ``/static/*``
"""
