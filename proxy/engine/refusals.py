"""Why the engine refuses a request before its stream starts: one exception type per reason.

A refusal carries its wire `code` and a message for a person, never an HTTP status: each transport
maps the types to its own wire (an HTTP status, a WebSocket `error` frame, OpenAI's error shape) in
one table. A refused request changes nothing.
"""

from __future__ import annotations

from typing import ClassVar


class Refused(Exception):
    """Base of every refusal; `retry_after` (seconds) when trying again later may succeed."""

    code: ClassVar[str]

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class UnknownAgent(Refused):
    code = "unknown_agent"

    def __init__(self, agent: str) -> None:
        super().__init__(f"no agent named {agent!r}; see GET /v1/agents")
        self.agent = agent


class InvalidPrompt(Refused):
    code = "invalid_prompt"


class InvalidMessages(Refused):
    """The message list of an OpenAI-style request cannot be run (e.g. it does not end with a user)."""

    code = "invalid_messages"


class InvalidField(Refused):
    """A request field the agent cannot honour (a `response_format` beside its own output schema,
    a schema that is not one); `field` names it, as the client sent it."""

    code = "invalid_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidConversationId(Refused):
    code = "invalid_conversation_id"


class PromptTooLong(Refused):
    code = "prompt_too_long"


class UnknownConversation(Refused):
    """No such conversation (or it expired, or belongs to someone else: existence is not revealed)."""

    code = "unknown_conversation"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"no conversation {conversation_id!r} (it may have expired)")


class UnknownStream(Refused):
    """No stream to resume: never existed, expired, or belongs to someone else."""

    code = "unknown_stream"

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no stream {stream_id!r} to resume (it may have expired)")


class Overloaded(Refused):
    code = "overloaded"


class Draining(Refused):
    code = "draining"


class RateLimited(Refused):
    code = "rate_limited"


class ForbiddenAgent(Refused):
    code = "forbidden_agent"


class StateUnavailable(Refused):
    """The shared state (e.g. Redis) cannot be reached; the request may succeed later."""

    code = "state_unavailable"
