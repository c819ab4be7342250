"""Simulator of the DR hardware (fingerprint sensor, QR scanner) behind a pseudo-terminal."""
