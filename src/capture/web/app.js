// The capture page: inboxes, messages (live), one message's views.
//
// Plain DOM, no framework. Everything from a message is put in with
// textContent or attributes, never as markup, except its HTML, which goes
// sanitized into a sandboxed frame (sanitize.js). The page talks only to
// this server (/api/v1/...) and shows what it answers: the server parses
// the mail (GMime), finds links and codes, and keeps the inbox list; live
// updates come from its event stream (/api/v1/events).
import { sanitizeMessageHtml } from "/assets/sanitize.js";

const RETRY_MS = 3000;
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
  source: null,          // the EventSource
  retryTimer: 0,         // reconnecting after the stream failed
  inboxTimer: 0,         // an inbox list reload, soon
  generation: 0,         // of the list and stream now wanted (filters)
  inboxes: [],
  view: null,            // the message shown: {id, meta, raw}
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

// The list's filters, as the API takes them (GET /messages and /events).
function filters() {
  return { inbox: state.inbox, subject: state.subject, from: state.from };
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
  let list;
  try {
    const r = await api("/api/v1/inboxes");
    list = (r && r.inboxes) || [];
    clearError("Loading inboxes");
  } catch (e) {
    showError(`Loading inboxes: ${e.message}`);
    return;
  }
  const changed = JSON.stringify(list) !== JSON.stringify(state.inboxes);
  state.inboxes = list;
  if (changed) renderInboxes();
}

// Counts change with every arrival and deletion: asked again, once for a
// burst of events.
function inboxesChanged() {
  clearTimeout(state.inboxTimer);
  state.inboxTimer = setTimeout(loadInboxes, 200);
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
  reload();
}

// ---------- message list ----------

// Lists the messages; true when that worked and the filters are still the
// ones asked about (gen: state.generation when asked).
async function loadMessages(gen = state.generation) {
  try {
    const r = await api("/api/v1/messages" + query({ ...filters(), limit: LIST_LIMIT }));
    if (gen !== state.generation) return false;
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
    return true;
  } catch (e) {
    if (gen === state.generation) showError(`Loading messages: ${e.message}`);
    return false;
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
  clearTimeout(state.retryTimer);
  state.retryTimer = 0;
}

function setLive(text) {
  $("live").textContent = text;
}

// Lists the messages, then follows the event stream from the newest one
// listed, so nothing that arrives in between is missed. Again from the
// start whenever the filters change or the stream fails for good.
async function reload() {
  const gen = ++state.generation;
  stopLive();
  if (await loadMessages(gen)) {
    startLive(gen);
  } else if (gen === state.generation) {
    setLive("Disconnected, retrying");
    state.retryTimer = setTimeout(reload, RETRY_MS);
  }
}

function parseData(ev) {
  try {
    return JSON.parse(ev.data);
  } catch {
    return null;
  }
}

function startLive(gen) {
  // the list is newest first; with nothing listed, every match is new
  const cursor = state.messages.length ? state.messages[0].cursor : "0";
  const es = new EventSource("/api/v1/events" + query({ ...filters(), last_event_id: cursor }));
  let opened = false;
  state.source = es;
  es.addEventListener("open", () => {
    // back after a break (EventSource resumes from the last id it saw):
    // deletions in the break were not heard, so list again
    if (opened) loadMessages(gen);
    opened = true;
    setLive("Live");
  });
  es.addEventListener("error", () => {
    if (gen !== state.generation) return;
    if (es.readyState === EventSource.CLOSED) {
      // refused (say, too many streams): list and subscribe again, later
      setLive("Disconnected, retrying");
      state.source = null;
      state.retryTimer = setTimeout(reload, RETRY_MS);
    } else {
      setLive("Reconnecting…");
    }
  });
  es.addEventListener("message", (ev) => {
    const m = parseData(ev);
    if (!m || !m.id) return;
    inboxesChanged();
    if (state.messages.some((x) => x.id === m.id)) return;
    state.messages.unshift(m);   // the stream has the list's filters
    if (state.messages.length > LIST_LIMIT) state.messages.pop();
    state.total = (state.total ?? 0) + 1;
    renderMessages();
  });
  es.addEventListener("deleted", (ev) => {
    const d = parseData(ev);
    if (!d) return;
    inboxesChanged();
    if (d.id) {
      if (state.messages.some((m) => m.id === d.id)) {
        state.messages = state.messages.filter((m) => m.id !== d.id);
        state.total = Math.max(0, (state.total ?? 1) - 1);
        renderMessages();
      }
      if (state.selected === d.id && state.view && !state.view.gone) {
        state.view.gone = true;
        renderView();
      }
    } else if (d.all && (d.inbox === null || !state.inbox || d.inbox === state.inbox)) {
      // every message, or an inbox's: what is left is the server's to say
      loadMessages(gen);
    }
  });
  es.addEventListener("pruned", (ev) => {
    const d = parseData(ev);
    if (d && typeof d.count === "number") notePruned(state.pruned + d.count);
    loadMessages(gen);
    inboxesChanged();
  });
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
    state.view = { id, meta, raw: null };
  } catch (e) {
    if (state.selected !== id) return;
    state.view = { id, error: e.message, gone: e.status === 404 };
  }
  renderView();
}

