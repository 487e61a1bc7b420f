// Vercel AI's default OpenAI provider (`@ai-sdk/openai`: `provider("model")` speaks the Responses
// API) against the proxy, as a new user tries it: `generateText`, then `streamText`.
//
// Usage: node vercel_ai_openai.mjs '{"baseURL": "http://127.0.0.1:PORT/v1", "model": "a"}'
// Prints one JSON object: each call's text, finish reason, usage and the errors it reported.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const { baseURL, model } = JSON.parse(process.argv[2]);
const provider = createOpenAI({ baseURL, apiKey: "x" });
const out = {};

try {
  const generated = await generateText({ model: provider(model), prompt: "hi", maxRetries: 0 });
  out.generated = { text: generated.text, finishReason: generated.finishReason, usage: generated.usage };
} catch (error) {
  out.generated = { error: String(error.message) };
}

const errors = [];
const streamed = streamText({
  model: provider(model),
  prompt: "hi",
  maxRetries: 0,
  onError: ({ error }) => errors.push(String(error.message ?? error)),
});
const deltas = [];
for await (const text of streamed.textStream) deltas.push(text);
out.streamed = { deltas, finishReason: await streamed.finishReason, usage: await streamed.usage, errors };

process.stdout.write(JSON.stringify(out));
