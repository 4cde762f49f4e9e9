"""Parsing and loading scenarios from mappings, YAML text, files and the built-in scenarios."""

from __future__ import annotations

import re
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

from exporter.yamlfile import YAMLProblem, load_yaml  # the exporter's neutral YAML loader, nothing else

from .model import Credential, Fault, Number, Scenario, Space, Waba, _validate_fault
from .timeline import _parse_timeline
from .validation import (
    ScenarioError,
    _attributes,
    _bool,
    _check_keys,
    _int,
    _join,
    _json_like,
    _list,
    _mapping,
    _string,
    _type_name,
)

# ---------------------------------------------------------------------------
# parsing

_TOP_KEYS = ("name", "description", "credentials", "spaces", "faults")


_CRED_KEYS = (
    "access_key_id",
    "access_key_secret",
    "qps",
    "action_qps",
    "permissions",
    "enabled",
    "account",
    "security_token",
)


_SPACE_KEYS = ("cust_space_id", "space_id", "access_key_id", "isv_code", "default", "waba", "numbers", "extra")


_FAULT_KEYS = (
    "kind",
    "code",
    "http_status",
    "message",
    "retry_after",
    "http200",
    "seconds",
    "access_key_id",
    "action",
    "space_id",
    "phone_number",
    "from",
    "until",
    "count",
    "probability",
    "megabytes",
)


_NUMBER_RESERVED = ("phone_number", "timeline", "repeat_every")


_WABA_RESERVED = ("timeline", "repeat_every")


def _parse_credential(raw: Any, path: str) -> Credential:
    raw = _mapping(raw, path)
    _check_keys(raw, _CRED_KEYS, path)
    ak = _string(raw.get("access_key_id"), _join(path, "access_key_id"))
    secret = _string(raw.get("access_key_secret"), _join(path, "access_key_secret"))
    qps = _int(raw.get("qps", 10), _join(path, "qps"), minimum=1)
    action_qps: dict[str, int] = {}
    apath = _join(path, "action_qps")
    for action, limit in _mapping(raw.get("action_qps") or {}, apath).items():
        action_qps[action] = _int(limit, _join(apath, action), minimum=1, nullable=False)
    ppath = _join(path, "permissions")
    perms_raw = raw.get("permissions", "allowed")
    if perms_raw in ("allowed", "denied"):
        permissions: str | frozenset[str] = perms_raw
    elif isinstance(perms_raw, list):
        permissions = frozenset(_string(a, _join(ppath, i)) for i, a in enumerate(perms_raw))
    else:
        raise ScenarioError(ppath, f"expected 'allowed', 'denied' or a list of actions, got {perms_raw!r}")
    return Credential(
        access_key_id=ak,
        access_key_secret=secret,
        qps=qps,
        action_qps=action_qps,
        permissions=permissions,
        enabled=_bool(raw.get("enabled"), _join(path, "enabled"), True),
        account=_string(raw.get("account"), _join(path, "account"), required=False),
        security_token=_string(raw.get("security_token"), _join(path, "security_token"), required=False),
    )


def _parse_number(raw: Any, path: str) -> Number:
    raw = _mapping(raw, path)
    phone = _string(raw.get("phone_number"), _join(path, "phone_number"))
    attrs = _attributes(raw, _NUMBER_RESERVED, path)
    for key in ("id",):
        if key in attrs:
            _string(attrs[key], _join(path, key), required=False)
    return Number(phone_number=phone, attributes=attrs, timeline=_parse_timeline(raw, path, _NUMBER_RESERVED))


def _parse_waba(raw: Any, path: str) -> Waba | None:
    if raw is None:
        return None
    raw = _mapping(raw, path)
    return Waba(attributes=_attributes(raw, _WABA_RESERVED, path), timeline=_parse_timeline(raw, path, _WABA_RESERVED))


def _parse_space(raw: Any, path: str) -> Space:
    raw = _mapping(raw, path)
    _check_keys(raw, _SPACE_KEYS, path)
    if "cust_space_id" in raw and "space_id" in raw:
        raise ScenarioError(_join(path, "space_id"), "give either cust_space_id or space_id, not both")
    id_key = "space_id" if "space_id" in raw else "cust_space_id"
    space_id = _string(raw.get(id_key), _join(path, id_key))
    npath = _join(path, "numbers")
    numbers = [_parse_number(item, _join(npath, i)) for i, item in enumerate(_list(raw.get("numbers"), npath))]
    seen: dict[str, int] = {}
    for i, number in enumerate(numbers):
        _check_unique(seen, number.phone_number, npath, i, "phone_number", "phone number")
    extra_path = _join(path, "extra")
    return Space(
        space_id=space_id,
        access_key_id=_string(raw.get("access_key_id"), _join(path, "access_key_id")),
        isv_code=_string(raw.get("isv_code"), _join(path, "isv_code"), required=False),
        waba=_parse_waba(raw.get("waba"), _join(path, "waba")),
        numbers=numbers,
        default=_bool(raw.get("default"), _join(path, "default"), False),
        extra=dict(_json_like(_mapping(raw.get("extra") or {}, extra_path), extra_path)),
    )


