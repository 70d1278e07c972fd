"""Schemathesis hooks for orderd's contract test (tests/api/openapi.rs).

A client_order_id is unique per account and an Idempotency-Key binds one
request body, so a schema-valid order that reuses either is refused by
state, not by its shape (422, as Alpaca does). Generated data reuses short
strings all the time ("0", "A"); to keep `positive_data_acceptance` about
the schema, a *positive* case that would reuse one gets a fresh value.

Likewise the symbols a venue lists are reference data, not grammar: they
change as it lists and delists, so the document gives the symbol's shape
and the server refuses one it does not list (422 asset not found). A
positive case's symbol is replaced by one of the listed symbols
(SCHEMATHESIS_LISTED_SYMBOLS, comma-separated), chosen by the generated
one so the choice varies.

Negative cases are never touched: their invalid value is the point.
"""

import hashlib
import os
import uuid

import schemathesis
from schemathesis.generation import GenerationMode

SEEN_CLIENT_ORDER_IDS = set()
SEEN_IDEMPOTENCY_KEYS = set()


def _positive(case):
    meta = getattr(case, "meta", None)
    if meta is None or getattr(meta, "generation", None) is None:
        return True
    return meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.operation.method.upper() != "POST" or case.operation.path != "/v2/orders":
        return
    if not _positive(case):
        return
    body = case.body
    listed = [s for s in os.environ.get("SCHEMATHESIS_LISTED_SYMBOLS", "").split(",") if s]
    if listed and isinstance(body, dict) and isinstance(body.get("symbol"), str):
        digest = hashlib.sha256(body["symbol"].encode()).digest()
        body["symbol"] = listed[digest[0] % len(listed)]
    if isinstance(body, dict) and isinstance(body.get("client_order_id"), str):
        if body["client_order_id"] in SEEN_CLIENT_ORDER_IDS:
            body["client_order_id"] = uuid.uuid4().hex
        SEEN_CLIENT_ORDER_IDS.add(body["client_order_id"])
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            if headers[name] in SEEN_IDEMPOTENCY_KEYS:
                headers[name] = uuid.uuid4().hex
            SEEN_IDEMPOTENCY_KEYS.add(headers[name])


def _remember_client_order_ids(value):
    if isinstance(value, dict):
        if isinstance(value.get("client_order_id"), str):
            SEEN_CLIENT_ORDER_IDS.add(value["client_order_id"])
    elif isinstance(value, list):
        for item in value:
            _remember_client_order_ids(item)


@schemathesis.hook
def after_call(context, case, response):
    """Orders created without a client_order_id get one: remember those too
    (the stateful phase feeds response fields into later requests)."""
    try:
        _remember_client_order_ids(response.json())
    except Exception:
        pass
