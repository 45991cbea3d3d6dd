// The capture page: inboxes, messages (live), one message's views.
//
// Plain DOM, no framework. Everything from a message is put in with
// textContent or attributes, never as markup, except its HTML, which goes
// sanitized into a sandboxed frame (sanitize.js). The page talks only to
// this server (/api/v1/...). Fields and endpoints the API does not have
// yet are done without: inboxes come from the messages, live updates from
// polling, headers/text/html/parts from the raw message (mime.js).
import { parseMessage, decodeText } from "/assets/mime.js";
import { sanitizeMessageHtml } from "/assets/sanitize.js";

const POLL_MS = 2000;
const LIST_LIMIT = 200;

const $ = (id) => document.getElementById(id);
// The page's CSP nonce, for the <style> of a message's HTML (sanitize.js).
const NONCE = document.querySelector("script[nonce]")?.nonce || "";

const state = {
  inbox: "",             // "" is all messages
  subject: "",
  from: "",
  messages: [],
  selected: null,        // message id
  tab: "html",
  pruned: 0,             // messages removed by the store, as last heard
  prunedDismissed: 0,
  live: null,            // "events" or "polling"
  source: null,          // the EventSource
  pollTimer: 0,
  noEvents: false,       // /api/v1/events is missing or failed: poll
  noInboxList: false,    // GET /api/v1/inboxes is missing: derive
  inboxes: [],
  view: null,            // the message shown: {id, meta, detail, raw}
};

// ---------- small helpers ----------

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function formatSize(n) {
  if (typeof n !== "number") return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function formatTime(s) {
  const d = new Date(s);
  return isNaN(d) ? (s || "") : d.toLocaleString();
}

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}

function clearError(prefix) {
  if ($("error-text").textContent.startsWith(prefix)) $("error").hidden = true;
}

// Redraws a list without losing the keyboard focus on one of its buttons.
function redraw(list, items, key) {
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset[key] : undefined;
  list.replaceChildren(...items);
  if (focused !== undefined) list.querySelector(`button[data-${key}="${CSS.escape(focused)}"]`)?.focus();
}