def _check_unique(seen: dict[str, int], value: str, items: str, i: int, field: str, what: str) -> None:
    """Record ``items[i]``'s ``value`` in ``seen``; a value already there is an error at ``items[i].field``."""
    if value in seen:
        listed = items.rsplit(".", 1)[-1]
        raise ScenarioError(_join(_join(items, i), field), f"duplicate {what} {value!r} (also {listed}[{seen[value]}])")
    seen[value] = i


def _parse_fault(raw: Any, path: str) -> Fault:
    raw = _mapping(raw, path)
    _check_keys(raw, _FAULT_KEYS, path)
    if "kind" not in raw:
        raise ScenarioError(_join(path, "kind"), "is required")
    kwargs = {k: v for k, v in raw.items() if k != "from"}
    if "from" in raw:
        kwargs["from_"] = raw["from"]
    kwargs.setdefault("http200", False)
    if kwargs["http200"] is None:
        kwargs["http200"] = False
    fault = Fault.__new__(Fault)
    for f in fields(Fault):
        setattr(fault, f.name, kwargs.get(f.name, f.default))
    if not isinstance(fault.kind, str):
        raise ScenarioError(_join(path, "kind"), f"expected a string, got {_type_name(fault.kind)}")
    _validate_fault(fault, path)
    return fault


def parse_scenario(data: Any, source: str | None = None) -> Scenario:
    """Build a validated :class:`Scenario` from already-decoded YAML/JSON data."""
    try:
        return _parse_scenario(data)
    except ScenarioError as exc:
        if source and not exc.source:
            raise ScenarioError(exc.path, exc.message, source) from None
        raise


def _parse_scenario(data: Any) -> Scenario:
    if data is None:
        data = {}
    data = _mapping(data, "")
    _check_keys(data, _TOP_KEYS, "")
    cpath, spath, fpath = "credentials", "spaces", "faults"
    credentials = [_parse_credential(c, _join(cpath, i)) for i, c in enumerate(_list(data.get(cpath), cpath))]
    by_ak: dict[str, int] = {}
    for i, cred in enumerate(credentials):
        _check_unique(by_ak, cred.access_key_id, cpath, i, "access_key_id", "access key")
    spaces = [_parse_space(s, _join(spath, i)) for i, s in enumerate(_list(data.get(spath), spath))]
    by_space: dict[str, int] = {}
    for i, space in enumerate(spaces):
        _check_unique(by_space, space.space_id, spath, i, "cust_space_id", "space")
        if space.access_key_id not in by_ak:
            raise ScenarioError(
                _join(_join(spath, i), "access_key_id"), f"{space.access_key_id!r} is not one of the credentials"
            )
    faults = [_parse_fault(f, _join(fpath, i)) for i, f in enumerate(_list(data.get(fpath), fpath))]
    return Scenario(
        credentials=credentials,
        spaces=spaces,
        faults=faults,
        name=_string(data.get("name"), "name", required=False, allow_empty=True) or "",
        description=_string(data.get("description"), "description", required=False, allow_empty=True) or "",
    )


def loads_scenario(text: str, source: str | None = None) -> Scenario:
    """Parse scenario YAML text."""
    try:
        data = load_yaml(text, source or "<scenario>")
    except YAMLProblem as exc:
        raise ScenarioError("", f"invalid YAML: {exc}", source) from None
    return parse_scenario(data, source)


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError("", f"cannot read scenario file: {exc.strerror or exc}", str(path)) from None
    return loads_scenario(text, str(path))


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``emulators/scenarios``."""
    folder = resources.files("emulators").joinpath("scenarios")
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_builtin_scenario(name: str = "demo") -> Scenario:
    """Load a built-in scenario by name (e.g. ``"demo"``)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name or ""):
        raise ScenarioError("", f"invalid built-in scenario name {name!r}")
    entry = resources.files("emulators").joinpath("scenarios", f"{name}.yaml")
    if not entry.is_file():
        raise ScenarioError("", f"no built-in scenario {name!r} (available: {', '.join(builtin_scenarios())})")
    return loads_scenario(entry.read_text(encoding="utf-8"), f"builtin:{name}")
