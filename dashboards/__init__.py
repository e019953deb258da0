"""inferwatch dashboards (see DESIGN.md)."""
