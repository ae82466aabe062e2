"""Vendor normalizers: one module per vendor, registered by the `vendor_name` values it handles.

`normalize_vendor(vendor_name, vendor_response, event_type)` never raises and has no side effects. A
vendor without a module goes to the generic normalizer; a vendor dict that does not match its
module's schema (drift) is normalized generically with `normalized_status=unknown` and the reason in
`VendorInfo.drift`. A result the module itself could not map (`normalized_status=unknown` for a status
word its STATUS_MAP does not name, or no status word at all) is drift too, with every field it did read
kept. The receiver calls `record_drift` once per accepted event: logged, counted in `DRIFT`.

Adding a vendor: write `schemas/vendors/<vendor>.py` (NAMES, STATUS_MAP, normalize; it is found and
registered automatically), fixtures under `tests/fixtures/vendors/<vendor>/` and
`tests/vendors/test_<vendor>.py` (see docs/vendors.md "Adding a vendor").
"""
from __future__ import annotations

import importlib
import json
import logging
import pkgutil
from collections import Counter
from dataclasses import replace
from typing import Any, Mapping

from marshmallow import ValidationError

from . import generic
from .base import InboundParts, Normalized, NormalizedStatus, Normalizer, S, VendorInfo

log = logging.getLogger("suprhook.vendors")

_NOT_VENDORS = {"base", "generic"}
MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_VENDORS))
VENDORS: dict[str, Normalizer] = {}
DRIFT: Counter[str] = Counter()  # vendor name -> payloads that did not match the vendor's schema


STATUS_MAPS: dict[str, Mapping[str, NormalizedStatus]] = {}  # vendor name -> its module's STATUS_MAP


def register(names: tuple[str, ...], normalizer: Normalizer,
             status_map: Mapping[str, NormalizedStatus] | None = None) -> None:
    for name in names:
        VENDORS[name.lower()] = normalizer
        if status_map is not None:
            STATUS_MAPS[name.lower()] = status_map


for _module in MODULES:
    _mod = importlib.import_module(f"{__name__}.{_module}")
    register(_mod.NAMES, _mod.normalize, getattr(_mod, "STATUS_MAP", None))


def vendor_dict(vendor_name: str | None, vendor_response: Any) -> Any:
    """The vendor's own callback inside `vendor_response: {<vendor_name>: {...}}`."""
    if not isinstance(vendor_response, dict):
        return vendor_response
    if vendor_name in vendor_response:
        return vendor_response[vendor_name]
    lowered = {str(k).lower(): v for k, v in vendor_response.items()}
    if (vendor_name or "").lower() in lowered:
        return lowered[(vendor_name or "").lower()]
    return next(iter(vendor_response.values())) if len(vendor_response) == 1 else vendor_response


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and isinstance(exc.messages, dict):
        return "fields: " + ", ".join(sorted(map(str, exc.messages)))
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def normalize_vendor(vendor_name: str | None, vendor_response: Any, event_type: str) -> Normalized:
    raw = vendor_dict(vendor_name, vendor_response)
    kept = raw if raw is not None else {}
    key = (vendor_name or "").strip().lower()
    normalizer = VENDORS.get(key)
    if normalizer is None or raw is None:
        return generic.safe_normalize(raw, event_type, name=vendor_name)
    try:
        result = normalizer(raw, event_type)
    except Exception as exc:  # drift: the vendor changed its shape, or sent something unexpected
        reason = _reason(exc)
        fallback = generic.safe_normalize(raw, event_type, name=vendor_name)
        return Normalized(replace(fallback.vendor, normalized_status=S.UNKNOWN, drift=reason))
    vendor = replace(result.vendor, name=result.vendor.name or vendor_name, raw=kept)
    if vendor.drift is None and vendor.normalized_status is S.UNKNOWN:
        vendor = replace(vendor, drift=_unknown_status(STATUS_MAPS.get(key), vendor.status))
    return Normalized(_typed(vendor), _typed(result.message) if result.message is not None else None)


def _unknown_status(table: Mapping[str, NormalizedStatus] | None, word: Any) -> str | None:
    """Why a result the module could not map is drift: no status word, or a word its STATUS_MAP does not
    know. A word the vendor documents as unknown (mapped to UNKNOWN on purpose) is not drift."""
    if word is None or word == "":
        return "status: missing"
    key = str(word).strip().lower()
    if table is not None and any(k.lower() == key and v is S.UNKNOWN for k, v in table.items()):
        return None
    return f"status: undocumented word {str(word)[:40]!r}"


_TEXT_FIELDS = {"name", "message_id", "status", "error_code", "error_message", "recipient", "sender",
                "profile_name", "text", "button_payload", "button_text", "reply_to", "from_", "to"}


def _typed(value: Any) -> Any:
    """Text fields as str or None whatever a vendor sent (a number, an object): handlers and filters
    rely on it. Objects and lists become their JSON text rather than disappearing."""
    changes = {}
    for name in _TEXT_FIELDS & set(getattr(value, "__dataclass_fields__", {})):
        item = getattr(value, name)
        if item is not None and not isinstance(item, str):
            changes[name] = json.dumps(item, sort_keys=True, default=str) if isinstance(item, (dict, list)) \
                else str(item)
    return replace(value, **changes) if changes else value


def record_drift(vendor: VendorInfo, event_id: str) -> None:
    """Log and count a vendor dict that did not match its schema (never the payload itself)."""
    name = (vendor.name or "").lower()
    DRIFT[name] += 1
    log.warning("vendor payload drift vendor=%s event_id=%s %s", name, event_id, vendor.drift)


__all__ = ["DRIFT", "InboundParts", "MODULES", "Normalized", "STATUS_MAPS", "VENDORS", "normalize_vendor",
           "record_drift", "register", "vendor_dict"]
