"""What an OpenAI client adds to an agent run, in pydantic-ai's terms.

Its tools become external (deferred) tools: the model sees them, and a call of one ends the run with
`DeferredToolRequests`, which go back to the client as `tool_calls`; the client's next request brings
the results as history. `tool_choice` becomes the model's tool choice, `response_format` native
(`json_schema`) or prompted (`json_object`) structured output, held to the schema by the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic_ai import DeferredToolRequests, NativeOutput, PromptedOutput, RunContext
from pydantic_ai.agent import AgentModelSettings
from pydantic_ai.exceptions import UserError
from pydantic_ai.settings import ModelSettings, ToolChoice, merge_model_settings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ExternalToolset

from proxy.engine.inputs import ClientTools, ResponseFormat, StreamInput
from proxy.engine.refusals import InvalidField
from proxy.engine.runtime import AgentRuntime
from proxy.events import FunctionCall
from proxy.structured import SchemaLoadError, SchemaOutput, check_schema, load_schema

ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True, slots=True)
class RunSpec:
    """The arguments of one agent run beyond the prompt and history."""

    output_type: Any
    """None: the agent's own."""
    toolsets: list[AbstractToolset[None]] | None
    model_settings: AgentModelSettings[None] | None
    text_is_output: bool
    """The model's text is the JSON answer (`response_format`): it goes out as `output`, not `delta`s."""
    client_tools: frozenset[str] = frozenset()
    """Names of the client's tools: their calls are the run's answer, not tool events of the proxy."""


def run_spec(runtime: AgentRuntime, request: StreamInput) -> RunSpec:
    settings = request.options.model_settings() if request.options else None
    fmt = request.response_format
    output: Any = _answer_format(fmt) if fmt is not None else None
    tools = request.tools
    if tools is None:
        return RunSpec(output, None, settings, fmt is not None)
    definitions = [
        ToolDefinition(
            name=tool.name,
            parameters_json_schema=tool.parameters,
            description=tool.description,
            strict=tool.strict,  # False leaves the client's schema as it is (None would tighten it)
        )
        for tool in tools.tools
    ]
    return RunSpec(
        [output if output is not None else runtime.agent.output_type, DeferredToolRequests],
        [ExternalToolset(definitions)],
        _with_tool_choice(settings, tools),
        fmt is not None,
        frozenset(tool.name for tool in tools.tools),
    )


def admit_tools(runtime: AgentRuntime, tools: ClientTools | None) -> None:
    """Raise `InvalidField` for client tools a run of `runtime` cannot offer."""
    if tools is None:
        return
    if runtime.structured:
        # Its output validator would be given the tool calls: pydantic-ai refuses that combination.
        raise InvalidField(
            "tools", f"agent {runtime.name!r} answers with its own output schema and takes no client tools"
        )
    for i, tool in enumerate(tools.tools):
        field = f"tools[{i}].function.parameters"
        if tool.parameters.get("type", "object") != "object":
            raise InvalidField(field, 'the parameters must be a JSON Schema of "type": "object"')
        try:
            check_schema(tool.parameters)
        except SchemaLoadError as exc:
            raise InvalidField(field, str(exc)) from None


def admit_format(runtime: AgentRuntime, fmt: ResponseFormat | None) -> ResponseFormat | None:
    """The response format a run of `runtime` takes; `InvalidField` for one it cannot honour."""
    if fmt is None:
        return None
    if runtime.structured:
        if fmt.schema is not None:
            raise InvalidField(
                "response_format",
                f"agent {runtime.name!r} answers with its own output schema; leave `response_format` out",
            )
        return None  # `json_object`: the agent's answer is a JSON object already
    if fmt.schema is not None:
        try:
            _answer_format(replace(fmt, schema=load_schema(fmt.schema)))
        except (SchemaLoadError, UserError) as exc:
            raise InvalidField("response_format.json_schema.schema", str(exc)) from None
    return fmt


def _answer_format(fmt: ResponseFormat) -> Any:
    if fmt.schema is None:
        # `json_object`: pydantic-ai asks OpenAI-compatible models for `{"type": "json_object"}`.
        return PromptedOutput(SchemaOutput(ANY_OBJECT, fmt.name).checked_type())
    checked = SchemaOutput(fmt.schema, fmt.name, fmt.description).checked_type()
    return NativeOutput(checked, strict=fmt.strict)


def _with_tool_choice(settings: ModelSettings | None, tools: ClientTools) -> AgentModelSettings[None] | None:
    if tools.choice == "auto" and tools.forced is None:
        return settings
    choice: ToolChoice = [tools.forced] if tools.forced is not None else tools.choice
    chosen = merge_model_settings(settings, ModelSettings(tool_choice=choice))
    if tools.choice == "none":
        return chosen

    # pydantic-ai refuses a forcing choice given as plain settings, since an agent forced to call a
    # tool at every step could never answer; here the run ends at the first call of a client tool.
    def forcing(ctx: RunContext[None]) -> ModelSettings:
        return chosen or ModelSettings()

    return forcing


def tool_calls(output: object) -> list[FunctionCall] | None:
    """The client's tool calls a run ended with, if it ended with them."""
    if not isinstance(output, DeferredToolRequests):
        return None
    return [FunctionCall(call.tool_call_id, call.tool_name, call.args_as_json_str()) for call in output.calls]
