"""The central service: pre-requests, tax stamps, devices, request numbers, ingest and status."""
