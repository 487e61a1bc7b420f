"""A fake LLM upstream that speaks each provider's wire, with answer shaping and fault injection.

Used by the demo, the tests, the resilience fault matrix and as the baseline of the benchmarks.
Run it with `agent-proxy mock-upstream --port 9100` (or `python -m proxy.mock_upstream --port 9100`),
or in-process with `server = await start_mock()` and point an OpenAI client at `server.base_url`
(the other SDKs at `server.url`; see Wires below).

Endpoints
---------
- `POST /v1/chat/completions`: `stream: true` answers SSE `chat.completion.chunk`s ending in
  `data: [DONE]` (a last chunk with `usage` when `stream_options.include_usage` is true);
  `stream: false` answers one `chat.completion`. Errors use OpenAI's shape
  `{"error": {"message", "type", "param", "code"}}`; a bad JSON body or a bad mock parameter is a 400.
- The other providers' endpoints: see Wires below.
- `GET /v1/models`: a few preset model names. `GET /health`: 200.
- `GET /_mock/stats`: the counters as JSON. `POST /_mock/reset`: zero the counters and fault counters.

Selecting a behaviour by model name
-----------------------------------
The model name is `<label>` optionally followed by `?key=value&key=value` (URL query syntax; URL-encode
values with `&`, `+`, `#` or `%` in them), e.g. `demo`, `mock?chunks=64&gap_ms=10`,
`flaky?fault=http500&fault_times=2`. The label is free text. The whole model string is the key of
the per-model stats and of the fault counters. Parameters override the server's defaults (the CLI's
flags); an unknown key or a bad value is answered with a 400 whose `param` names the key.
Booleans take 1/0, true/false, yes/no, on/off; `none` (or empty) unsets an optional value.

Shaping keys (default in brackets):

- `chunks` [8]: number of content chunks; the default text is `tok0 tok1 … tok{chunks-1}`, a word a chunk.
- `ttfc_ms` [0]: delay before the first chunk, after the response headers (non-streaming: before
  the answer).
- `gap_ms` [0]: delay between chunks.
- `text`: explicit answer text, split into `chunks` near-equal pieces if `chunks` is given, else
  word by word (each piece keeps its leading space).
- `echo` [0]: answer `echo: <last user message> (messages: <number of messages received>)`.
- `usage` [1]: report usage: input = words in the request messages, output = number of chunks.
- `cache_read` [0], `cache_write` [0]: input tokens reported as read from / written to the prompt
  cache, where the wire reports them (chat-completions: `prompt_tokens_details.cached_tokens`, with
  both counted in `prompt_tokens`).
- `finish` [stop]: `finish_reason` of a text answer, `stop`, `length` or `content_filter`.
- `tool`: call this tool (id `call_<n>`, n = tool messages in the request + 1; arguments streamed
  in 2-3 pieces; finish `tool_calls`) while fewer than `tool_calls` tool results follow the last
  user message; then answer the text plus ` (tool result: <content of the last tool message>)`.
- `tool_args` [{}]: the tool call's arguments JSON (sent verbatim).
- `tool_calls` [1]: tool calls in a row before the text answer.
- `json`: structured output text, sent verbatim (may be invalid on purpose). Without it, when the
  request has a tool named `final_result*` (pydantic-ai's output tool) the mock calls it with an
  object generated to satisfy its JSON schema; with a `response_format` of type `json_schema` (or the
  wire's own schema request) it answers such an object as content.
- `json_chunk` [16]: characters per streamed piece of JSON output.

`expected_text(behaviour, messages)` computes the full text of a text answer, so tests can assert
that a proxy forwarded exactly it. Non-streaming requests get the same text, tool call or JSON.

Fault keys: `fault=<kind>` applies to the first `fault_times=K` requests with this exact model
string (then good answers), or to each request with probability `fault_prob=P` (reproducible with
`seed=S`, per model string); both: the first K, then P. With neither, every request faults.
`fault_every=N` instead faults requests 1, N+1, 2N+1, … (`fault_every=2`: every first attempt
fails and its retry succeeds, as the built-in demo's fault agents show).
`after` [0], `stall_ms` [3600000] and `retry_after` shape the fault. Kinds:

- `http400`: 400 `invalid_request_error`. `http401`: 401 `authentication_error` (`invalid_api_key`).
- `http403`: 403 `permission_error`. `http404`: 404 `model_not_found`. `http408`, `http409`.
- `http413` or `context_length`: 400 `invalid_request_error`, code `context_length_exceeded`
  (what OpenAI answers to a too-long prompt).
- `http429`: 429 `rate_limit_exceeded`. `retry_after=S` (on any HTTP fault) adds `Retry-After: S`
  (fractional seconds allowed) and `retry-after-ms`.
- `http500`, `http502`, `http503`, `http504`: that status, type `server_error`.
- `overloaded`: the provider's own "overloaded" answer (chat-completions: 503 `server_error`).
- `drop`: `after=N` chunks, then the TCP connection is closed without `[DONE]` (`after=0`: right
  after the response headers).
- `drop_headers`: the request is read and the socket closed without any HTTP response.
- `stall`: `after=N` chunks, then silence for `stall_ms` (default 1 hour, i.e. until the client
  gives up); a finite stall then continues normally.
- `instream_error`: `after=N` chunks, then `data: {"error": {"message", "type": "server_error",
  "code"}}` and the end of the stream.
- `malformed`: `after=N` chunks, then a `data:` line that is not JSON, and the end of the stream.
- `no_finish`: `after=N` chunks, then `[DONE]` without a `finish_reason` chunk.

A stream fault happens where chunk N+1 would have been sent (after its `ttfc_ms`/`gap_ms`); with
`after` ≥ the number of chunks, in place of the finish chunk. Non-streaming: `drop*` close the
socket without a response, `stall` delays the answer by `stall_ms`, `instream_error` is a 500,
`malformed` a 200 whose body is not JSON, `no_finish` a `finish_reason` of null.
`closed_port_url()` gives a base URL whose port refuses connections.

Wires
-----
Every wire answers the same text, tool calls, JSON and usage, with the same timing and faults, in its
provider's shape; its official SDK parses it. HTTP faults keep their status (`httpNNN`) and take the
provider's error body; `retry_after` adds `Retry-After` and `retry-after-ms` on every wire.

- OpenAI Chat Completions: as above.
- Azure OpenAI: the same, at `/openai/deployments/{deployment}/chat/completions?api-version=…`
  (`AsyncAzureOpenAI(azure_endpoint=server.url, api_version=…)`); the model is the body's, else
  the deployment. `finish=content_filter` is Azure's filtered answer; `http429` with `retry_after`
  its throttling (`retry-after-ms`).
- Anthropic Messages, `POST /v1/messages` (`AsyncAnthropic(base_url=server.url)`), the model in the
  body: `message_start`, `ping`, one `text` or `tool_use` block (`text_delta`/`input_json_delta`),
  `message_delta` with the stop reason (`end_turn`, `max_tokens`, `tool_use`, `refusal`) and usage
  (`cache_read_input_tokens`, `cache_creation_input_tokens`), `message_stop`. Errors
  `{"type": "error", "error": {"type", "message"}}`: `overloaded` is 529 `overloaded_error`,
  `instream_error` an `event: error` with `overloaded_error` mid-stream (non-streaming: 500
  `api_error`), `no_finish` ends after the deltas.
- OpenAI Responses, `POST /v1/responses` (the OpenAI client at `server.base_url`), the model in
  the body, `input` a string or items (`function_call_output` is a tool result), `text.format` a
  schema request: `response.created`, `response.in_progress`, one `message` (`output_text`) or
  `function_call` item with its `added`/`delta`/`done` events, all with `sequence_number`, then
  `response.completed` with usage (`input_tokens_details.cached_tokens`); `finish=length` or
  `content_filter` end in `response.incomplete`. Errors in OpenAI's shape; `instream_error` is a
  `response.failed` whose `error.code` is `server_error`; `no_finish` ends after the deltas.
- Gemini, `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse` (also
  under `/v1`; `genai.Client(http_options=HttpOptions(base_url=server.url))`), the model in the
  path, URL-quoted (`quote("mock?chunks=3", safe="")`: google-genai refuses `?` and `&` in a model
  name). A `data:` chunk per text piece (a function call, with `args` as an object, is one chunk),
  then one with `finishReason` (`STOP`, `MAX_TOKENS`, `SAFETY`) and `usageMetadata`
  (`cachedContentTokenCount`). Errors `{"error": {"code", "message", "status"}}`: `http429` is
  `RESOURCE_EXHAUSTED`, `http503` and `overloaded` `UNAVAILABLE`, `context_length` 400
  `INVALID_ARGUMENT`; `instream_error` is such an error (500 `INTERNAL`) as a `data:` chunk.
- Bedrock, `POST /model/{modelId}/converse` and `/model/{modelId}/converse-stream`
  (`boto3.client("bedrock-runtime", endpoint_url=server.url)`; signatures are ignored), the model
  id in the path (botocore URL-quotes it, so `modelId="mock?chunks=3"` works as is). The stream is
  binary `application/vnd.amazon.eventstream`: `messageStart`, `contentBlockStart` (a tool use),
  `contentBlockDelta`s, `contentBlockStop`, `messageStop` (`end_turn`, `max_tokens`, `tool_use`,
  `content_filtered`), `metadata` with usage (`cacheReadInputTokens`, `cacheWriteInputTokens`).
  Errors `{"message"}` named by `x-amzn-ErrorType`: `http429` is `ThrottlingException`, `http503`
  and `overloaded` `ServiceUnavailableException`, `context_length` `ValidationException`;
  `instream_error` is a `modelStreamErrorException` exception message mid-stream, `malformed` an
  event whose payload is not JSON.

Stats
-----
`server.stats` (`app[STATS_KEY]`, `GET /_mock/stats`) counts, in `total` and per model string in
`models`: `requests`, `bad_requests`, `faults_injected`, `streams_started`, `streams_completed` (ended
normally), `streams_faulted` (ended by a fault), `streams_closed_by_client` (the client went
away first), `active_streams`, `responses_completed`, `responses_closed_by_client` (non-streaming).
Also `last_request_bodies` (the last 50) and `last_authorization`. Wait on a condition without
sleeping: `await server.stats.wait_for(lambda s: s.total.streams_closed_by_client == 1, timeout=5)`.
"""

from proxy.mock_upstream.answer import expected_text
from proxy.mock_upstream.behaviour import BehaviourError, MockBehaviour
from proxy.mock_upstream.server import (
    PRESET_MODELS,
    STATS_KEY,
    MockServer,
    closed_port_url,
    create_app,
    start_mock,
)
from proxy.mock_upstream.stats import Counters, MockStats

__all__ = [
    "PRESET_MODELS",
    "STATS_KEY",
    "BehaviourError",
    "Counters",
    "MockBehaviour",
    "MockServer",
    "MockStats",
    "closed_port_url",
    "create_app",
    "expected_text",
    "start_mock",
]
