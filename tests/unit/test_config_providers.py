"""Configuration of the NxCloud and Kaleyra accounts, in their own vocabulary."""

import pytest

from exporter.config import ConfigError, parse_config

ENV = {"NX_SECRET": "nx-secret-value", "KAL_KEY": "kaleyra-key-value", "META_TOKEN": "EAAmeta-token-value"}

NX = """
accounts:
  - name: nx
    provider: nxcloud
    credentials: {access_key: ak1, access_secret: "${NX_SECRET}"}
    apps:
      - appkey: app-one
      - appkey: app-two
        business_phones: ["+86 138 0000 0001", "8613800000002"]
"""

KAL = """
accounts:
  - name: kal
    provider: kaleyra
    pod: SG
    credentials: {sid: HXAP123, api_key: "${KAL_KEY}"}
    wabas:
      - waba_id: "1029384756"
      - waba_id: "1029384757"
        phone_numbers: ["919876543210"]
"""

META = """
accounts:
  - name: meta
    provider: meta
    credentials: {app_id: "1234567890", access_token: "${META_TOKEN}"}
    wabas:
      - waba_id: "102290000000001"
      - waba_id: "102290000000002"
        phone_numbers: ["+15550100001"]
"""


def test_nxcloud_account():
    [a] = parse_config(NX, env=ENV).accounts
    assert a.endpoint == "https://api2.nxcloud.com"
    assert a.qps == 2  # conservative: NxCloud documents no QPS
    assert (a.credentials.access_key_id, a.credentials.access_key_secret) == ("ak1", "nx-secret-value")
    assert [u.id for u in a.units] == ["app-one", "app-two"]
    assert a.units[1].phone_numbers == ("8613800000001", "8613800000002")
    assert a.waba_poll_interval == 0 and a.verification_poll_interval == 0


def test_kaleyra_account():
    [a] = parse_config(KAL, env=ENV).accounts
    assert a.endpoint == "https://api.ap.kaleyra.io"
    assert a.qps == 5
    assert a.credentials.access_key_id == "HXAP123"
    assert a.units[1].phone_numbers == ("919876543210",)


def test_meta_account():
    [a] = parse_config(META, env=ENV).accounts
    assert a.endpoint == "https://graph.facebook.com"
    assert a.qps == 2 and a.graph_api_version == "v24.0"
    assert (a.credentials.access_key_id, a.credentials.access_key_secret) == ("1234567890", "EAAmeta-token-value")
    assert [u.id for u in a.units] == ["102290000000001", "102290000000002"]
    assert a.units[1].phone_numbers == ("15550100001",)
    assert a.waba_poll_interval == 0 and a.verification_poll_interval == 0


def test_meta_version_and_token_only_credential():
    text = META.replace('app_id: "1234567890", ', "") + "    graph_api_version: v23.0\n"
    [a] = parse_config(text, env=ENV).accounts
    assert a.graph_api_version == "v23.0"
    # without app_id the budget is named by a digest of the token, never the token itself
    assert a.credentials.access_key_id.startswith("sha256:")
    assert "EAAmeta" not in a.credentials.access_key_id and "EAAmeta" not in repr(a)
    again = parse_config(text.replace("name: meta", "name: meta2"), env=ENV).accounts[0]
    assert again.credential_key == a.credential_key


def test_graph_api_version_from_global_applies_to_meta_only():
    text = "global: {graph_api_version: v25.0}\n" + META + NX.split("accounts:\n", 1)[1]
    meta, nx = parse_config(text, env=ENV).accounts
    assert (meta.graph_api_version, nx.graph_api_version) == ("v25.0", "")


def test_cams_only_tunables_from_global_do_not_apply():
    text = "global: {tier_vocabulary: legacy_console, waba_poll_interval: 20m}\n" + NX.replace(
        "accounts:\n", "accounts:\n", 1
    )
    [a] = parse_config(text, env=ENV).accounts
    assert a.waba_poll_interval == 0


def refused(text: str) -> ConfigError:
    """The error ``text`` is refused with; no secret of ENV is in it."""
    with pytest.raises(ConfigError) as err:
        parse_config(text, env=ENV)
    for secret in ENV.values():
        assert secret not in str(err.value)
    return err.value