// A request to the API; throws an Error with the server's {"error": ...}.
async function api(path, options = {}) {
  let r;
  try {
    r = await fetch(path, { cache: "no-store", ...options });
  } catch (e) {
    throw new Error(`cannot reach the server (${e.message})`);
  }
  const type = r.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await r.json().catch(() => null) : null;
  if (!r.ok) {
    const err = new Error(body && body.error ? body.error : `${r.status} ${r.statusText}`);
    err.status = r.status;
    throw err;
  }
  return body;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function matchesFilter(m) {
  const has = (hay, needle) => !needle || String(hay || "").toLowerCase().includes(needle.toLowerCase());
  return (!state.inbox || (m.inbox || []).includes(state.inbox)) &&
    has(m.subject, state.subject) && (has(m.from, state.from) || has(m.envelope?.mail_from, state.from));
}

// ---------- pruned banner ----------

// total: messages the store removed since it started (the list's "pruned")
function notePruned(total) {
  if (typeof total !== "number") return;
  state.pruned = total;
  const n = state.pruned - state.prunedDismissed;
  $("pruned").hidden = n <= 0;
  if (n > 0) {
    $("pruned-text").textContent = n === 1
      ? "1 oldest message was removed (capture_max_messages)"
      : `${n} oldest messages were removed (capture_max_messages)`;
  }
}

// ---------- inboxes ----------

async function loadInboxes() {
  let list = null;
  if (!state.noInboxList) {
    try {
      const r = await api("/api/v1/inboxes");
      if (r && Array.isArray(r.inboxes)) list = r.inboxes;
      else state.noInboxList = true;
    } catch (e) {
      state.noInboxList = true;  // not there yet (404, 405): derive it
    }
  }
  if (!list) {
    const r = await api("/api/v1/messages" + query({ limit: 1000 }));
    const by = new Map();
    for (const m of r.messages || []) {
      for (const a of m.inbox || []) {
        const i = by.get(a) || { address: a, count: 0, latest: m.received };
        i.count++;
        if (m.received > i.latest) i.latest = m.received;
        by.set(a, i);
      }
    }
    list = [...by.values()].sort((a, b) => (b.latest || "").localeCompare(a.latest || ""));
    notePruned(r.pruned);
  }
  const changed = JSON.stringify(list) !== JSON.stringify(state.inboxes);
  state.inboxes = list;
  if (changed) renderInboxes();
}

function renderInboxes() {
  const item = (address, label, count) => el("li", {},
    el("button", {
      type: "button", class: "inbox", "data-address": address,
      "aria-current": state.inbox === address ? "true" : null,
      onclick: () => selectInbox(address),
    }, el("span", { class: "addr", text: label }),
    count === null ? null : el("span", { class: "count", text: String(count) })));
  redraw($("inbox-list"), [item("", "All messages", null),
    ...state.inboxes.map((i) => item(i.address, i.address, i.count ?? ""))], "address");
}

function selectInbox(address) {
  state.inbox = address;
  state.selected = null;
  renderInboxes();
  renderView();
  saveHash();
  loadMessages();
  startLive();
}

// ---------- message list ----------

async function loadMessages() {
  try {
    const r = await api("/api/v1/messages" + query({
      inbox: state.inbox, subject: state.subject, from: state.from, limit: LIST_LIMIT,
    }));
    const msgs = r.messages || [];
    const hadSelected = state.messages.some((m) => m.id === state.selected);
    notePruned(r.pruned);
    clearError("Loading messages");
    const changed = msgs.map((m) => m.id).join() !== state.messages.map((m) => m.id).join();
    state.messages = msgs;
    state.total = r.total ?? msgs.length;
    if (changed) renderMessages();
    if (hadSelected && !msgs.some((m) => m.id === state.selected) && state.view && !state.view.gone) {
      // left the list: deleted elsewhere (say so), or only filtered out
      api(`/api/v1/messages/${encodeURIComponent(state.selected)}`).catch((e) => {
        if (e.status === 404 && state.view) {
          state.view.gone = true;
          renderView();
        }
      });
    }
  } catch (e) {
    showError(`Loading messages: ${e.message}`);
  }
}

function renderMessages() {
  $("list-title").textContent = state.inbox || "All messages";
  $("delete-all").textContent = state.inbox ? "Delete all in this inbox" : "Delete all";
  const n = state.total ?? state.messages.length;
  $("list-count").textContent = n === 0 ? "No messages."
    : n > state.messages.length ? `Newest ${state.messages.length} of ${n} messages.`
      : n === 1 ? "1 message." : `${n} messages.`;
  redraw($("message-list"), state.messages.map((m) => el("li", {},
    el("button", {
      type: "button", class: "msg", "data-id": m.id,
      "aria-current": m.id === state.selected ? "true" : null,
      onclick: () => selectMessage(m.id),
    },
    el("span", { class: "msg-subject", text: m.subject || "(no subject)" }),
    el("span", { class: "msg-from", text: m.from || "" }),
    el("span", { class: "msg-to", text: (m.to || []).join(", ") }),
    el("time", { class: "msg-time", datetime: m.received, text: formatTime(m.received) })))), "id");
}

// ---------- live updates ----------

function stopLive() {
  if (state.source) state.source.close();
  state.source = null;
  clearInterval(state.pollTimer);
  state.pollTimer = 0;
}

function setLive(mode) {
  state.live = mode;
  $("live").textContent = mode === "events" ? "Live" : "Updating every 2 s";
}

function startPolling() {
  stopLive();
  setLive("polling");
  state.pollTimer = setInterval(() => {
    loadMessages();
    loadInboxes().catch(() => {});
  }, POLL_MS);
}

function startLive() {
  stopLive();
  if (state.noEvents || typeof EventSource === "undefined") {
    startPolling();
    return;
  }
  const es = new EventSource("/api/v1/events" + query({ inbox: state.inbox }));
  let opened = false;
  state.source = es;
  es.addEventListener("open", () => {
    if (opened) loadMessages();  // back after a break: catch up
    opened = true;
    setLive("events");
  });
  es.addEventListener("error", () => {
    // never opened (no such endpoint) or given up on: poll instead
    if (!opened || es.readyState === EventSource.CLOSED) {
      state.noEvents = true;
      startPolling();
    }
  });
  es.addEventListener("message", (ev) => {
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!m || !m.id || state.messages.some((x) => x.id === m.id)) return;
    if (matchesFilter(m)) {
      state.messages.unshift(m);
      if (state.messages.length > LIST_LIMIT) state.messages.pop();
      state.total = (state.total ?? 0) + 1;
      renderMessages();
    }
    bumpInboxes(m);
  });
  es.addEventListener("deleted", (ev) => {
    let d;
    try {
      d = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (d && d.id) {
      state.messages = state.messages.filter((m) => m.id !== d.id);
      state.total = Math.max(0, (state.total ?? 1) - 1);
      renderMessages();
      if (state.selected === d.id && state.view) {
        state.view.gone = true;
        renderView();
      }
    } else {
      loadMessages();
    }
    loadInboxes().catch(() => {});
  });
  es.addEventListener("pruned", (ev) => {
    let d;
    try {
      d = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (d && typeof d.count === "number") notePruned(state.pruned + d.count);
    loadMessages();
    loadInboxes().catch(() => {});
  });
}

function bumpInboxes(m) {
  for (const a of m.inbox || []) {
    const i = state.inboxes.find((x) => x.address === a);
    if (i) {
      i.count = (i.count || 0) + 1;
      i.latest = m.received;
    } else {
      state.inboxes.unshift({ address: a, count: 1, latest: m.received });
    }
  }
  renderInboxes();
}

// ---------- one message ----------

async function selectMessage(id) {
  state.selected = id;
  for (const b of document.querySelectorAll("#message-list .msg"))
    b.setAttribute("aria-current", b.dataset.id === id ? "true" : "false");
  saveHash();
  state.view = { id, loading: true };
  renderView();
  // one column (narrow window): the message is below the list, go there
  if (window.matchMedia("(max-width: 900px)").matches) $("view").scrollIntoView({ block: "start" });
  try {
    const meta = await api(`/api/v1/messages/${encodeURIComponent(id)}`);
    if (state.selected !== id) return;
    state.view = { id, meta, detail: null, raw: null };
    // what the API leaves out is read from the raw message
    if (["headers", "text", "html", "parts"].some((k) => meta[k] === undefined)) await loadRaw(state.view);
    if (state.selected !== id) return;
    state.view.detail = mergeDetail(meta, state.view.parsed);
  } catch (e) {
    if (state.selected !== id) return;
    state.view = { id, error: e.message, gone: e.status === 404 };
  }
  renderView();
}

async function loadRaw(view) {
  let r;
  try {
    r = await fetch(`/api/v1/messages/${encodeURIComponent(view.id)}/raw`, { cache: "no-store" });
  } catch (e) {
    throw new Error(`cannot reach the server (${e.message})`);
  }
  if (!r.ok) {
    const body = await r.json().catch(() => null);
    throw new Error(body && body.error ? body.error : `${r.status} ${r.statusText}`);
  }
  const bytes = new Uint8Array(await r.arrayBuffer());
  view.raw = decodeText(bytes, "utf-8");
  view.parsed = parseMessage(bytes);
}

function pick(meta, parsed, key) {
  if (meta[key] !== undefined) return meta[key];
  return parsed ? parsed[key] : undefined;
}

function mergeDetail(meta, parsed) {
  const headers = pick(meta, parsed, "headers") || [];
  const parts = pick(meta, parsed, "parts") || [];
  let attachments = meta.attachments;
  if (attachments === undefined) {
    attachments = parts.filter((p) => p.disposition === "attachment" || p.filename);
  }
  let auth = meta.authentication_results;
  if (auth === undefined) {
    auth = headers.filter((h) => h.name.toLowerCase() === "authentication-results").map((h) => h.value).join("\n")
      || null;
  }
  return {
    headers, parts, attachments, authentication_results: auth,
    text: pick(meta, parsed, "text") ?? null,
    html: pick(meta, parsed, "html") ?? null,
    links: meta.links,
    codes: meta.codes,
    truncated: !!meta.truncated,
  };
}

// The URL for an inline part (cid:): the API's, else the part's bytes.
// Only URLs of this server are used from the API's JSON.
const ownUrl = (u) => (typeof u === "string" && u.startsWith("/api/v1/") ? u : null);

function partUrl(meta, part) {
  if (part.url) return ownUrl(part.url);
  if (part.bytes && /^image\//.test(part.content_type) && part.bytes.length < 2 * 1024 * 1024) {
    let bin = "";
    for (let i = 0; i < part.bytes.length; i += 0x8000)
      bin += String.fromCharCode.apply(null, part.bytes.subarray(i, i + 0x8000));
    return `data:${part.content_type};base64,${btoa(bin)}`;
  }
  if (typeof part.part === "number" || typeof part.part === "string") {
    if (meta.attachments !== undefined) return `/api/v1/messages/${encodeURIComponent(meta.id)}/parts/${part.part}`;
  }
  return null;
}

const TABS = [
  ["html", "HTML"], ["text", "Text"], ["raw", "Raw"], ["headers", "Headers"], ["envelope", "Envelope"],
  ["links", "Links"], ["codes", "Codes"], ["attachments", "Attachments"], ["auth", "Auth results"],
];

function renderView() {
  const view = $("view");
  const v = state.view;
  if (!state.selected || !v) {
    view.replaceChildren(el("p", { class: "muted", text: "Select a message." }));
    return;
  }
  if (v.loading) {
    view.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
    return;
  }
  if (v.error && !v.meta) {
    view.replaceChildren(el("p", { class: "notice", text: v.gone ? "This message was deleted." : v.error }));
    return;
  }
  const m = v.meta;
  const status = el("p", { class: "action-status", role: "status" });
  const releaseTo = el("input", {
    type: "text", id: "release-to", placeholder: "someone@example.com", "aria-describedby": "release-help",
  });
  const head = el("header", { class: "msg-head" },
    el("h2", { id: "msg-subject", text: m.subject || "(no subject)" }),
    el("dl", { class: "facts" },
      el("dt", { text: "From" }), el("dd", { text: m.from || "" }),
      el("dt", { text: "To" }), el("dd", { text: (m.to || []).join(", ") }),
      m.date ? [el("dt", { text: "Date" }), el("dd", { text: m.date })] : null,
      el("dt", { text: "Received" }), el("dd", { text: formatTime(m.received) }),
      el("dt", { text: "Size" }), el("dd", { text: formatSize(m.size) }),
      el("dt", { text: "ID" }), el("dd", { text: m.id })),
    v.gone ? el("p", { class: "notice", text: "This message was deleted." }) : null,
    el("div", { class: "actions" },
      el("button", {
        type: "button", class: "danger", id: "delete-message", onclick: () => deleteMessage(m.id, status),
      }, "Delete"),
      el("a", { href: `/api/v1/messages/${encodeURIComponent(m.id)}/raw`, download: `${m.id}.eml` }, "Download .eml"),
      el("form", {
        class: "release", onsubmit: (e) => {
          e.preventDefault();
          release(m.id, releaseTo.value, status);
        },
      },
      el("label", { for: "release-to" }, "Release to"), releaseTo,
      el("button", { type: "submit" }, "Release"),
      el("span", {
        id: "release-help", class: "muted", text: "deliver a copy for real (addresses, comma separated)",
      }))),
    status);
  const tablist = el("div", { class: "tabs", role: "tablist", "aria-label": "Message views" });
  const panel = el("div", { class: "tab-panel", role: "tabpanel", id: "tab-panel", tabindex: "0" });
  for (const [key, label] of TABS) {
    const selected = state.tab === key;
    tablist.append(el("button", {
      type: "button", role: "tab", id: `tab-${key}`, "data-tab": key,
      "aria-selected": selected ? "true" : "false", "aria-controls": "tab-panel", tabindex: selected ? "0" : "-1",
      onclick: () => {
        state.tab = key;
        renderView();
        $(`tab-${key}`).focus();
      },
    }, label));
  }
  tablist.addEventListener("keydown", (e) => {
    const i = TABS.findIndex(([k]) => k === state.tab);
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    state.tab = TABS[(i + step + TABS.length) % TABS.length][0];
    renderView();
    $(`tab-${state.tab}`).focus();
  });
  panel.setAttribute("aria-labelledby", `tab-${state.tab}`);
  fillPanel(panel, v);
  view.replaceChildren(head, tablist, panel);
}

function empty(text) {
  return el("p", { class: "muted", text });
}

function fillPanel(panel, v) {
  const d = v.detail;
  const m = v.meta;
  if (d.truncated) {
    panel.append(el("p", {
      class: "notice", text: "This message is large: only part of it was read; Raw has all of it.",
    }));
  }
  switch (state.tab) {
    case "html": {
      if (!d.html) {
        panel.append(empty("This message has no HTML part."));
        break;
      }
      const cids = new Map();
      for (const p of d.parts) if (p.content_id) cids.set(p.content_id, p);
      const clean = sanitizeMessageHtml(d.html, NONCE, (cid) => {
        const p = cids.get(cid);
        return p ? partUrl(m, p) : null;
      });
      v.htmlLinks = clean.links;
      if (clean.blocked > 0) {
        const what = clean.blocked === 1 ? "1 remote resource was" : `${clean.blocked} remote resources were`;
        panel.append(el("p", { class: "notice", text: `${what} not loaded: this page never fetches outside URLs.` }));
      }
      const frame = el("iframe", {
        class: "html-frame", title: "The message's HTML (sanitized)",
        sandbox: "allow-popups allow-popups-to-escape-sandbox", referrerpolicy: "no-referrer",
      });
      frame.srcdoc = clean.srcdoc;
      panel.append(frame);
      break;
    }
    case "text":
      panel.append(d.text ? el("pre", { class: "text", id: "msg-text", text: d.text })
        : empty("This message has no text part."));
      break;
    case "raw":
      if (v.raw !== null && v.raw !== undefined) {
        panel.append(el("pre", { class: "text raw", text: v.raw }));
      } else {
        panel.append(empty("Loading…"));
        loadRaw(v).then(() => {
          if (state.view === v && state.tab === "raw") renderView();
        }).catch((e) => panel.replaceChildren(el("p", { class: "notice", text: e.message })));
      }
      break;
    case "headers":
      panel.append(d.headers.length
        ? el("table", { class: "kv" }, el("tbody", {}, d.headers.map((h) =>
          el("tr", {}, el("th", { scope: "row", text: h.name }), el("td", { text: h.value })))))
        : empty("No headers."));
      break;
    case "envelope": {
      const e = m.envelope || {};
      const rows = [["MAIL FROM", e.mail_from === "" ? "<> (null sender)" : e.mail_from],
        ["RCPT TO", (e.rcpt_to || []).join(", ")], ["Client address", e.client_address],
        ["Client name", e.client_name], ["HELO", e.helo], ["TLS", e.tls], ["AUTH login", e.auth_login],
        ["Protocol", e.protocol]];
      panel.append(el("table", { class: "kv" }, el("tbody", {}, rows.map(([k, val]) =>
        el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: val ?? "—" }))))));
      break;
    }
    case "links": {
      const links = d.links ?? deriveLinks(m, d);
      panel.append(links.length ? el("ul", { class: "links" }, links.map((u) => el("li", {},
        /^(?:https?:|mailto:)/i.test(u) ? el("a", { href: u, target: "_blank", rel: "noopener noreferrer", text: u })
          : el("code", { text: u }))))
        : empty("No links."));
      break;
    }
    case "codes": {
      const codes = d.codes ?? deriveCodes(m, d);
      panel.append(codes.length ? el("ul", { class: "codes" }, codes.map((c) => el("li", {},
        el("code", { text: c }), " ",
        el("button", { type: "button", onclick: () => navigator.clipboard?.writeText(c) }, "Copy"))))
        : empty("No codes found."));
      break;
    }
    case "attachments":
      panel.append(d.attachments.length ? el("table", { class: "kv" },
        el("thead", {}, el("tr", {}, ["Name", "Type", "Size", ""].map((t) => el("th", { scope: "col", text: t })))),
        el("tbody", {}, d.attachments.map((a) => {
          const url = ownUrl(a.url)
            || (a.bytes ? URL.createObjectURL(new Blob([a.bytes], { type: "application/octet-stream" })) : null);
          return el("tr", {}, el("td", { text: a.filename || `part ${a.part}` }),
            el("td", { text: a.content_type || "" }),
            el("td", { text: formatSize(a.size) }),
            el("td", {}, url ? el("a", { href: url, download: a.filename || `part-${a.part}` }, "Download") : ""));
        })))
        : empty("No attachments."));
      break;
    case "auth":
      panel.append(d.authentication_results
        ? el("pre", { class: "text", text: d.authentication_results })
        : empty("No Authentication-Results header (SPF, DKIM and DMARC results appear here when checked)."));
      break;
  }
}

