// The agent-proxy playground: send a prompt over SSE, WebSocket or the OpenAI-compatible API,
// watch the answer stream, and beside it every event with its arrival time. No build step, no
// dependency, and nothing but this origin (the page's Content-Security-Policy says so).

const $ = (id) => document.getElementById(id);

// The built-in demo's fault agents (proxy/config.py DEMO_FAULTS): each prompt's first attempt fails
// this way and its retry succeeds. They are offered as faults, not as agents, when the proxy has them.
const FAULTS = {
  "demo-drop": "drop mid-stream",
  "demo-429": "429, then success",
  "demo-stall": "stall before the first token",
};

const state = {
  conversationId: null, // SSE and WebSocket: the proxy stores the conversation
  history: [], // OpenAI: the client keeps the messages
  run: null, // the running request: {cancel()}
};

// Every request's headers come from here: the seam where a key, traded for a short-lived token,
// will go once the proxy asks for credentials.
function requestHeaders() {
  return { "content-type": "application/json" };
}

async function loadAgents() {
  const response = await fetch("/v1/agents", { headers: requestHeaders() });
  const { agents } = await response.json();
  const names = agents.map((a) => a.name);
  const faults = names.filter((name) => name in FAULTS);
  for (const name of names.filter((n) => !(n in FAULTS))) $("agent").append(new Option(name, name));
  for (const name of faults) $("fault").append(new Option(FAULTS[name], name));
  $("fault-field").hidden = faults.length === 0;
}

// --- what the person sees: the answer and the timeline ------------------------------------------

function entry(kind, at, detail) {
  const li = document.createElement("li");
  li.className = `ev-${kind}`;
  const cells = [at === null ? "" : `+${Math.round(at)} ms`, kind, ""];
  for (const [i, text] of cells.entries()) {
    const span = document.createElement("span");
    span.className = ["ev-at", "ev-kind", "ev-detail"][i];
    span.textContent = text;
    li.append(span);
  }
  const cell = li.lastChild;
  for (const part of [detail].flat()) cell.append(part);
  $("timeline").append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

function struck(text) {
  const s = document.createElement("s");
  s.className = "discarded";
  s.textContent = text;
  return s;
}

const seconds = (s) => (s === null || s === undefined ? "–" : `${Math.round(s * 1000)} ms`);

function endDetail(end) {
  const usage = end.usage ? `usage ${end.usage.input_tokens} in / ${end.usage.output_tokens} out` : null;
  return [
    end.finish_reason,
    `TTFT ${seconds(end.ttft_s)}${end.ttftMeasuredHere ? " (page)" : ""}`,
    end.attempts === undefined ? null : `attempts ${end.attempts}`,
    usage,
    `duration ${seconds(end.duration_s)}`,
  ]
    .filter((x) => x !== null)
    .join(" · ");
}

// One answer: its text (struck-through where a retry discarded it) and its timeline entries.
class Answer {
  constructor(prompt, transport) {
    const user = document.createElement("li");
    user.className = "turn-user";
    user.textContent = prompt;
    this.box = document.createElement("li");
    this.box.className = "turn-agent";
    $("turns").append(user, this.box);
    this.started = performance.now();
    this.span = null;
    this.ended = false;
    entry("request", 0, `${transport}: ${JSON.stringify(prompt)}`);
  }

  at() {
    return performance.now() - this.started;
  }

  event(e) {
    const at = this.at();
    switch (e.type) {
      case "start":
        entry("start", at, `${e.agent} · ${e.model}`);
        break;
      case "delta":
        if (this.span === null) {
          this.span = document.createElement("span");
          this.box.append(this.span);
        }
        this.span.textContent += e.text;
        entry("delta", at, JSON.stringify(e.text));
        break;
      case "output":
        this.box.textContent = JSON.stringify(e.data, null, 2);
        entry("output", at, e.partial ? "partial" : "final");
        break;
      case "tool_call":
        entry("tool_call", at, `${e.name}(${JSON.stringify(e.args)})`);
        break;
      case "tool_result":
        entry("tool_result", at, `${e.name}: ${e.outcome}`);
        break;
      case "heartbeat":
        entry("heartbeat", at, "");
        break;
      case "retry":
        entry("retry", at, this.retry(e));
        break;
      case "error":
        this.box.classList.add("failed");
        entry("error", at, `${e.code}: ${e.message}`);
        break;
      case "end":
        this.ended = true;
        entry("end", at, endDetail(e));
        status(`${e.finish_reason} after ${seconds(e.duration_s)}`);
        break;
    }
  }

  retry(e) {
    const detail = [`attempt ${e.attempt}/${e.max_attempts} failed: ${e.reason}, next in ${seconds(e.delay_s)}`];
    if (e.discard) {
      const discarded = [...this.box.querySelectorAll("span:not(.discarded)")];
      const text = discarded.map((s) => s.textContent).join("");
      for (const s of discarded) s.className = "discarded";
      this.span = null;
      detail.push(" · discarded: ", struck(text));
    }
    return detail;
  }

  closedWithoutEnd(why) {
    if (this.ended) return;
    this.box.classList.add("failed");
    entry("closed", this.at(), why);
    status(why);
  }
}

function status(text) {
  $("status").textContent = text;
}

// --- the transports -------------------------------------------------------------------------------

// SSE blocks of a fetch response body: {data, comment}. (The proxy's `event:` and `id:` lines are
// not needed: every event's JSON names its type, and resuming a stream is not offered yet.)
async function* sseBlocks(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = { data: [], comment: false };
      for (const line of buffer.slice(0, cut).split("\n")) {
        if (line.startsWith(":")) block.comment = true;
        else if (line.startsWith("data:")) block.data.push(line.slice(5).replace(/^ /, ""));
      }
      buffer = buffer.slice(cut + 2);
      yield block;
    }
  }
}

