"""inferwatch web (see DESIGN.md)."""
