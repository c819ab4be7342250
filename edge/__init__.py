"""The DR device side: drivers, biometrics, sealed outbox, MQTT link and the station workflow."""
