"""pytest fixtures shared by core and plugin tests (filled below)."""
