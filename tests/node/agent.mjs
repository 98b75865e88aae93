// An AG-UI HttpAgent (@ag-ui/client) following a response of respflow.app, end to end:
// HTTP, its own SSE parsing, enforcement, verifyEvents and its reducer.
//
//   node agent.mjs <events URL with format=ag-ui> [<Last-Event-ID>]
//
// respflow.app starts responses with POST /responses and serves their events with GET,
// while HttpAgent POSTs its RunAgentInput to one URL: its `fetch` option (made for this)
// sends that request as a GET of the events URL, with the reader's last id if resuming.
// Prints {"messages", "events": [types in order], "warnings"} as JSON.

import { HttpAgent } from "@ag-ui/client";

const [url, lastEventId] = process.argv.slice(2);
const warnings = [];
console.warn = (...args) => warnings.push(args.map(String).join(" "));

const agent = new HttpAgent({
  url,
  fetch: (target, init) =>
    fetch(target, {
      method: "GET",
      headers: { accept: "text/event-stream", ...(lastEventId ? { "last-event-id": lastEventId } : {}) },
      signal: init?.signal,
    }),
});
const events = [];
await agent.runAgent({}, { onEvent: ({ event }) => void events.push(event.type) });
process.stdout.write(JSON.stringify({ messages: agent.messages, events, warnings }));