// The Raw tab: the message as it was received, as text.
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
  view.raw = await r.text();
}

// Only URLs of this server are used from the API's JSON.
const ownUrl = (u) => (typeof u === "string" && u.startsWith("/api/v1/") ? u : null);

// "Name <address>, ..." from the API's [{name, address}].
function formatAddresses(list) {
  return (list || []).map((a) => (a.name ? `${a.name} <${a.address}>` : a.address)).join(", ");
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
      el("dt", { text: "From" }),
      el("dd", { id: "msg-from", text: formatAddresses(m.addresses?.from) || m.from || "" }),
      el("dt", { text: "To" }),
      el("dd", { id: "msg-to", text: formatAddresses(m.addresses?.to) || (m.to || []).join(", ") }),
      m.addresses?.cc?.length
        ? [el("dt", { text: "Cc" }), el("dd", { text: formatAddresses(m.addresses.cc) })] : null,
      m.addresses?.reply_to?.length
        ? [el("dt", { text: "Reply-To" }), el("dd", { text: formatAddresses(m.addresses.reply_to) })] : null,
      m.date ? [el("dt", { text: "Date" }), el("dd", { text: m.date })] : null,
      el("dt", { text: "Received" }), el("dd", { text: formatTime(m.received) }),
      el("dt", { text: "Size" }), el("dd", { text: formatSize(m.size) }),
      m.message_id ? [el("dt", { text: "Message-ID" }), el("dd", { text: m.message_id })] : null,
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
  const m = v.meta;
  if (m.truncated) {
    panel.append(el("p", {
      class: "notice", text: "This message is large: only part of it was read; Raw has all of it.",
    }));
  }
  switch (state.tab) {
    case "html": {
      if (!m.html) {
        panel.append(empty("This message has no HTML part."));
        break;
      }
      // cid: images are the parts with that Content-ID, from the server
      const cids = new Map();
      for (const p of m.parts || []) if (p.content_id && ownUrl(p.url)) cids.set(p.content_id, ownUrl(p.url));
      const clean = sanitizeMessageHtml(m.html, NONCE, (cid) => cids.get(cid) || null);
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
      panel.append(m.text ? el("pre", { class: "text", id: "msg-text", text: m.text })
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
      panel.append(m.headers?.length
        ? el("table", { class: "kv" }, el("tbody", {}, m.headers.map((h) =>
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
      const links = m.links || [];
      panel.append(links.length ? el("ul", { class: "links" }, links.map((u) => el("li", {},
        /^(?:https?:|mailto:)/i.test(u) ? el("a", { href: u, target: "_blank", rel: "noopener noreferrer", text: u })
          : el("code", { text: u }))))
        : empty("No links."));
      break;
    }
    case "codes": {
      const codes = m.codes || [];
      panel.append(codes.length ? el("ul", { class: "codes" }, codes.map((c) => el("li", {},
        el("code", { text: c }), " ",
        el("button", { type: "button", onclick: () => navigator.clipboard?.writeText(c) }, "Copy"))))
        : empty("No codes found."));
      break;
    }
    case "attachments":
      panel.append(m.attachments?.length ? el("table", { class: "kv" },
        el("thead", {}, el("tr", {}, ["Name", "Type", "Size", ""].map((t) => el("th", { scope: "col", text: t })))),
        el("tbody", {}, m.attachments.map((a) => {
          const url = ownUrl(a.url);
          return el("tr", {}, el("td", { text: a.filename || `part ${a.part}` }),
            el("td", { text: a.content_type || "" }),
            el("td", { text: formatSize(a.size) }),
            el("td", {}, url ? el("a", { href: url, download: a.filename || `part-${a.part}` }, "Download") : ""));
        })))
        : empty("No attachments."));
      break;
    case "auth":
      panel.append(m.authentication_results
        ? el("pre", { class: "text", text: m.authentication_results })
        : empty("No Authentication-Results header (SPF, DKIM and DMARC results appear here when checked)."));
      break;
  }
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
    loadInboxes();
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
    loadInboxes();
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
    reload();
  });
  $("search").addEventListener("reset", () => {
    state.subject = state.from = "";
    state.messages = [];
    reload();
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
  loadInboxes();
  reload();
  if (q.get("id")) selectMessage(q.get("id"));
}

init();
