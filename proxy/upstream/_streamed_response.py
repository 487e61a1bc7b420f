"""`LeanStreamedResponse`: pydantic-ai's `OpenAIStreamedResponse`, fed chunk dicts instead of SDK objects.

It overrides only the per-chunk loop (`_get_event_iterator`), which reads the same fields in the same
order as pydantic-ai's (timestamp, usage, id, model, service tier, moderation, finish reason, refusal,
logprobs, thinking fields, text with thinking tags, tool call deltas, annotations) with dict lookups,
and hands them to the same parts manager and the same helpers it inherits (`_advance_part_boundary`,
`_map_finish_reason`, `_missing_finish_reason`, `_flush_pending_chat_annotations`, `_map_usage`), so
the events, the final `ModelResponse`, its usage, finish reason and `provider_details` are the same.
Only a chunk that carries usage (the last one) or moderation is turned into the SDK's object, once.

A consumer that only wants the answer's text (the engine's direct path) sets `plain_text_events`
before iterating. Then, from the first chunk on, each chunk that only adds text to the answer (no
finish reason, usage, reasoning, refusal, logprobs, annotations or tool calls; text that is not a
thinking tag and holds no zero-width character, so special-token restoration leaves it as it is)
goes into a `PlainText` event, one for the chunks that were read together, without the parts
manager and the restorer, whose per-delta copies were a fifth of the proxy's CPU per stream
(docs/performance.md), and without the generators pydantic-ai's `__aiter__` wraps around every
event. The text is recorded in the parts manager and the restorer as one piece when the first other
chunk arrives, or at the end; that chunk and everything after it take the full mapping. The
`ModelResponse` is the same either way (`tests/upstream/test_scripted.py` compares them).
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from openai.types.chat import ChatCompletionChunk
from pydantic_ai._utils import number_to_datetime
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import ModelResponseStreamEvent, PartStartEvent, TextPart, ThinkingPart
from pydantic_ai.models.openai import OpenAIStreamedResponse
from pydantic_ai.models.openai._chat_completions import split_content_parts
from pydantic_ai.profiles import DEFAULT_THINKING_TAGS

from proxy.plain_text import PlainText
from proxy.upstream._stream import ChunkStream


def _map_logprobs(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic-ai's `map_logprobs`, for the dicts of a chunk's `logprobs.content`."""
    return [
        {
            "token": lp.get("token"),
            "bytes": lp.get("bytes"),
            "logprob": lp.get("logprob"),
            "top_logprobs": [
                {"token": t.get("token"), "bytes": t.get("bytes"), "logprob": t.get("logprob")}
                for t in lp.get("top_logprobs") or ()
            ],
        }
        for lp in content
    ]


_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
"""What special-token restoration removes (pydantic-ai `_special_tokens`): text without it is unchanged."""


