"""Assemble streamed chunks into the `ChatCompletion` a non-streamed call would have given.

Kimi streams reasoning first, then text and tool calls. Each tool call starts with a header
delta (`index`, `id`, `function.name`) followed by argument fragments carrying only `index`;
calls are assembled by `index`, never by id. Usage arrives in `choices[0].usage` of the finish
chunk (Moonshot) or in a trailing chunk with no choices (OpenAI); both are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kimi_agent.wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    FunctionCall,
    ToolCall,
    Usage,
)


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StreamAssembler:
    """Feeds on chunks; `completion()` gives the assembled reply."""

    id: str = ""
    model: str = ""
    created: int = 0
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None

    def feed(self, chunk: ChatCompletionChunk) -> None:
        if chunk.id and not self.id:
            self.id = chunk.id
        if chunk.model and not self.model:
            self.model = chunk.model
        if chunk.created and not self.created:
            self.created = chunk.created
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.reasoning_content:
                self.reasoning.append(delta.reasoning_content)
            if delta.content:
                self.content.append(delta.content)
            if delta.tool_calls:
                for part in delta.tool_calls:
                    call = self.calls.get(part.index)
                    if call is None:
                        call = self.calls[part.index] = _PartialCall()
                    if part.id:
                        call.id = part.id
                    function = part.function
                    if function is not None:
                        if function.name:
                            call.name = function.name
                        if function.arguments:
                            call.arguments.append(function.arguments)
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
            if choice.usage is not None:
                self.usage = choice.usage

    def message(self) -> AssistantMessage:
        tool_calls = [
            ToolCall(
                id=call.id,
                function=FunctionCall(name=call.name, arguments="".join(call.arguments) or "{}"),
            )
            for _, call in sorted(self.calls.items())
        ]
        return AssistantMessage(
            content="".join(self.content) or None,
            reasoning_content="".join(self.reasoning) or None,
            tool_calls=tool_calls or None,
            model=self.model or None,
        )

    def completion(self) -> ChatCompletion:
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[Choice(message=self.message(), finish_reason=self.finish_reason)],
            usage=self.usage,
        )
