"""The DR device's MQTT link to central (docs/mqtt.md)."""
