"""A chat model that plays a fixed script of tool calls, so real deep agents run deterministically."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatResult


class ScriptedModel(GenericFakeChatModel):
    """`create_deep_agent` binds tools; a script needs none of them, so binding returns the model itself.

    `seen` holds the messages of the latest call: what the model was told, tool results included.
    """

    seen: list[BaseMessage] = []

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen = list(messages)
        return super()._generate(messages, *args, **kwargs)

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> ScriptedModel:
        return self


def call(name: str, call_id: str, **args: Any) -> AIMessage:
    """One model turn that makes a single tool call."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


def scripted(turns: Iterable[AIMessage], final: str = "done") -> ScriptedModel:
    return ScriptedModel(messages=iter([*turns, AIMessage(content=final)]))


def tool_results(messages: Sequence[BaseMessage]) -> dict[str, ToolMessage]:
    """The run's tool messages by tool call id."""
    return {message.tool_call_id: message for message in messages if isinstance(message, ToolMessage)}


__all__ = ["ScriptedModel", "call", "scripted", "tool_results"]