function deriveLinks(m, d) {
  const seen = new Set();
  if (d.html) for (const u of sanitizeMessageHtml(d.html, NONCE, () => null).links) seen.add(u);
  for (const u of (d.text || "").match(/\bhttps?:\/\/[^\s<>"')\]]+/g) || []) seen.add(u);
  return [...seen];
}

// Numbers of 4 to 8 digits standing alone (not years, dates, times).
function deriveCodes(m, d) {
  const text = `${m.subject || ""}\n${d.text || ""}`;
  const found = text.match(/(?<![\w\-/:.,])\d{4,8}(?![\w\-/:]|[.,]\d)/g) || [];
  return [...new Set(found.filter((c) => !/^(?:19|20)\d\d$/.test(c)))];
}

// ---------- actions ----------

async function deleteMessage(id, status) {
  try {
    await api(`/api/v1/messages/${encodeURIComponent(id)}`, { method: "DELETE" });
    state.messages = state.messages.filter((m) => m.id !== id);
    state.total = Math.max(0, (state.total ?? 1) - 1);
    state.selected = null;
    state.view = null;
    saveHash();
    renderMessages();
    renderView();
    loadInboxes().catch(() => {});
  } catch (e) {
    status.textContent = `Delete failed: ${e.message}`;
  }
}

async function deleteAll() {
  const what = state.inbox ? `every message of ${state.inbox}` : "every captured message";
  if (!window.confirm(`Delete ${what}?`)) return;
  try {
    const r = await api("/api/v1/messages" + query({ inbox: state.inbox }), { method: "DELETE" });
    state.selected = null;
    state.view = null;
    renderView();
    await loadMessages();
    loadInboxes().catch(() => {});
    $("list-status").textContent = `Deleted ${r?.deleted ?? 0} message${r?.deleted === 1 ? "" : "s"}.`;
  } catch (e) {
    showError(`Delete failed: ${e.message}`);
  }
}

async function release(id, to, status) {
  const addrs = to.split(/[\s,;]+/).filter(Boolean);
  if (!addrs.length) {
    status.textContent = "Give at least one address to release the message to.";
    return;
  }
  status.textContent = "Releasing…";
  try {
    const r = await api(`/api/v1/messages/${encodeURIComponent(id)}/release`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ to: addrs }),
    });
    status.textContent = r && r.id ? `Released: queued as ${r.id}.` : "Released.";
  } catch (e) {
    status.textContent = `Release failed: ${e.message}`;
  }
}

