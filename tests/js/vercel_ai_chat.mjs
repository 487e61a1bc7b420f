// A chat with the proxy through the Vercel AI SDK's own client pieces, as `useChat` runs it:
// `DefaultChatTransport` sends the UI messages and parses the UI message stream, and
// `readUIMessageStream` builds the assistant message from its chunks.
//
// Usage: node vercel_ai_chat.mjs '{"api": "http://127.0.0.1:PORT/v1/agents/a/vercel-ai", "prompts": ["hi", "again"]}'
// Prints one JSON object: per turn the chunks received, the final assistant message and the
// errors the SDK reported (or the HTTP error it threw).
import { DefaultChatTransport, readUIMessageStream } from "ai";

const { api, prompts } = JSON.parse(process.argv[2]);
const transport = new DefaultChatTransport({ api });
const messages = [];
const turns = [];

for (const [i, prompt] of prompts.entries()) {
  messages.push({ id: `user-${i}`, role: "user", parts: [{ type: "text", text: prompt }] });
  const turn = { chunks: [], message: null, errors: [], httpError: null };
  turns.push(turn);
  let stream;
  try {
    stream = await transport.sendMessages({
      chatId: "chat-1",
      messages,
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
  } catch (error) {
    turn.httpError = String(error.message);
    break;
  }
  const [forReader, forLog] = stream.tee();
  const logged = (async () => {
    for await (const chunk of forLog) turn.chunks.push(chunk);
  })();
  for await (const message of readUIMessageStream({
    stream: forReader,
    onError: (error) => turn.errors.push(String(error.message)),
  })) {
    turn.message = message;
  }
  await logged;
  if (turn.message !== null) messages.push(turn.message);
}

process.stdout.write(JSON.stringify({ turns }));
