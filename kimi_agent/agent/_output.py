"""Structured output: asking each model for JSON in the way it supports, and checking it.

kimi-k2-6 takes `response_format: json_schema` with the dialect-normalised schema. kimi-k2-5
has only JSON mode, so the schema goes into the instructions and the reply is validated here.
Either way pydantic validates the reply; an invalid one goes back to the model with the
validation errors, within a budget.
"""

from __future__ import annotations

import json
import re
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from kimi_agent.models._profiles import ModelProfile
from kimi_agent.tooling._schema import output_schema

T = TypeVar("T")

_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")
_FENCE_RE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


class OutputSpec(Generic[T]):
    """How one output type is requested and validated; built once per agent."""

    def __init__(self, output_type: type[T]) -> None:
        self.output_type = output_type
        self.adapter: TypeAdapter[T] = TypeAdapter(output_type)
        self.schema = output_schema(output_type)
        name = _NAME_RE.sub("_", getattr(output_type, "__name__", "output"))[:64] or "output"
        self._json_schema_format: dict[str, Any] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": self.schema},
        }
        schema_text = json.dumps(self.schema, ensure_ascii=False, separators=(",", ":"))
        self.instructions = (
            "请只输出一个 JSON 对象，不要输出其他文字，且必须符合下面的 JSON Schema。\n"
            "Answer with one JSON object only, matching this JSON Schema:\n" + schema_text
        )

    def response_format(self, profile: ModelProfile) -> dict[str, Any]:
        if profile.structured_output == "json_schema":
            return self._json_schema_format
        return {"type": "json_object"}

    def needs_instructions(self, profile: ModelProfile) -> bool:
        return profile.structured_output != "json_schema"

    def validate(self, text: str) -> T:
        """The reply parsed into the output type; raises `ValidationError` or `ValueError`."""
        fenced = _FENCE_RE.match(text)
        if fenced:
            text = fenced.group(1)
        return self.adapter.validate_json(text)

    @staticmethod
    def correction(error: Exception) -> str:
        """The message that sends an invalid reply back to the model."""
        if isinstance(error, ValidationError):
            lines = []
            for item in error.errors(include_url=False):
                path = ".".join(str(p) for p in item["loc"]) or "(root)"
                lines.append(f"- {path}: {item['msg']}")
            detail = "\n".join(lines)
        else:
            detail = f"- {error}"
        return (
            "你的回答不符合要求的 JSON 格式，请修正后只输出 JSON。\n"
            "Your answer did not match the required JSON schema:\n" + detail +
            "\nReply again with only the corrected JSON object."
        )
