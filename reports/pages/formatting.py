"""Plain-text formatting shared by the page selectors and template filters."""

from coordinator_site.health import human_duration

__all__ = ["human_duration"]