async function failed(response) {
  const body = await response.json().catch(() => ({}));
  const error = body.error ?? {};
  return { type: "error", code: error.code ?? `http_${response.status}`, message: error.message ?? response.statusText };
}

async function overSSE(agent, prompt, answer) {
  const abort = new AbortController();
  state.run = { cancel: () => abort.abort() };
  const body = { prompt, conversation_id: state.conversationId ?? undefined };
  const response = await fetch(`/v1/agents/${encodeURIComponent(agent)}/stream`, {
    method: "POST",
    headers: requestHeaders(),
    body: JSON.stringify(body),
    signal: abort.signal,
  });
  if (!response.ok) return answer.event(await failed(response));
  for await (const block of sseBlocks(response)) {
    if (block.data.length === 0) continue;
    const event = JSON.parse(block.data.join("\n"));
    if (event.type === "end") state.conversationId = event.conversation_id;
    answer.event(event);
  }
}

function overWebSocket(agent, prompt, answer) {
  const url = `${location.origin.replace(/^http/, "ws")}/v1/ws`;
  const ws = new WebSocket(url);
  const requestId = `r${Date.now()}`;
  state.run = { cancel: () => ws.send(JSON.stringify({ type: "cancel", request_id: requestId })) };
  return new Promise((resolve, reject) => {
    ws.onopen = () =>
      ws.send(
        JSON.stringify({
          type: "prompt",
          request_id: requestId,
          agent,
          prompt,
          conversation_id: state.conversationId ?? undefined,
        }),
      );
    ws.onmessage = (message) => {
      const event = JSON.parse(message.data);
      answer.event(event);
      if (event.type === "end") state.conversationId = event.conversation_id;
      // A refusal (an error with no stream) is the request's last frame, as is `end`.
      if (event.type === "end" || (event.type === "error" && event.stream_id === null)) ws.close();
    };
    ws.onerror = () => reject(new Error("the WebSocket failed"));
    ws.onclose = () => resolve();
  });
}

// The OpenAI-compatible API has no start, retry or end events: the page names what the chunks
// show in the same vocabulary and measures time to first token itself.
async function overOpenAI(agent, prompt, answer) {
  const abort = new AbortController();
  state.run = { cancel: () => abort.abort() };
  const messages = [...state.history, { role: "user", content: prompt }];
  const body = { model: agent, messages, stream: true, stream_options: { include_usage: true } };
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: requestHeaders(),
    body: JSON.stringify(body),
    signal: abort.signal,
  });
  if (!response.ok) return answer.event(await failed(response));
  const end = { type: "end", finish_reason: "error", ttft_s: null, ttftMeasuredHere: true, usage: null };
  let text = "";
  let done = false;
  for await (const block of sseBlocks(response)) {
    if (block.comment) answer.event({ type: "heartbeat" });
    if (block.data.length === 0) continue;
    if (block.data[0] === "[DONE]") {
      done = true;
      continue;
    }
    const chunk = JSON.parse(block.data.join("\n"));
    if (chunk.error) {
      answer.event({ type: "error", code: chunk.error.code, message: chunk.error.message });
      continue;
    }
    if (chunk.usage) {
      end.usage = { input_tokens: chunk.usage.prompt_tokens, output_tokens: chunk.usage.completion_tokens };
    }
    for (const choice of chunk.choices) {
      if (choice.delta.role) answer.event({ type: "start", agent, model: chunk.model });
      if (choice.delta.content) {
        if (end.ttft_s === null) end.ttft_s = answer.at() / 1000;
        text += choice.delta.content;
        answer.event({ type: "delta", text: choice.delta.content });
      }
      if (choice.finish_reason) end.finish_reason = choice.finish_reason;
    }
  }
  end.duration_s = answer.at() / 1000;
  if (done) state.history = [...messages, { role: "assistant", content: text }];
  answer.event(end);
}

const TRANSPORTS = { sse: overSSE, ws: overWebSocket, openai: overOpenAI };

// --- the controls ---------------------------------------------------------------------------------

function newConversation() {
  state.conversationId = null;
  state.history = [];
  $("turns").replaceChildren();
  $("timeline").replaceChildren();
  status("");
}

async function send(event) {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || state.run !== null) return;
  const agent = $("fault").value || $("agent").value;
  const transport = $("transport").value;
  const answer = new Answer(prompt, $("transport").selectedOptions[0].text);
  $("prompt").value = "";
  $("send").disabled = true;
  $("cancel").disabled = false;
  status("streaming…");
  try {
    await TRANSPORTS[transport](agent, prompt, answer);
    answer.closedWithoutEnd("the stream closed before its end event");
  } catch (error) {
    answer.closedWithoutEnd(error.name === "AbortError" ? "cancelled: the connection was closed" : String(error));
  } finally {
    state.run = null;
    $("send").disabled = false;
    $("cancel").disabled = true;
  }
}

$("ask").addEventListener("submit", send);
$("cancel").addEventListener("click", () => state.run?.cancel());
$("new-conversation").addEventListener("click", newConversation);
$("agent").addEventListener("change", newConversation);
$("transport").addEventListener("change", newConversation);
await loadAgents();
document.body.dataset.ready = "true";
