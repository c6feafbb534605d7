"""Reads: queries the API, the web UI and the workers share, so they never disagree."""