// ---------- location: #inbox=...&id=... ----------

function saveHash() {
  const q = new URLSearchParams();
  if (state.inbox) q.set("inbox", state.inbox);
  if (state.selected) q.set("id", state.selected);
  const h = q.toString();
  history.replaceState(null, "", h ? `#${h}` : location.pathname);
}

// ---------- start ----------

function init() {
  const q = new URLSearchParams(location.hash.slice(1));
  state.inbox = q.get("inbox") || "";
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    state.subject = $("q-subject").value.trim();
    state.from = $("q-from").value.trim();
    state.messages = [];
    loadMessages();
  });
  $("search").addEventListener("reset", () => {
    state.subject = state.from = "";
    state.messages = [];
    loadMessages();
  });
  let typing = 0;
  for (const id of ["q-subject", "q-from"]) {
    $(id).addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => $("search").requestSubmit(), 300);
    });
  }
  $("pruned-dismiss").addEventListener("click", () => {
    state.prunedDismissed = state.pruned;
    $("pruned").hidden = true;
  });
  $("error-dismiss").addEventListener("click", () => {
    $("error").hidden = true;
  });
  $("delete-all").addEventListener("click", deleteAll);
  renderInboxes();
  loadInboxes().catch((e) => showError(`Loading inboxes: ${e.message}`));
  loadMessages();
  startLive();
  if (q.get("id")) selectMessage(q.get("id"));
}

init();
