"""The --web.config.file loader: exporter-toolkit's schema, one-line errors that never quote a secret.

Also home of the helpers the other web tests share: a throwaway PKI made with
the ``openssl`` command line, bcrypt hashes, and a store filled with numbers.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace

import bcrypt
import pytest

from exporter import model
from exporter.store import AccountSnapshot, PollResult, Store
from exporter.webconfig import WebConfigError, load_web_config, parse_web_config

PASSWORD = "correct horse battery staple"
# cost 4 keeps the tests fast; the server treats every cost alike
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.fail(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def _new_key(directory: Path, name: str, *request: str) -> None:
    """``openssl req``: a new P-256 key into ``name``.key, unencrypted, and what ``request`` asks for with it."""
    ec_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key")
    _openssl("req", *ec_key, *request, cwd=directory)


def _leaf(directory: Path, name: str, ca: str, cn: str, sans: str, usage: str) -> None:
    _new_key(directory, name, "-new", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
    (directory / f"{name}.ext").write_text(
        f"subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage={usage}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    signed_by_ca = ("-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial", "-days", "2")
    files = ("-in", f"{name}.csr", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    _openssl("x509", "-req", *files, *signed_by_ca, cwd=directory)


def _ca(directory: Path, name: str) -> None:
    extensions = ("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _new_key(directory, name, "-x509", "-new", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", *extensions)


def make_pki(directory: Path) -> SimpleNamespace:
    """A throwaway CA, a server certificate for localhost/127.0.0.1, a client certificate, and a rogue CA's client."""
    # The `cryptography` package is not a dependency of this project; the openssl command line is on every
    # machine it is built on.
    if shutil.which("openssl") is None:
        pytest.fail("these tests need the openssl command line to make throwaway certificates; install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    _ca(directory, "ca")
    _ca(directory, "rogue-ca")
    _leaf(directory, "server", "ca", "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1", "serverAuth")
    _leaf(directory, "client", "ca", "scraper", "DNS:scraper.example,URI:spiffe://test/scraper", "clientAuth")
    _leaf(directory, "rogue", "rogue-ca", "scraper", "DNS:scraper.example", "clientAuth")
    _openssl(
        "pkey", "-in", "server.key", "-out", "server-encrypted.key", "-aes256", "-passout", "pass:sesame", cwd=directory
    )
    return SimpleNamespace(
        dir=directory,
        **{
            n.replace("-", "_").replace(".", "_"): str(directory / n)
            for n in (
                "ca.crt",
                "server.crt",
                "server.key",
                "client.crt",
                "client.key",
                "rogue.crt",
                "rogue.key",
                "server-encrypted.key",
                "rogue-ca.crt",
            )
        },
        ca=str(directory / "ca.crt"),
    )


def client_context(pki: SimpleNamespace, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def filled_store(n: int = 200) -> Store:
    """A store holding one account with *n* numbers, like a real poll would leave it."""
    numbers = {}
    for i in range(n):
        phone = f"+8613800{i:06d}"
        numbers[phone] = model.TrackedNumber(
            model.PhoneNumber(
                phone,
                verified_name=f"Shop {i}",
                status="CONNECTED",
                quality_rating="GREEN",
                messaging_limit_tier="TIER_10K",
                space_id="cams-1",
            ),
            model.ChangeTimes.first_seen(1700000000.0),
        )
    store = Store()
    store.update(
        AccountSnapshot(
            name="shop",
            provider="alibaba_cams",
            poll_interval=60,
            qps=10,
            actions=("QueryChatappPhoneNumbers",),
            numbers=numbers,
            poll=PollResult(True, 1700000100.0, 0.25, 1700000100.0, {"cams-1": True}),
            requests={"QueryChatappPhoneNumbers": 3},
        )
    )
    return store


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def write(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------
# Valid files
# --------------------------------------------------------------------------


def test_full_config_with_relative_paths(pki, tmp_path, monkeypatch):
    path = write(
        pki.dir,
        f"""
        tls_server_config:
          cert_file: server.crt
          key_file: server.key
          min_version: TLS13
          client_auth_type: RequireAndVerifyClientCert
          client_ca_file: ca.crt
          client_allowed_sans: [scraper.example]
          cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
          prefer_server_cipher_suites: false
          curve_preferences: [X25519, CurveP256]
        http_server_config:
          http2: false
          headers:
            X-Frame-Options: deny
            x-content-type-options: nosniff
            Strict-Transport-Security: max-age=31536000
        basic_auth_users:
          alice: '{HASH}'
          bob: '{HASH.replace("$2b$", "$2y$")}'
        rate_limit: {{interval: 100ms, burst: 20}}
        """,
        "full.yml",
    )
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the file's directory, not the cwd
    wc = load_web_config(str(path))
    assert wc.tls.cert_file == str(pki.dir / "server.crt") and wc.tls.key_file == str(pki.dir / "server.key")
    assert wc.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert wc.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert not wc.ssl_context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert {c["name"] for c in wc.ssl_context.get_ciphers() if c["protocol"] == "TLSv1.2"} == {
        "ECDHE-ECDSA-AES128-GCM-SHA256"
    }
    assert set(wc.users) == {"alice", "bob"}
    assert wc.headers == (
        ("X-Frame-Options", "deny"),
        ("X-Content-Type-Options", "nosniff"),
        ("Strict-Transport-Security", "max-age=31536000"),
    )
    assert wc.rate_limit.interval == pytest.approx(0.1) and wc.rate_limit.burst == 20
    assert any("curve_preferences" in n for n in wc.notes)
    assert any("TLS_AES_128_GCM_SHA256" in n for n in wc.notes)
    assert HASH not in repr(wc) and HASH not in wc.describe()


def test_defaults(pki, tmp_path):
    wc = load_web_config(
        str(
            write(
                tmp_path,
                f"""
        tls_server_config: {{cert_file: {pki.server_crt}, key_file: {pki.server_key}}}
        """,
            )
        )
    )
    ctx = wc.ssl_context
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    assert ctx.verify_mode == ssl.CERT_NONE
    assert ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert wc.users == {} and wc.rate_limit is None and wc.notes == ()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "tls_server_config: {}\nbasic_auth_users: {}\n",
        "rate_limit: {interval: 0, burst: 0}\n",
    ],
)
def test_empty_means_plain_http_without_auth(tmp_path, text):
    wc = load_web_config(str(write(tmp_path, text)))
    assert wc.tls is None and wc.users == {} and wc.rate_limit is None


def test_inline_certificate_and_key(pki):
    cert = Path(pki.server_crt).read_text()
    key = Path(pki.server_key).read_text()
    ca = Path(pki.ca).read_text()
    wc = parse_web_config("", base_dir=str(pki.dir))
    assert wc.tls is None
    import yaml

    text = yaml.safe_dump(
        {
            "tls_server_config": {
                "cert": cert,
                "key": key,
                "client_ca": ca,
                "client_auth_type": "VerifyClientCertIfGiven",
            }
        }
    )
    wc = parse_web_config(text, base_dir=str(pki.dir))
    assert wc.ssl_context.verify_mode == ssl.CERT_OPTIONAL
    assert key not in repr(wc)


def test_lenient_client_auth_types_are_mapped_and_noted(pki, tmp_path):
    wc = load_web_config(
        str(
            write(
                tmp_path,
                f"""
        tls_server_config:
          {{cert_file: {pki.server_crt}, key_file: {pki.server_key}, client_auth_type: RequestClientCert}}
        """,
            )
        )
    )
    assert wc.ssl_context.verify_mode == ssl.CERT_NONE and "RequestClientCert" in wc.notes[0]
    wc = load_web_config(
        str(
            write(
                tmp_path,
                f"""
        tls_server_config: {{cert_file: {pki.server_crt}, key_file: {pki.server_key},
                             client_auth_type: RequireAnyClientCert, client_ca_file: {pki.ca}}}
        """,
            )
        )
    )
    assert wc.ssl_context.verify_mode == ssl.CERT_REQUIRED and "RequireAnyClientCert" in wc.notes[0]


# --------------------------------------------------------------------------
# Invalid files: one line, naming the key, never quoting a secret
# --------------------------------------------------------------------------


def tls_files(cert: str, key: str) -> str:
    """A tls_server_config naming these certificate and key files (placeholders filled in by the test)."""
    return f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"


TLS = tls_files("{crt}", "{key}")

BAD = [
    ("unknown top-level key", "tls_config: {{}}\n", "tls_config: unknown key"),
    ("unknown TLS key", TLS + "  min_verison: TLS12\n", "tls_server_config.min_verison: unknown key"),
    ("key_file missing", "tls_server_config:\n  cert_file: {crt}\n", "tls_server_config.key_file: required"),
    ("cert_file missing", "tls_server_config:\n  key_file: {key}\n", "tls_server_config.cert_file: required"),
    (
        "unreadable cert",
        tls_files("/nonexistent/x.crt", "{key}"),
        "tls_server_config.cert_file: cannot read /nonexistent/x.crt: No such file or directory",
    ),
    ("unreadable key", tls_files("{crt}", "missing.key"), "tls_server_config.key_file: cannot read"),
    ("cert is not a certificate", tls_files("{key}", "{key}"), "tls_server_config.cert_file: no PEM certificate"),
    ("key is not a key", tls_files("{crt}", "{crt}"), "tls_server_config.key_file: no PEM private key"),
    (
        "key does not match",
        tls_files("{crt}", "{client_key}"),
        "tls_server_config.key_file: the private key does not match the certificate",
    ),
    ("encrypted key", tls_files("{crt}", "{enc_key}"), "tls_server_config.key_file: the private key is encrypted"),
    ("bad min_version", TLS + "  min_version: TLS1.2\n", "tls_server_config.min_version: unknown TLS version"),
    (
        "max below min",
        TLS + "  min_version: TLS13\n  max_version: TLS12\n",
        "tls_server_config.max_version: TLS12 is lower",
    ),
    (
        "bad client_auth_type",
        TLS + "  client_auth_type: Always\n",
        "tls_server_config.client_auth_type: unknown client auth type",
    ),
    (
        "mTLS without CA",
        TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
        "tls_server_config.client_ca_file: required when client_auth_type is RequireAndVerifyClientCert",
    ),
    (
        "CA without client auth",
        TLS + "  client_ca_file: {ca}\n",
        "tls_server_config.client_auth_type: client_ca_file is set",
    ),
    ("SANs without client cert", TLS + "  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans: needs"),
    (
        "unknown cipher",
        TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
        "tls_server_config.cipher_suites[0]: unknown",
    ),
    ("unknown curve", TLS + "  curve_preferences: [P256]\n", "tls_server_config.curve_preferences[0]: unknown curve"),
    ("tls not a mapping", "tls_server_config: yes\n", "tls_server_config: must be a mapping"),
    ("cert not a string", tls_files("[a]", "{key}"), "tls_server_config.cert_file: must be a string"),
    ("both cert and cert_file", TLS + "  cert: x\n", "tls_server_config.cert: set either cert or cert_file"),
    ("non-bcrypt hash", "basic_auth_users:\n  alice: {secret}\n", "basic_auth_users.alice: not a bcrypt hash"),
    ("truncated hash", "basic_auth_users:\n  alice: '{short_hash}'\n", "basic_auth_users.alice: not a bcrypt hash"),
    ("user not a string", "basic_auth_users:\n  123: '{hash}'\n", "basic_auth_users[123]: user name must be a string"),
    ("hash not a string", "basic_auth_users:\n  alice: 42\n", "basic_auth_users.alice: must be a bcrypt hash string"),
    (
        "user with colon",
        "basic_auth_users:\n  'a:b': '{hash}'\n",
        "basic_auth_users['a:b']: user name must not contain ':'",
    ),
    ("users not a mapping", "basic_auth_users: ['{hash}']\n", "basic_auth_users: must be a mapping"),
    (
        "duplicate user",
        "basic_auth_users:\n  alice: '{hash}'\n  alice: '{hash}'\n",
        "YAML syntax error: duplicate key 'alice'",
    ),
    ("YAML error", "basic_auth_users:\n  alice: '{hash}\n", "YAML syntax error"),
    ("not a mapping", "- tls_server_config\n", "the web config must be a mapping"),
    (
        "unknown header",
        "http_server_config:\n  headers: {{X-Powered-By: me}}\n",
        "http_server_config.headers.X-Powered-By: unsupported header",
    ),
    (
        "bad X-Frame-Options",
        "http_server_config:\n  headers: {{X-Frame-Options: allow}}\n",
        "http_server_config.headers.X-Frame-Options: invalid value",
    ),
    (
        "header injection",
        'http_server_config:\n  headers: {{Content-Security-Policy: "a\\r\\nSet-Cookie: x"}}\n',
        "http_server_config.headers.Content-Security-Policy: must not contain control characters",
    ),
    ("http2 not a boolean", "http_server_config:\n  http2: maybe\n", "http_server_config.http2: must be true or false"),
    ("bad rate interval", "rate_limit: {{interval: soon, burst: 1}}\n", "rate_limit.interval: malformed duration"),
    ("zero burst", "rate_limit: {{interval: 1s, burst: 0}}\n", "rate_limit.burst: must be at least 1"),
    (
        "huge interval",
        "rate_limit: {{interval: " + "9" * 400 + ", burst: 1}}\n",
        "rate_limit.interval: must be a finite",
    ),
]


@pytest.mark.parametrize("what,text,expected", BAD, ids=[b[0] for b in BAD])
def test_invalid_web_config_is_one_line_naming_the_key(pki, tmp_path, what, text, expected):
    secret = "hunter2-plaintext-password"
    short_hash = HASH[:-5]
    path = write(
        tmp_path,
        text.format(
            crt=pki.server_crt,
            key=pki.server_key,
            client_key=pki.client_key,
            enc_key=pki.server_encrypted_key,
            ca=pki.ca,
            hash=HASH,
            short_hash=short_hash,
            secret=secret,
        ),
    )
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(path))
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert expected in message, message
    key_material = [
        line
        for path in (pki.server_key, pki.client_key, pki.server_encrypted_key, pki.server_crt)
        for line in Path(path).read_text().splitlines()
        if not line.startswith("-----")
    ]
    for forbidden in (HASH, short_hash, secret, *key_material):
        assert forbidden not in message
    assert info.value.__traceback__ is not None  # a plain exception, no chained surprise for the CLI
    assert len(BAD) >= 12


def test_missing_web_config_file(tmp_path):
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(tmp_path / "nope.yml"))
    assert str(info.value) == f"{tmp_path / 'nope.yml'}: cannot read web config file: No such file or directory"


def test_yaml_error_does_not_quote_the_line(tmp_path):
    path = write(tmp_path, f'basic_auth_users:\n  alice: "{HASH}\n  bob: [\n')
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(path))
    assert str(info.value).startswith(f"{path}:") and HASH not in str(info.value)


def test_the_example_file_is_valid_and_its_hash_is_of_the_documented_password(pki):
    example = Path(__file__).resolve().parents[2] / "examples" / "web-config.yml"
    copy = pki.dir / "example-web-config.yml"  # next to a server.crt and server.key
    copy.write_text(example.read_text())
    wc = load_web_config(str(copy))
    assert wc.tls is not None and wc.tls.min_version == "TLS12"
    assert bcrypt.checkpw(b"example-password-change-me", wc.users["prometheus"])
