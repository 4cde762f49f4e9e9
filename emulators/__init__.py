"""Provider emulators: local HTTP servers that behave like the providers' APIs.

They power ``--demo`` and the integration tests.  Each emulator is written from
the providers' documentation only and never imports the exporter's client code.

* :mod:`emulators.scenario` - scenario model, YAML loader, timelines, faults.
* :mod:`emulators.cams` - Alibaba Cloud CAMS (2020-06-06) emulator.
* :mod:`emulators.twilio` - Twilio WhatsApp Senders (v2) emulator.
* :mod:`emulators.infobip` - Infobip WhatsApp senders quality emulator.

Run one standalone with ``python -m emulators --scenario demo --listen 127.0.0.1:18777``.
"""
