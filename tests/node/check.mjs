// Checks respflow's UI protocol streams with the protocols' own code, not respflow's:
//
//   Vercel: every chunk against `uiMessageChunkSchema` (safeValidateTypes, as
//     DefaultChatTransport parses them), then the whole stream through
//     `readUIMessageStream`, the AI SDK's own client reducer: a text-delta without its
//     text-start, an output for an unknown tool call... fail there.
//   AG-UI: every event against `EventSchema` and through the client's `enforceEvents`
//     (which warns about, and strips, anything the schema does not describe: a warning is
//     a failure here), every run through `verifyEvents`, whole and resumed (the prelude
//     then the events after the cursor), and, where asked, the whole and resumed runs
//     through a real agent (`AbstractAgent.runAgent`: enforcement, verification and the
//     default reducer), which must end with the same messages.
//
// Reads one JSON document on stdin (or from the file named as the first argument):
//   {"vercel": [{"name", "chunks": [...]}],
//    "agui": [{"name", "events": [...], "resumes": [{"at", "prelude": [...], "apply"?, "schema"?}]}]}
// where a resumed run is `prelude` followed by `events.slice(at)`; `schema: false` skips the
// schema checks of that prelude (its run is still verified). Writes one JSON
// document on stdout: {"failures": [{"name", "check", "error"}], "counts": {...},
// "vercel": {name: final message}, "agui": {name: final messages}}.

import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";

import { safeValidateTypes } from "@ai-sdk/provider-utils";
import { AbstractAgent, enforceEvents, verifyEvents } from "@ag-ui/client";
import { EventSchema } from "@ag-ui/core/schemas";
import { readUIMessageStream, uiMessageChunkSchema } from "ai";
import { from, lastValueFrom, toArray } from "rxjs";

const input = JSON.parse(readFileSync(process.argv[2] ?? 0, "utf8"));
const failures = [];
const counts = { vercelChunks: 0, vercelStreams: 0, aguiEvents: 0, aguiRuns: 0, aguiResumes: 0, aguiApplied: 0 };
const finals = { vercel: {}, agui: {} };

// Every warning the clients print is about something they had to drop or repair.
const warnings = [];
console.warn = (...args) => warnings.push(args.map(String).join(" "));
const takeWarnings = () => warnings.splice(0, warnings.length);

function fail(name, check, error) {
  failures.push({ name, check, error: String(error?.message ?? error).slice(0, 2000) });
}

// -- Vercel -------------------------------------------------------------------------------

async function checkVercel({ name, chunks }) {
  counts.vercelStreams += 1;
  for (const [i, chunk] of chunks.entries()) {
    counts.vercelChunks += 1;
    const parsed = await safeValidateTypes({ value: chunk, schema: uiMessageChunkSchema });
    if (!parsed.success) fail(name, `uiMessageChunkSchema, chunk ${i} ${JSON.stringify(chunk).slice(0, 300)}`, parsed.error);
  }
  const sent = new Set(chunks.filter((c) => c.type === "error").map((c) => c.errorText));
  let last;
  const stream = readUIMessageStream({
    stream: new ReadableStream({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    }),
    onError: (error) => {
      // An `error` chunk is reported this way by design; anything else is a real failure.
      if (!sent.has(error?.message)) fail(name, "readUIMessageStream", error);
    },
  });
  for await (const message of stream) last = message;
  finals.vercel[name] = last ?? null;
  for (const warning of takeWarnings()) fail(name, "warning (vercel)", warning);
}

// -- AG-UI --------------------------------------------------------------------------------

async function verified(events) {
  return lastValueFrom(from(events).pipe(verifyEvents(false), toArray()));
}

class Replay extends AbstractAgent {
  constructor(events, messages = []) {
    super({ initialMessages: messages });
    this.events = events;
  }
  run() {
    return from(this.events);
  }
}

async function messagesAfter(events, messages = []) {
  const agent = new Replay(events, messages);
  await agent.runAgent();
  return JSON.parse(JSON.stringify(agent.messages));
}

// A prelude repeats events of its run (RUN_STARTED, the re-opened starts): each distinct
// event is checked once.
const checked = new Set();

async function checkEvents(name, events, what) {
  const fresh = [];
  for (const [i, event] of events.entries()) {
    const text = JSON.stringify(event);
    if (checked.has(text)) continue;
    checked.add(text);
    fresh.push(event);
    counts.aguiEvents += 1;
    const parsed = EventSchema.safeParse(event);
    if (!parsed.success) fail(name, `EventSchema, ${what} event ${i} ${text.slice(0, 300)}`, parsed.error);
  }
  try {
    await lastValueFrom(from(fresh).pipe(enforceEvents(false), toArray()));
  } catch (error) {
    fail(name, `enforceEvents, ${what}`, error);
  }
  for (const warning of takeWarnings()) fail(name, `enforceEvents, ${what}`, warning);
}

async function checkAgui({ name, events, resumes = [] }) {
  counts.aguiRuns += 1;
  await checkEvents(name, events, "run");
  try {
    await verified(events);
  } catch (error) {
    fail(name, "verifyEvents, whole run", error);
    return;
  }
  let whole;
  const applied = resumes.some((r) => r.apply);
  if (applied) {
    try {
      whole = await messagesAfter(events);
      finals.agui[name] = whole;
    } catch (error) {
      fail(name, "agent, whole run", error);
      return;
    }
  }
  for (const { at, prelude, apply, schema = true } of resumes) {
    counts.aguiResumes += 1;
    const resumed = prelude.concat(events.slice(at));
    if (schema) await checkEvents(name, prelude, `prelude at ${at}`);
    try {
      await verified(resumed);
    } catch (error) {
      fail(name, `verifyEvents, resumed at ${at}`, error);
      continue;
    }
    if (!apply) continue;
    counts.aguiApplied += 1;
    try {
      // A client that lost everything, and one that kept what it had got before the cut.
      const fresh = await messagesAfter(resumed);
      const kept = await messagesAfter(resumed, await messagesAfter(events.slice(0, at)));
      if (!isDeepStrictEqual(fresh, whole)) fail(name, `agent, resumed at ${at} (fresh)`, JSON.stringify(fresh).slice(0, 1500));
      if (!isDeepStrictEqual(kept, whole)) fail(name, `agent, resumed at ${at} (kept)`, JSON.stringify(kept).slice(0, 1500));
    } catch (error) {
      fail(name, `agent, resumed at ${at}`, error);
    }
    for (const warning of takeWarnings()) fail(name, `warning, resumed at ${at}`, warning);
  }
}

for (const stream of input.vercel ?? []) await checkVercel(stream);
for (const run of input.agui ?? []) await checkAgui(run);
process.stdout.write(JSON.stringify({ failures, counts, finals }));
