// Runs against the proxy with AG-UI's own client, `HttpAgent` from `@ag-ui/client`, which parses
// the SSE, verifies the event order (RUN_STARTED first, messages closed before RUN_FINISHED,
// nothing after RUN_ERROR) and builds the conversation's messages from the events.
//
// Usage: node ag_ui_run.mjs '{"url": "http://127.0.0.1:PORT/v1/agents/a/ag-ui", "prompts": ["hi", "again"]}'
// Prints one JSON object: per run the events received, the agent's messages after it, its
// `result`, the run error its subscriber was told of, and any error `runAgent` raised.
import { HttpAgent } from "@ag-ui/client";

const { url, prompts } = JSON.parse(process.argv[2]);
const agent = new HttpAgent({ url, threadId: "thread-1" });
const runs = [];

for (const [i, prompt] of prompts.entries()) {
  agent.addMessage({ id: `user-${i}`, role: "user", content: prompt });
  const run = { events: [], messages: null, result: null, runError: null, error: null };
  runs.push(run);
  try {
    const { result } = await agent.runAgent(
      { runId: `run-${i}` },
      {
        onEvent: ({ event }) => void run.events.push(event),
        onRunErrorEvent: ({ event }) => void (run.runError = { message: event.message, code: event.code }),
        onRunFailed: ({ error }) => void (run.error = String(error.message)),
      },
    );
    run.result = result ?? null;
  } catch (error) {
    run.error = String(error.message);
  }
  run.messages = agent.messages;
  if (run.error !== null || run.runError !== null) break;
}

process.stdout.write(JSON.stringify({ runs }));
