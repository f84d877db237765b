"""Schema primitives of the OpenAPI document, shared by its parts (``openapi``, ``openapi_metrics``,
``openapi_webhooks``): references, nullable and object schemas, JSON responses, error references."""
from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Any], required: tuple[str, ...] | None = None, *, closed: bool = True,
         description: str | None = None) -> dict[str, Any]:
    """An object schema; ``required`` defaults to every property (response records)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": list(properties if required is None else required)}
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def json(schema: dict[str, Any], description: str, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {"application/json": content}}


def error(description: str) -> dict[str, Any]:
    return json(ref("Error"), description)


def errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": f"#/components/responses/{status}"} for status in statuses}
