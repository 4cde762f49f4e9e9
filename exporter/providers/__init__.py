"""Provider clients: each is signing + transport, plus pure parse functions to the model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from exporter.config import Account
from exporter.providers.base import Provider
from exporter.providers.transport import ClientOptions, RequestObserver
from exporter.ratelimit import TokenBucket


def make_provider(
    account: Account,
    bucket: TokenBucket,
    on_request: RequestObserver,
    http: httpx.AsyncClient | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Provider:
    """Build the provider object that polls ``account``, sharing the credential's ``bucket`` and pooled ``http``
    client (None: the provider's client makes, and closes, its own)."""
    common: ClientOptions = {
        "bucket": bucket,
        "timeout": account.timeout,
        "max_retries": account.retries,
        "on_request": on_request,
        "http": http,
        "sleep": sleep,
    }
    creds = account.credentials
    if account.provider == "alibaba_cams":
        from exporter.providers.cams.client import CamsClient
        from exporter.providers.cams.provider import CamsProvider

        cams = CamsClient(
            endpoint=account.endpoint,
            access_key_id=creds.access_key_id,
            access_key_secret=creds.access_key_secret,
            signature_version=account.signature_version,
            **common,
        )
        return CamsProvider(account, cams)
    if account.provider == "nxcloud":
        from exporter.providers.nxcloud.client import NxCloudClient
        from exporter.providers.nxcloud.provider import NxCloudProvider

        nxcloud = NxCloudClient(
            endpoint=account.endpoint, access_key=creds.access_key_id, access_secret=creds.access_key_secret, **common
        )
        return NxCloudProvider(account, nxcloud)
    if account.provider == "kaleyra":
        from exporter.providers.kaleyra.client import KaleyraClient
        from exporter.providers.kaleyra.provider import KaleyraProvider

        kaleyra = KaleyraClient(
            endpoint=account.endpoint, sid=creds.access_key_id, api_key=creds.access_key_secret, **common
        )
        return KaleyraProvider(account, kaleyra)
    if account.provider == "meta":
        from exporter.providers.meta.client import DEFAULT_API_VERSION, MetaClient
        from exporter.providers.meta.provider import MetaProvider

        meta = MetaClient(
            endpoint=account.endpoint,
            access_token=creds.access_key_secret,
            api_version=account.graph_api_version or DEFAULT_API_VERSION,
            **common,
        )
        return MetaProvider(account, meta)
    if account.provider == "twilio":
        from exporter.providers.twilio.client import TwilioClient
        from exporter.providers.twilio.provider import TwilioProvider

        twilio = TwilioClient(
            endpoint=account.endpoint,
            sid=creds.access_key_id,
            secret=creds.access_key_secret,
            page_size=account.page_size or 100,
            max_concurrent=account.max_concurrent_requests or 2,
            **common,
        )
        return TwilioProvider(account, twilio)
    if account.provider == "infobip":
        from exporter.providers.infobip.client import InfobipClient
        from exporter.providers.infobip.provider import InfobipProvider

        infobip = InfobipClient(endpoint=account.endpoint, api_key=creds.access_key_secret, **common)
        return InfobipProvider(account, infobip)
    raise ValueError(f"unknown provider {account.provider!r}")
