"""inferwatch alerts (see DESIGN.md)."""