@pytest.mark.parametrize(
    "text,at,fragment",
    [
        (NX.replace("access_key:", "access_key_id:"), ".credentials.access_key_id", "unknown key"),
        (NX.replace("- appkey: app-one", "- appkey: ''"), ".apps[0].appkey", "must not be empty"),
        (NX.replace('"8613800000002"', '"abc"'), ".apps[1].business_phones[1]", "invalid phone number"),
        (NX.replace('"8613800000002"', '"+8613800000001"'), ".apps[1].business_phones[1]", "duplicate"),
        (NX.replace("business_phones: [", "business_phones: [] #["), ".apps[1].business_phones", "non-empty list"),
        (NX + "    signature_version: v2\n", ".signature_version", 'not supported by provider "nxcloud"'),
        (NX + "    tier_vocabulary: legacy_console\n", ".tier_vocabulary", "not supported"),
        (NX + "    pod: IN\n", ".pod", 'not valid for provider "nxcloud"'),
        (KAL.replace("    pod: SG\n", ""), ".endpoint", "required (or pod"),
        (KAL.replace("pod: SG", "pod: MARS"), ".pod", "MARS"),
        (KAL + "    endpoint: https://api.in.kaleyra.io\n", "", "only one of pod and endpoint"),
        (KAL.replace("api_key:", "apikey:"), ".credentials.apikey", "unknown key"),
        (KAL.replace('"1029384757"', '"1029384756"'), ".wabas[1].waba_id", "duplicate"),
        (KAL + "    graph_api_version: v24.0\n", ".graph_api_version", 'not supported by provider "kaleyra"'),
        (META + "    graph_api_version: 24\n", ".graph_api_version", "must be a string"),
        (META + "    graph_api_version: v24\n", ".graph_api_version", "invalid Graph API version"),
        (META + "    waba_poll_interval: 10m\n", ".waba_poll_interval", 'not supported by provider "meta"'),
        (META + "    pod: IN\n", ".pod", 'not valid for provider "meta"'),
        (META.replace('"${META_TOKEN}"', '"${NOPE}"'), ".credentials.access_token", "NOPE is not set"),
        (META.replace('app_id: "1234567890"', "app_id: 1234567890"), ".credentials.app_id", "must be a string"),
        (META.replace("access_token:", "token:"), ".credentials.token", "unknown key"),
        (META.replace('"+15550100001"', '"x"'), ".wabas[1].phone_numbers[0]", "invalid phone number"),
    ],
)
def test_provider_config_errors(text, at, fragment):
    """``at``: where in the (one) account the error is."""
    err = refused(text)
    assert err.path == "accounts[0]" + at, str(err)
    assert fragment in err.message, str(err)


@pytest.mark.parametrize(
    "text,provider,section,key,other_section,other_key",
    [
        (NX, "nxcloud", "apps", "appkey", "spaces", "cust_space_id"),
        (KAL, "kaleyra", "wabas", "waba_id", "apps", "appkey"),
        (META, "meta", "wabas", "waba_id", "spaces", "cust_space_id"),
    ],
)
def test_another_providers_section_is_refused(text, provider, section, key, other_section, other_key):
    err = refused(text.replace(f"{section}:", f"{other_section}:").replace(key, other_key))
    assert err.path == f"accounts[0].{other_section}", str(err)
    assert f'not valid for provider "{provider}"' in err.message, str(err)


@pytest.mark.parametrize(
    "text,secret_line,key",
    [(NX, 'access_secret: "${NX_SECRET}"', "access_secret"), (META, 'access_token: "${META_TOKEN}"', "access_token")],
)
def test_an_inline_provider_secret_is_refused_without_showing_it(text, secret_line, key):
    assert secret_line in text
    err = refused(text.replace(secret_line, f"{key}: EAAinline-plain"))
    assert err.path == f"accounts[0].credentials.{key}", str(err)
    assert "inline secrets" in err.message and "EAAinline-plain" not in str(err), str(err)


def test_three_providers_in_one_file():
    cams = """
  - name: cams
    provider: alibaba_cams
    credentials: {access_key_id: a, access_key_secret: "${NX_SECRET}"}
    spaces: [{cust_space_id: cams-1}]
"""
    text = NX + cams + KAL.split("accounts:\n", 1)[1]
    config = parse_config(text, env=ENV)
    assert [a.provider for a in config.accounts] == ["nxcloud", "alibaba_cams", "kaleyra"]


def test_metrics_section_and_caps():
    text = (
        NX.replace(
            "accounts:",
            """metrics:
  state_sets: active
  disable: [whatsapp_phone_number_new_name_status, whatsapp_waba_info]
  info_labels: [space_id]
global: {max_numbers: 500}
accounts:""",
            1,
        )
        + "    concurrency: 3\n"
    )
    config = parse_config(text, env=ENV)
    assert config.metrics.active_only
    assert config.metrics.disabled == {"whatsapp_phone_number_new_name_status", "whatsapp_waba_info"}
    assert config.metrics.info_labels == ("space_id",)
    [a] = config.accounts
    assert (a.max_numbers, a.concurrency) == (500, 3)


def test_default_concurrency_follows_the_budget():
    [a] = parse_config(NX, env=ENV).accounts
    assert a.concurrency == 2 and a.max_numbers == 0
    assert parse_config(NX, env=ENV).metrics.active_only  # the default since issue 17: only the current state


@pytest.mark.parametrize(
    "section,path,fragment",
    [
        ("metrics: {state_sets: some}", "metrics.state_sets", "unknown state_sets mode"),
        ("metrics: {disable: [whatsapp_nope]}", "metrics.disable[0]", "unknown metric"),
        ("metrics: {disable: whatsapp_waba_info}", "metrics.disable", "must be a list"),
        ("metrics: {info_labels: [status]}", "metrics.info_labels[0]", "unknown info label"),
        ("metrics: {colour: blue}", "metrics.colour", "unknown key"),
        ("global: {max_numbers: -1}", "global.max_numbers", "whole number"),
        ("global: {concurrency: 0}", "global.concurrency", "whole number"),
        ("global: {concurrency: 2.5}", "global.concurrency", "whole number"),
        # an integer too large for a float is refused like an infinite number (it used to raise OverflowError)
        ("global: {qps: " + "9" * 400 + "}", "global.qps", "must be a finite number"),
        ("global: {max_numbers: " + "9" * 400 + "}", "global.max_numbers", "must be a finite number"),
        ("global: {poll_interval: " + "9" * 400 + "}", "global.poll_interval", "must be a finite duration"),
    ],
)
def test_metrics_and_cap_errors(section, path, fragment):
    err = refused(section + "\n" + NX)
    assert err.path == path, str(err)
    assert fragment in err.message, str(err)
