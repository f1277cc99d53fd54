"""The OpenAPI schema as this server answers (checked by schemathesis in ``tests/test_schemathesis.py``).

FastAPI derives most of it from the routes; :func:`conform_openapi` adds what depends on the server's settings
or on its error handlers:

* key security (and the 401/403 answers) on reads only when ``protect_reads`` is on; 401/403 documented on
  every operation that needs a key;
* ``limit`` bounded by ``max_page_size``;
* form (multipart) fields without ``null``: a form cannot send one, an optional field is left out;
* the strategies a request may name, at least one target column of an upload, this server's bounds of a
  search (``n_trials``, ``time_limit``) and that multi-fidelity needs the SMAC optimiser;
* a 422 body as the handlers write it: ``detail`` is the list of validation errors, or one line when the
  route itself refused a value (e.g. a ``limit`` above the server's), plus a one-line ``message``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from metalearn.service.deps import API_KEY_HEADER, READ_KEY_SCHEME
from metalearn.service.settings import Settings

_MESSAGE = {"$ref": "#/components/schemas/Message"}
_AUTH_ERRORS = {
    "401": "Missing API key",
    "403": "Invalid API key, or this access is not configured",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _strategies() -> list[str]:
    from metalearn.metalearning.advisor import Advisor

    return list(Advisor.strategies())


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``prop`` without its ``null`` alternative (a form field; its default stands for null)."""
    options = [p for p in prop.get("anyOf", ()) if p.get("type") != "null"]
    if "anyOf" not in prop or len(options) == len(prop["anyOf"]):
        return prop
    rest = {k: v for k, v in prop.items() if k != "anyOf"}
    if rest.get("default", ...) is None:
        del rest["default"]
    return {**rest, **options[0]} if len(options) == 1 else {**rest, "anyOf": options}


def _with_enum(prop: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``prop`` (a string, or string-or-null, property) allowing only the strings ``names``."""
    if prop.get("type") == "string":
        return {**prop, "enum": names}
    if "anyOf" in prop:
        return {**prop, "anyOf": [_with_enum(p, names) for p in prop["anyOf"]]}
    return prop


def conform_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The OpenAPI schema of ``app`` (built once, then cached in ``app.openapi_schema``)."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemes = components.setdefault("securitySchemes", {})
    schemes.pop(
        READ_KEY_SCHEME, None
    )  # reads are marked with it; they declare the key's scheme when protected
    scheme = next(iter(schemes), "APIKeyHeader")
    schemes.setdefault(scheme, {"type": "apiKey", "in": "header", "name": API_KEY_HEADER})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault(
        "Message",
        {
            "title": "Message",
            "type": "object",
            "properties": {"detail": {"type": "string", "title": "Detail"}},
            "required": ["detail"],
        },
    )
    if "HTTPValidationError" in schemas:
        props = schemas["HTTPValidationError"].setdefault("properties", {})
        props["detail"] = {
            "title": "Detail",
            "anyOf": [
                {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
                {"type": "string"},
            ],
        }
        props["message"] = {"type": "string", "title": "Message"}
    for name, model in schemas.items():
        if name != "RecommendationRequest" and not name.startswith("Body_"):  # requests only
            continue
        props = model.get("properties", {})
        if name.startswith("Body_"):  # a form has no null: an optional field is left out instead
            for key, prop in list(props.items()):
                props[key] = _not_null(prop)
        bounds = {"n_trials": settings.max_search_trials, "time_limit": settings.max_search_seconds}
        for key, most in bounds.items():  # this server's bounds of a search
            if key in props and "maximum" in props[key]:
                props[key]["maximum"] = min(props[key]["maximum"], most)
        if "multi_fidelity" in props and "optimizer" in props:  # SearchSettings: multi-fidelity needs SMAC
            model["not"] = {
                "required": ["multi_fidelity", "optimizer"],
                "properties": {"multi_fidelity": {"const": True}, "optimizer": {"const": "random"}},
            }
        if "strategy" in props:  # any other name is refused (422): the schema names the server's strategies
            props["strategy"] = _with_enum(props["strategy"], _strategies())
        if "target" in props and props["target"].get("type") == "array":  # uploads: one target at least
            props["target"].update(minItems=1, items={"type": "string", "minLength": 1})
    max_limit = min(settings.max_page_size, 10_000)
    for item in schema.get("paths", {}).values():
        for op in item.values():
            for param in op.get("parameters", []):
                if param.get("in") == "query" and param.get("name") == "limit":
                    param["schema"]["maximum"] = max_limit
            declared = op.pop("security", [])
            security = [s for s in declared if READ_KEY_SCHEME not in s]
            if settings.protect_reads and len(security) < len(declared):  # a read, and reads need the key
                security = [{scheme: []}]
            if security:
                op["security"] = security
            if op.get("security"):
                responses = op.setdefault("responses", {})
                for code, description in _AUTH_ERRORS.items():
                    responses.setdefault(code, _json(_MESSAGE, description))
    return schema


def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{[^}/]+\\}", "[^/]+", re.escape(path)) + "$")


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI schema of ``app`` declares at ``path`` (for the ``Allow`` of a 405)."""
    methods = {
        method.upper()
        for template, item in app.openapi().get("paths", {}).items()
        if _template(template).match(path)
        for method in item
    }
    return sorted(methods)
