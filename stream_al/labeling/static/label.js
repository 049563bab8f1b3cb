// The labeling screen. Keyboard first: 1-9 pick a class, 0 or S skip ("don't know"),
// U undo the last answer, N type a new class. The page holds two items from the server
// (the one shown and the next, prefetched), so the next item shows as soon as a key is
// pressed; the answer travels to the server behind it.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
// ``sent`` counts the answers sent: a list of items asked for before the latest answer
// may still hold the item just answered, and would bring it back on screen.
const state = { items: [], shown: null, correcting: null, undoUntil: 0, sent: 0 };
// Milliseconds from an answer to the next item on screen (read by the browser tests).
window.streamAlTimings = [];

const REASONS = {
  "uncertain": "the model is unsure about this one",
  "exploration": "a random pick, to keep the model's view of the stream honest",
  "warm-up": "warm-up: the model has too few labels yet",
};
const IMAGE_URL = /^https?:\/\/\S+\.(png|jpe?g|gif|webp|svg|bmp)(\?\S*)?$/i;
const ANY_URL = /^https?:\/\/\S+$/i;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

async function api(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (response.status === 401) { window.location = "/"; return [401, {}]; }
  const data = await response.json();
  if (data.status) renderStatus(data.status);
  return [response.status, data];
}

function renderStatus(status) {
  const set = (id, text) => { document.getElementById(id).textContent = text; };
  set("queue", String(status.queue_items));
  set("backlog", String(status.backlog));
  set("mine", String(status.labels));
  set("skips", String(status.skips));
  set("rate", status.labels_per_hour.toFixed(0));
  set("agreement", status.agreement === null ? "–" : (100 * status.agreement).toFixed(0) + "%");
  set("k", String(status.annotators_per_item));
}

// The classes offered: the query's (learner.classes, or those learned so far), then any
// the model gave a probability to that are not among them.
function classesOf(item) {
  const classes = [...item.classes];
  for (const name of Object.keys(item.probabilities)) {
    if (!classes.includes(name)) classes.push(name);
  }
  return classes;
}

// Floats as a person reads them: six significant digits (1.5740726999999999 -> 1.57407).
function asText(value) {
  if (value === null) return "";
  if (typeof value === "number" && !Number.isInteger(value)) return String(Number(value.toPrecision(6)));
  return String(value);
}

function renderValue(value) {
  const text = asText(value);
  if (typeof value === "string" && IMAGE_URL.test(value)) {
    return el("img", { src: value, alt: "image from the sample's metadata", referrerpolicy: "no-referrer" });
  }
  if (typeof value === "string" && ANY_URL.test(value)) {
    return el("a", { href: value, target: "_blank", rel: "noopener noreferrer" }, text);
  }
  return el("span", { class: "text" }, text);
}

function table(entries, cls) {
  return el("table", { class: cls },
    ...entries.map(([name, value]) => el("tr", {},
      el("td", { class: "name" }, name), el("td", {}, renderValue(value)))));
}

