// respflow's events, rendered as they arrive. No build step, no framework.
"use strict";

const $ = (id) => document.getElementById(id);
const ENDS = new Set(["response.completed", "response.incomplete", "response.failed", "stream.truncated"]);
let calls = {};

function callBox(itemId, tool) {
  if (!calls[itemId]) {
    const box = document.createElement("article");
    box.className = "call";
    box.dataset.item = itemId;
    box.innerHTML = '<header></header><pre class="code"></pre>';
    box.dataset.label = `call ${Object.keys(calls).length + 1}`;
    box.querySelector("header").textContent = `${box.dataset.label} · ${tool}`;
    $("work").append(box);
    calls[itemId] = box;
  }
  return calls[itemId];
}

// How respflow decided which call made a file (file.saved's provenance), for a person.
const HOW = {
  code_names_path: "its code names the file",
  output_names_path: "its output names the file",
  image_output: "the image it showed",
  last_call_in_container: "the last call before the answer cited it",
};

// "made by call 2 (its code names the file)", and the file listed under that call.
function madeBy(event) {
  const box = event.produced_by && calls[event.produced_by];
  if (!box) return "maker unknown";
  let made = box.querySelector("p.made");
  if (!made) {
    made = document.createElement("p");
    made.className = "made";
    made.textContent = "made";
    box.append(made);
  }
  const name = document.createElement("span");
  name.className = "made-file";
  name.textContent = event.filename;
  made.append(made.children.length ? ", " : " ", name);
  return `made by ${box.dataset.label} (${HOW[event.provenance] || event.provenance})`;
}

// The file's name in a served URL: its path's last part, without the signature.
const nameOf = (href) => decodeURIComponent(href.split("?")[0].split("/").pop());

// The answer as text, with markdown links and bare served URLs made into links.
function renderAnswer(text) {
  const answer = $("answer");
  answer.textContent = "";
  const pattern = /\[([^\]]+)\]\(([^)\s]+)\)|(\/respflow\/files\/[^\s)]+)|(#respflow-unavailable\/[^\s)]+)/g;
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    answer.append(text.slice(at, match.index));
    const href = match[2] || match[3] || match[4];
    const label = match[1] || nameOf(href);
    if (href.startsWith("#respflow-unavailable/")) {
      const gone = document.createElement("span");
      gone.className = "unavailable";
      gone.title = "this file could not be saved";
      gone.textContent = label;
      answer.append(gone);
    } else {
      const link = document.createElement("a");
      link.href = href;
      link.textContent = label;
      if (href.startsWith("/respflow/files/")) link.setAttribute("download", nameOf(href));
      answer.append(link);
    }
    at = match.index + match[0].length;
  }
  answer.append(text.slice(at));
}

function handle(event) {
  switch (event.type) {
    case "response.started":
      $("status").textContent = "running…";
      break;
    case "code.started":
      callBox(event.item_id, event.tool);
      break;
    case "code.delta":
      callBox(event.item_id, "code_interpreter").querySelector("pre.code").textContent += event.delta;
      break;
    case "code.output": {
      // The shell streams its output; Code Interpreter's arrives whole, as code.logs.
      const box = callBox(event.item_id, "shell");
      let live = box.querySelector("pre.logs");
      if (!live) {
        live = document.createElement("pre");
        live.className = "logs";
        live.dataset.live = "yes";
        box.append(live);
      }
      live.textContent += event.delta;
      break;
    }
    case "code.logs": {
      const box = callBox(event.item_id, "code_interpreter");
      if (box.querySelector("pre.logs[data-live]")) break; // it streamed already
      const logs = document.createElement("pre");
      logs.className = "logs";
      logs.textContent = event.logs;
      box.append(logs);
      break;
    }
    case "code.image": {
      const img = document.createElement("img");
      img.src = event.url;
      img.alt = "an image the code showed";
      callBox(event.item_id, "code_interpreter").append(img);
      break;
    }
    case "text.delta":
      $("answer-box").hidden = false;
      $("answer").textContent += event.delta;
      break;
    case "message.completed":
      $("answer-box").hidden = false;
      renderAnswer(event.text);
      break;
    case "file.saved": {
      $("files-box").hidden = false;
      const item = document.createElement("li");
      item.textContent = `${event.filename} (${event.size} bytes, ${event.resolved_by})`;
      const maker = document.createElement("span");
      maker.className = "maker";
      maker.textContent = madeBy(event);
      item.append(" ", maker);
      $("files").append(item);
      break;
    }
    case "file.failed": {
      $("files-box").hidden = false;
      const item = document.createElement("li");
      item.textContent = `could not save ${event.file_id || event.path}: ${event.reason}`;
      $("files").append(item);
      break;
    }
  }
  if (ENDS.has(event.type)) {
    $("status").textContent = event.type === "response.completed" ? "done" : `ended: ${event.type}`;
  }
}

$("ask").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  $("work").textContent = "";
  $("answer").textContent = "";
  $("files").textContent = "";
  calls = {};
  $("status").textContent = "starting…";
  const reply = await fetch("/respflow/responses", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ input: $("prompt").value }),
  });
  if (!reply.ok) {
    $("status").textContent = `could not start: ${reply.status}`;
    return;
  }
  // events_url is signed for this one response; EventSource resumes by itself after a
  // drop, sending the last id (the event's cursor).
  const { events_url } = await reply.json();
  const source = new EventSource(events_url);
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    handle(event);
    if (ENDS.has(event.type)) source.close();
  };
});
