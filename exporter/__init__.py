"""Prometheus exporter for the health of WhatsApp Business phone numbers."""

__version__ = "0.1.0"