function render() {
  const card = document.getElementById("item");
  card.replaceChildren();
  const item = state.correcting ? state.correcting.item : state.items[0];
  state.shown = item || null;
  if (!item) {
    card.append(el("div", { class: "empty", id: "empty" }, "No items to label right now; new ones show up here as the model asks."));
    return;
  }
  card.dataset.itemId = item.id;
  if (state.correcting) {
    const before = state.correcting.previous === null ? "don't know" : state.correcting.previous;
    card.append(el("div", { class: "correcting" }, `Correcting your answer (it was: ${before}). Pick the right one.`));
  }
  const proba = Object.entries(item.probabilities).sort((a, b) => b[1] - a[1]);
  const uncertainty = `uncertainty ${item.uncertainty.toFixed(2)}` +
    (item.threshold === null ? "" : `, threshold ${item.threshold.toFixed(2)}`);
  card.append(
    el("h2", {}, `Item ${item.id}`),
    el("div", { class: "why" }, el("span", { class: "reason", id: "reason" }, item.reason),
       `${REASONS[item.reason] || ""} (${uncertainty})`),
  );
  // What a person reads first (a text, an image), then what the model sees.
  const left = el("div", {});
  if (item.metadata && Object.keys(item.metadata).length) {
    left.append(el("h3", {}, "About this sample"),
                table(Object.entries(item.metadata), "metadata"));
  }
  left.append(el("h3", {}, "Features"), table(Object.entries(item.features), "features"));
  const guess = item.predicted_label === null ? "no guess yet" : item.predicted_label;
  const right = el("div", {}, el("h3", {}, `The model says: ${guess}`));
  const bars = el("div", { class: "proba" });
  proba.forEach(([name, p], index) => {
    bars.append(el("span", {}, name),
      el("div", { class: "track" }, el("div", { class: "fill" + (index === 0 ? " top" : ""), style: `width:${(100 * p).toFixed(1)}%` })),
      el("span", { class: "value" }, `${(100 * p).toFixed(0)}%`));
  });
  right.append(proba.length ? bars : el("div", { class: "why" }, "The model has no probabilities yet."));
  card.append(el("div", { class: "columns" }, left, right));

  const answers = el("div", { class: "answers" });
  classesOf(item).forEach((name, index) => {
    const key = index < 9 ? el("kbd", {}, String(index + 1)) : null;
    answers.append(el("button", { class: "class", "data-label": name, onclick: () => answer(name) }, key, name));
  });
  answers.append(el("button", { id: "skip", onclick: () => answer(null) }, el("kbd", {}, "0"), "don't know"));
  if (config.newClasses) {
    const input = el("input", { id: "newclass", placeholder: "new class", maxlength: "256", "aria-label": "new class" });
    input.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Enter" && input.value.trim()) answer(input.value.trim());
      if (event.key === "Escape") input.blur();
    });
    answers.append(el("span", { class: "newclass" }, el("kbd", {}, "N"), input));
  }
  card.append(answers);
  updateUndo();
}

function updateUndo() {
  const button = document.getElementById("undo");
  button.disabled = Date.now() > state.undoUntil || state.correcting !== null;
}

// Keep the item on screen first, then the others the server holds for us, by its order.
function take(items) {
  const shown = state.shown && !state.correcting ? state.shown.id : null;
  const first = items.filter((i) => i.id === shown);
  state.items = first.concat(items.filter((i) => i.id !== shown));
  const onScreen = state.correcting ? state.correcting.item : state.items[0];
  if (!state.shown || !onScreen || onScreen.id !== state.shown.id) render();
}

function notice(text) { document.getElementById("notice").textContent = text; }

async function answer(label) {
  const item = state.shown;
  if (!item) return;
  const started = performance.now();
  const corrects = state.correcting !== null;
  state.correcting = null;
  state.items = state.items.filter((i) => i.id !== item.id);
  render();
  window.streamAlTimings.push(performance.now() - started);
  state.undoUntil = Date.now() + config.undoSeconds * 1000;
  updateUndo();
  notice("");
  const sent = ++state.sent;
  const [code, data] = await api("/api/answer", { id: item.id, label, corrects });
  if (code !== 200) notice(data.error || `the answer was not taken (${code})`);
  if (data.items && sent === state.sent) take(data.items);
}

async function undo() {
  if (Date.now() > state.undoUntil || state.correcting) return;
  const [code, data] = await api("/api/undo", {});
  if (code !== 200) { notice(data.error || "nothing to undo"); return; }
  state.correcting = { item: data.item, previous: data.previous };
  render();
}

async function refresh() {
  const sent = state.sent;
  try {
    const [, data] = await api("/api/items");
    if (data.items && sent === state.sent) take(data.items);
  } catch (error) {
    notice("the labeling server does not answer; retrying");
  }
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || !state.shown) return;
  const classes = classesOf(state.shown);
  if (/^[1-9]$/.test(event.key) && Number(event.key) <= classes.length) {
    answer(classes[Number(event.key) - 1]);
  } else if (event.key === "0" || event.key === "s" || event.key === "S") {
    answer(null);
  } else if (event.key === "u" || event.key === "U") {
    undo();
  } else if ((event.key === "n" || event.key === "N") && config.newClasses) {
    event.preventDefault();
    document.getElementById("newclass").focus();
  }
});
document.getElementById("undo").addEventListener("click", undo);
// A closed tab gives its items back at once; a crash waits for the lease to run out.
window.addEventListener("pagehide", () => navigator.sendBeacon("/api/release"));
setInterval(updateUndo, 500);
setInterval(refresh, config.refreshSeconds * 1000);
refresh();
