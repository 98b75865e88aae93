// A minimal chat page on the AI SDK's own client: `useChat` from @ai-sdk/react reading
// respflow.app's Vercel UI message stream. Bundled at test time with esbuild
// (tests/test_protocols.py) and opened in Chromium.
//
// respflow.app starts a response with POST /respflow/responses and serves its events at
// `events_url&format=vercel`. The chat transport reaches them through its `fetch` option:
// sending a message starts a response and reads its stream; `resumeStream` reconnects to
// the same events URL, whose whole stream useChat replays in place of the message it had.

import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";
import { useState } from "react";
import { createRoot } from "react-dom/client";

let eventsUrl = null;

async function respflowFetch(url, init) {
  if (init?.method === "POST") {
    const { messages } = JSON.parse(init.body);
    const prompt = messages.at(-1).parts.map((part) => part.text ?? "").join("");
    const started = await fetch("/respflow/responses", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: prompt }),
    });
    if (!started.ok) return started;
    eventsUrl = (await started.json()).events_url;
  }
  if (eventsUrl === null) return new Response(null, { status: 204 }); // nothing to resume
  return fetch(`${eventsUrl}&format=vercel`, { signal: init?.signal });
}

const transport = new DefaultChatTransport({ api: "/chat", fetch: respflowFetch });

function Part({ part }) {
  switch (part.type) {
    case "text":
      return <p className="answer">{part.text}</p>;
    case "reasoning":
      return <p className="reasoning">{part.text}</p>;
    case "tool-code_interpreter": {
      const logs = (part.output?.outputs ?? []).filter((o) => o.type === "logs").map((o) => o.logs);
      return (
        <div className="call" data-state={part.state}>
          <pre className="code">{part.input?.code ?? ""}</pre>
          <pre className="logs">{logs.join("")}</pre>
        </div>
      );
    }
    case "file": {
      const name = part.providerMetadata?.respflow?.filename ?? part.url;
      return (
        <p className="file">
          {part.mediaType.startsWith("image/") ? <img src={part.url} alt={name} /> : null}
          <a href={part.url} download={name}>{name}</a>
        </p>
      );
    }
    default:
      return null;
  }
}

function Chat() {
  const [finished, setFinished] = useState(0);
  const { messages, sendMessage, resumeStream, status, error } = useChat({
    transport,
    onFinish: () => setFinished((n) => n + 1),
  });
  const answers = messages.filter((message) => message.role === "assistant");
  return (
    <main>
      <button id="run" onClick={() => sendMessage({ text: "Roll two dice 10 times" })}>Run</button>
      <button id="resume" onClick={() => resumeStream()}>Resume</button>
      <p id="status">{status}</p>
      <p id="finished">{finished}</p>
      <p id="error">{error ? String(error) : ""}</p>
      {answers.map((message) => (
        <section className="message" key={message.id}>
          {message.parts.map((part, n) => <Part part={part} key={n} />)}
        </section>
      ))}
    </main>
  );
}

createRoot(document.getElementById("root")).render(<Chat />);
