"""``/docs/api``: the OpenAPI document (``viewer.api.spec``) as a page, rendered on the server.

The page is for logged-in people (session login, like every page); the JSON document itself is
under /api/ and needs a token. No script: operations fold open with <details>.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, render_template, request

from .spec import build_spec

bp = Blueprint("docs", __name__, url_prefix="/docs")

Label = list[tuple[str, str | None]]  # pieces of a type's name: (text, schema to link to or None)


def type_label(schema: dict[str, Any] | None) -> Label:
    """A short name for a schema: Model, array of Token, string | null, one of csv, parquet ..."""
    if not schema:
        return [("any", None)]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [(name, name)]
    for key, glue in (("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")):
        if key in schema and "type" not in schema and "properties" not in schema:
            out: Label = []
            for i, part in enumerate(schema[key]):
                out += ([(glue, None)] if i else []) + type_label(part)
            return out
    if "enum" in schema:
        return [("one of " + ", ".join("null" if v is None else str(v) for v in schema["enum"]), None)]
    types = schema.get("type", "any")
    out = []
    for i, kind in enumerate(types if isinstance(types, list) else [types]):
        if i:
            out.append((" | ", None))
        if kind == "array":
            out += [("array of ", None)] + type_label(schema.get("items"))
        elif kind == "string" and schema.get("format") == "binary":
            out.append(("file", None))
        elif kind == "string" and schema.get("format"):
            out.append((f"string ({schema['format']})", None))
        else:
            out.append((kind, None))
    return out


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    if "pattern" in schema:
        parts.append(f"pattern {schema['pattern']}")
    for key, text in (("minimum", "≥ {}"), ("minLength", "at least {} characters"), ("minItems", "at least {} items"),
                      ("maxItems", "at most {} items"), ("default", "default {}")):
        if key in schema:
            parts.append(text.format(json.dumps(schema[key])))
    return f"({'; '.join(parts)})" if parts else ""


def _describe(schema: dict[str, Any], description: str = "") -> str:
    return " ".join(t for t in (description or schema.get("description", ""), _constraints(schema)) if t)


def pretty(value: Any, indent: int = 0, width: int = 72) -> str:
    """JSON that puts a short list or object on one line (rows of numbers stay readable)."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(flat) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {pretty(v, indent + 2, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + pretty(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


@dataclass
class Field:
    name: str
    where: str
    required: bool
    type: Label
    description: str


@dataclass
class Body:
    media_type: str
    type: Label
    example: str | None


@dataclass
class Reply:
    status: str
    description: str
    media_types: list[tuple[str, Label]]


@dataclass
class Endpoint:
    method: str
    path: str
    summary: str
    description: str
    access: str
    anchor: str
    params: list[Field] = field(default_factory=list)
    bodies: list[Body] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    curl: str = ""


@dataclass
class Section:
    tag: str
    description: str
    endpoints: list[Endpoint] = field(default_factory=list)


@dataclass
class SchemaDoc:
    name: str
    description: str
    type: Label
    fields: list[Field]


def _example(content: dict[str, Any], schemas: dict[str, Any]) -> tuple[str | None, Any]:
    """The media type's example, or the first of its schema's examples."""
    schema = content.get("schema") or {}
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    if "example" in content:
        value = content["example"]
    elif schema.get("examples"):
        value = schema["examples"][0]
    else:
        return None, None
    return (value if isinstance(value, str) else pretty(value)), value


def _access(operation: dict[str, Any]) -> str:
    security = operation.get("security")
    if security == []:
        return "public"
    if security and {} in security:
        return "token, or none when an admin opened the model to anonymous predictions"
    return "token"


def _curl(method: str, path: str, operation: dict[str, Any], base: str, schemas: dict[str, Any]) -> str:
    """A command line for the operation, with the path's examples filled in."""
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", str(param.get("example", f"<{param['name']}>")))
    parts = ["curl"] + ([f"-X {method.upper()}"] if method != "get" else [])
    if _access(operation) != "public":
        parts.append('-H "Authorization: Bearer $TOKEN"')
    content = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content:
        props = schemas[content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]]["properties"]
        parts += [f"-F {name}=@file" if spec.get("format") == "binary" else f"-F {name}=..."
                  for name, spec in props.items()]
    elif "application/json" in content:
        _text, value = _example(content["application/json"], schemas)
        parts += ["-H 'Content-Type: application/json'",
                  "-d '" + json.dumps(value, separators=(",", ":")).replace("'", "'\\''") + "'"]
    return " ".join(parts + [base.rstrip("/") + path])


def _schema_docs(schemas: dict[str, Any]) -> list[SchemaDoc]:
    out = []
    for name, schema in schemas.items():
        parts = schema.get("allOf", [schema])
        fields: list[Field] = []
        for part in parts:
            required = set(part.get("required", []))
            for prop, spec in part.get("properties", {}).items():
                fields.append(Field(prop, "", prop in required, type_label(spec), _describe(spec)))
        if not fields:
            label = type_label({k: v for k, v in schema.items() if k != "properties"})
        else:  # allOf: the schemas it extends
            label = type_label({"allOf": [p for p in parts if "$ref" in p]}) if "allOf" in schema else []
        out.append(SchemaDoc(name, schema.get("description", ""), label, fields))
    return out


def document_view(spec: dict[str, Any], base: str) -> tuple[list[Section], list[SchemaDoc]]:
    sections = {t["name"]: Section(t["name"], t.get("description", "")) for t in spec.get("tags", [])}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            tag = operation.get("tags", ["Other"])[0]
            section = sections.setdefault(tag, Section(tag, ""))
            endpoint = Endpoint(method.upper(), path, operation.get("summary", ""),
                                operation.get("description", ""), _access(operation), operation["operationId"],
                                curl=_curl(method, path, operation, base, spec["components"]["schemas"]))
            for param in operation.get("parameters", []):
                endpoint.params.append(Field(param["name"], param["in"], param.get("required", False),
                                             type_label(param["schema"]),
                                             _describe(param["schema"], param.get("description", ""))))
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                endpoint.bodies.append(Body(media_type, type_label(content.get("schema")),
                                            _example(content, spec["components"]["schemas"])[0]))
            for status, reply in operation["responses"].items():
                media = [(m, type_label(c.get("schema"))) for m, c in reply.get("content", {}).items()]
                endpoint.replies.append(Reply(status, reply["description"], media))
            section.endpoints.append(endpoint)
    return [s for s in sections.values() if s.endpoints], _schema_docs(spec["components"]["schemas"])


@bp.get("/api")
def api():
    spec = build_spec()
    sections, schemas = document_view(spec, request.host_url)
    return render_template("api_docs.html", info=spec["info"], sections=sections, schemas=schemas)