@dataclass
class LeanStreamedResponse(OpenAIStreamedResponse):
    """A streamed Chat Completion read from a `ChunkStream`, starting with its already read first chunk."""

    _stream: ChunkStream | None = None
    _first_chunk: dict[str, Any] | None = None
    _text_pieces: list[str] = field(default_factory=list[str], init=False)
    plain_text_events: bool = field(default=False, init=False)
    """Yield `PlainText` for chunks that only add text (see the module docstring); set before iterating."""
    _events: AsyncIterator[ModelResponseStreamEvent] | None = field(default=None, init=False)

    async def close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def get_stream_cancel_errors(self) -> tuple[type[BaseException], ...]:
        return (*super().get_stream_cancel_errors(), aiohttp.ClientError)

    def __aiter__(self) -> AsyncIterator[ModelResponseStreamEvent]:
        if self._events is None:
            plain = (
                self.plain_text_events
                and self._request_deadline is None
                and not self._model_profile.get("ignore_streamed_leading_whitespace")
            )
            self._events = self._plain_text_first() if plain else super().__aiter__()
        return self._events

    async def _plain_text_first(self) -> AsyncIterator[ModelResponseStreamEvent]:
        """`PlainText` for the chunks that only add text (one for those read together), without the
        four generators pydantic-ai's `__aiter__` puts around each event (special-token restoration,
        final result, part ends, cancel guard: none of them changes a `PlainText`); from the first
        other chunk on, the events of pydantic-ai's `__aiter__`."""
        assert self._stream is not None
        profile = self._model_profile
        thinking_fields = tuple(
            name
            for name in (profile.get("openai_chat_thinking_field"), "reasoning", "reasoning_content")
            if name
        )
        tags = profile.get("thinking_tags", DEFAULT_THINKING_TAGS)
        think_start = tags[0] if tags else None
        stream = self._stream
        texts: list[str] = []
        run: list[str] = []
        chunk = self._first_chunk
        try:
            while chunk is not None:
                text = self._plain_text(chunk, thinking_fields, think_start)
                if text is None:
                    break
                if text:
                    run.append(text)
                # The chunks read with this one go up as one event: a layer above costs the same
                # per event whatever it holds (docs/performance.md). The first text goes up alone,
                # before the rest of its read is decoded.
                chunk = stream.next_ready() if texts else None
                if chunk is None:
                    if run:
                        yield self._plain_run(run, texts)  # type: ignore[misc]
                        run = []
                    chunk = await anext(stream, None)
            if run:
                yield self._plain_run(run, texts)  # type: ignore[misc]
        except self.get_stream_cancel_errors():  # as pydantic-ai's cancel guard does
            if not self.cancelled:
                raise
            return
        except ModelAPIError as exc:
            if not (self.cancelled and isinstance(exc.__cause__, self.get_stream_cancel_errors())):
                raise
            return
        finally:
            self._record_text(texts)
        self._first_chunk = chunk
        async for event in super().__aiter__():
            yield event

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        assert self._stream is not None
        first, self._first_chunk = self._first_chunk, None
        if first is not None:  # None: the plain text took every chunk
            for event in self._map_chunk(first):
                yield event
        async for chunk in self._stream:
            for event in self._map_chunk(chunk):
                yield event

        if self._refusal_text:
            self.provider_details = {**(self.provider_details or {}), "refusal": self._refusal_text}
        if self._logprobs:
            self.provider_details = {**(self.provider_details or {}), "logprobs": self._logprobs}
        if (
            self._model_profile.get("openai_chat_streaming_requires_finish_reason", False)
            and not self._has_finish_reason
            and not self.cancelled
        ):
            raise ModelAPIError(
                model_name=self.model_name, message="Streamed response ended without a `finish_reason`"
            )
        if not self._has_finish_reason and not self._has_refusal and not self.cancelled:
            self.finish_reason = self._missing_finish_reason()  # some upstreams never send one
        if self._pending_raw_annotations:
            self._raw_text_content = "".join(self._text_pieces)
            for event in self._flush_pending_chat_annotations():
                yield event

    def _plain_run(self, run: list[str], texts: list[str]) -> PlainText:
        if self._first_chunk_monotonic is None:
            self._first_chunk_monotonic = time.perf_counter()
        texts.extend(run)
        return PlainText(run)

    def _plain_text(
        self, chunk: dict[str, Any], thinking_fields: tuple[str, ...], think_start: str | None
    ) -> str | None:
        """The text `chunk` adds ("" for none), after its bookkeeping, if that is all it does; else None."""
        if chunk.get("usage") is not None or chunk.get("moderation"):
            return None
        choices = chunk.get("choices")
        if not choices:
            return None
        choice = choices[0]
        if choice.get("finish_reason") or choice.get("logprobs"):
            return None
        text = ""
        delta = choice.get("delta")
        if delta is not None:
            if delta.get("refusal") or delta.get("tool_calls") or isinstance(delta.get("annotations"), list):
                return None
            for name in thinking_fields:
                if delta.get(name):
                    return None
            content = delta.get("content")
            if content is not None and content != "":
                if type(content) is not str or content == think_start or _ZERO_WIDTH.search(content):
                    return None
                text = content
        self._note_chunk(chunk)
        return text

    def _record_text(self, texts: list[str]) -> None:
        """Record text sent as `PlainText` in the parts manager and restorer, as the full mapping does."""
        if not texts:
            return
        text = "".join(texts)
        self._text_pieces.append(text)
        restorer = self._parts_manager.special_token_restorer
        # No thinking tags: each piece was checked, and together they are one text part's content.
        for event in self._parts_manager.handle_text_delta(
            vendor_part_id=("content", self._content_generation), content=text
        ):
            if isinstance(event, PartStartEvent):
                self._advance_part_boundary("content")
            if restorer is not None:
                restorer.restore(event)  # keeps its look-behind for a joiner in the next chunk

    def _note_chunk(self, chunk: dict[str, Any]) -> None:
        """Record the chunk's response-level fields: timestamp, usage, ids, moderation, service tier."""
        if self._provider_timestamp is None and (created := chunk.get("created")):
            self._provider_timestamp = number_to_datetime(created)
            self.provider_details = {**(self.provider_details or {}), "timestamp": self._provider_timestamp}
        usage = chunk.get("usage")
        moderation = chunk.get("moderation")
        if usage is not None or moderation:
            # `_map_usage` reads only the usage: the choices need not become SDK objects too.
            sdk_chunk = (
                ChatCompletionChunk.construct(**chunk)
                if moderation
                else ChatCompletionChunk.construct(usage=usage)
            )
            if usage is not None:
                cumulative = bool(
                    self._model_settings and self._model_settings.get("openai_continuous_usage_stats")
                )
                self._add_usage(self._map_usage(sdk_chunk), reported=True, cumulative=cumulative)
        if chunk_id := chunk.get("id"):
            self.provider_response_id = chunk_id
        if model := chunk.get("model"):
            self._model_name = model
        if moderation and sdk_chunk.moderation:
            self.provider_details = {
                **(self.provider_details or {}),
                "moderation": sdk_chunk.moderation.model_dump(),
            }
        if service_tier := chunk.get("service_tier"):
            self.provider_details = {**(self.provider_details or {}), "service_tier": service_tier}

    def _map_chunk(self, chunk: dict[str, Any]) -> Iterator[ModelResponseStreamEvent]:
        self._note_chunk(chunk)
        choices = chunk.get("choices")
        if not choices:
            return
        choice = choices[0]
        raw_finish_reason = choice.get("finish_reason")
        if raw_finish_reason:
            self._has_finish_reason = True
        delta = choice.get("delta")
        if delta is None:
            return

        if refusal := delta.get("refusal"):
            self._has_refusal = True
            self.finish_reason = "content_filter"
            self._refusal_text += refusal
            return

        if raw_finish_reason and not self._has_refusal:
            self.finish_reason = self._map_finish_reason(raw_finish_reason)
        logprobs = choice.get("logprobs")
        if logprobs and logprobs.get("content"):
            self._logprobs.extend(_map_logprobs(logprobs["content"]))
        if raw_finish_reason and not self._has_refusal:
            self.provider_details = {**(self.provider_details or {}), "finish_reason": raw_finish_reason}

        yield from self._map_thinking(delta)
        yield from self._map_text(delta)
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            yield from self._map_tool_calls(tool_calls)

    def _map_thinking(self, delta: dict[str, Any]) -> Iterator[ModelResponseStreamEvent]:
        custom_field = self._model_profile.get("openai_chat_thinking_field", None)
        for field_name in (custom_field, "reasoning", "reasoning_content"):
            if not field_name:
                continue
            reasoning = delta.get(field_name)
            if not reasoning:
                continue
            if not isinstance(reasoning, str):
                warnings.warn(
                    f"Unexpected non-string value for {field_name!r}: {type(reasoning).__name__}.",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            for event in self._parts_manager.handle_thinking_delta(
                vendor_part_id=("reasoning", field_name, self._reasoning_generation),
                id=field_name,
                content=reasoning,
                provider_name=self.provider_name,
            ):
                if isinstance(event, PartStartEvent):
                    self._advance_part_boundary("reasoning")
                yield event
            break

    def _map_text(self, delta: dict[str, Any]) -> Iterator[ModelResponseStreamEvent]:
        content = delta.get("content")
        if content is not None and type(content) is not str:
            content, _ = split_content_parts(content)  # some servers send a list of parts
        if isinstance(content, str) and content:
            self._text_pieces.append(content)
            profile = self._model_profile
            emitted = False
            for event in self._parts_manager.handle_text_delta(
                vendor_part_id=("content", self._content_generation),
                content=content,
                thinking_tags=profile.get("thinking_tags", DEFAULT_THINKING_TAGS),
                ignore_leading_whitespace=profile.get("ignore_streamed_leading_whitespace", False),
            ):
                emitted = True
                if isinstance(event, PartStartEvent):
                    self._advance_part_boundary("content")
                    if isinstance(event.part, ThinkingPart):
                        event.part.id = "content"
                        event.part.provider_name = self.provider_name
                    elif isinstance(event.part, TextPart) and self._held_text_whitespace:
                        event.part.content = self._held_text_whitespace + event.part.content
                        self._held_text_whitespace = ""
                yield event
            if not emitted and content.isspace() and self._awaiting_text_after_reasoning:
                self._held_text_whitespace += content
        annotations = delta.get("annotations")
        if isinstance(annotations, list):
            self._pending_raw_annotations.extend(annotations)

    def _map_tool_calls(self, tool_calls: list[dict[str, Any]]) -> Iterator[ModelResponseStreamEvent]:
        for dtc in tool_calls:
            function = dtc.get("function")
            extra_content = dtc.get("extra_content")
            details = {"extra_content": extra_content} if extra_content else None
            for event in self._parts_manager.handle_tool_call_delta_events(
                vendor_part_id=dtc.get("index"),
                tool_name=function.get("name") if function is not None else None,
                args=function.get("arguments") if function is not None else None,
                tool_call_id=dtc.get("id"),
                provider_name=self.provider_name if details else None,
                provider_details=details,
            ):
                if isinstance(event, PartStartEvent):
                    self._advance_part_boundary("tool")
                yield event
