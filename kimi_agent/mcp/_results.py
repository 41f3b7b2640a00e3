"""An MCP `CallToolResult` → the text of a tool message.

Text blocks are joined with newlines. `structuredContent` is given as compact JSON
(`ensure_ascii=False`) unless the text already carries it (the spec asks servers to repeat
structured results as serialised JSON in a text block; SDK servers wrap a non-object return as
`{"result": value}` beside the plain text). The Kimi models here read text only, so images,
audio and resources are described in a line each: kind, MIME type, size, URI and name, and the
text of an embedded text resource.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["describe_content", "result_text"]


def result_text(content: Sequence[Any], structured: Any) -> str:
    """The tool-message text of a result's `content` blocks and `structuredContent`."""
    texts = [block.text for block in content if getattr(block, "type", None) == "text"]
    others = [describe_content(block) for block in content
              if getattr(block, "type", None) != "text"]
    parts = list(texts)
    if structured is not None and not _carried(texts, structured):
        parts.append(json.dumps(structured, ensure_ascii=False, separators=(",", ":")))
    parts.extend(others)
    return "\n".join(parts)


def _carried(texts: list[str], structured: Any) -> bool:
    """Whether the text blocks already say what `structuredContent` says."""
    if not texts:
        return False
    joined = "\n".join(texts)
    try:
        if json.loads(joined) == structured:
            return True
    except ValueError:
        pass
    if isinstance(structured, dict) and set(structured) == {"result"}:
        value = structured["result"]
        if isinstance(value, str):
            return value == joined
        try:
            return bool(json.loads(joined) == value)
        except ValueError:
            return False
    return False


def describe_content(block: Any) -> str:
    """One line describing a non-text content block for a model that reads text only."""
    kind = getattr(block, "type", None)
    if kind in ("image", "audio"):
        size = _decoded_size(getattr(block, "data", ""))
        mime = getattr(block, "mime_type", None) or "unknown type"
        return f"[{kind}: {mime}, {size} bytes, not shown: this model reads text only]"
    if kind == "resource_link":
        details = _resource_details(block)
        description = getattr(block, "description", None)
        about = f" — {description}" if description else ""
        return f"[resource link: {details}{about}]"
    if kind == "resource":
        resource = getattr(block, "resource", None)
        text = getattr(resource, "text", None)
        details = _resource_details(resource)
        if isinstance(text, str):
            return f"[resource {details}]\n{text}"
        size = _decoded_size(getattr(resource, "blob", ""))
        return f"[resource {details}, {size} bytes of binary data, not shown]"
    return f"[{kind or 'unknown'} content, not shown]"


def _resource_details(resource: Any) -> str:
    fields = [str(getattr(resource, "uri", "") or "")]
    name = getattr(resource, "name", None)
    if name:
        fields.append(f"name {name}")
    mime = getattr(resource, "mime_type", None)
    if mime:
        fields.append(mime)
    size = getattr(resource, "size", None)
    if isinstance(size, int):
        fields.append(f"{size} bytes")
    return ", ".join(f for f in fields if f)


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)
