"""Meta's WhatsApp Cloud API (Graph API): the phone numbers of a WABA and their health."""
