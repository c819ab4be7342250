"""Formats shared by the DR device and central, each declared once.

Everything that crosses the line between ``edge`` and ``central`` lives here: the enrolment
record and its sealed envelope, identifiers (pre-request, tax stamp, CNI request numbers),
MQTT topics and message schemas. Neither side redefines them.
"""
