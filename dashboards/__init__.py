"""inferwatch dashboards (see DESIGN.md); ``dashboards.grafana`` generates the Grafana dashboards
and provisioning committed under ``grafana/`` (``inferwatch grafana -o DIR``)."""
