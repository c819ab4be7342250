"""The agent console: local web UI and JSON API served by the daemon."""
