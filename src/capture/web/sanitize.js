// Turns a message's HTML into a document for <iframe sandbox srcdoc>.
//
// DOMPurify removes scripts, event handlers and javascript: URLs. On top of
// that, nothing in the result may reach another server: the page never
// fetches outside URLs, so remote images, stylesheets, fonts, forms and
// frames are dropped (and counted) rather than left for the CSP to refuse.
//
// The srcdoc document inherits the page's CSP, which allows no inline
// styles without the page's nonce. So the message's <style> sheets and
// style="" attributes are read through the CSSOM (which also normalises and
// filters them) and put into one <style> that carries the nonce; each
// style="" becomes a class rule. The sandbox (no allow-scripts) means no
// script can run in the frame whatever it contains.
//
// Even parsing inline styles in an inert document (DOMPurify's DOMParser)
// makes the browser report CSP violations (as do an event handler
// attribute and a <base>), so before DOMPurify sees the HTML, a pre-pass
// (prepare) takes the <style> elements out, renames style="" to
// data-tern-style="", and drops on...="" attributes and <base> tags. It
// only has to be good, not perfect: what it misses is still sanitized,
// just reported by the CSP (and left unstyled).
import DOMPurify from "/assets/purify.js";

const FORBID_TAGS = ["style", "form", "input", "button", "select", "textarea", "option", "optgroup",
  "datalist", "meta", "link", "base", "iframe", "frame", "frameset", "object", "embed", "applet",
  "audio", "video", "source", "track", "picture", "svg", "math", "template", "noscript"];
const FORBID_ATTR = ["nonce", "srcset", "ping", "action", "formaction", "background", "poster",
  "integrity", "crossorigin", "usemap"];

// One sanitize call at a time uses this (DOMPurify's hooks are global).
let job = null;

// A declaration that loads something: url(), image-set("...") and friends,
// unless every URL in it is a data: URL.
const LOADS = /(?:url|src|image|image-set|-webkit-image-set|cross-fade|element)\s*\(/i;
const DATA_URL = /url\(\s*(["']?)data:[^"')]*\1\s*\)/gi;

function cleanDeclarations(style) {
  for (let i = style.length - 1; i >= 0; i--) {
    const name = style[i];
    const value = style.getPropertyValue(name);
    if (LOADS.test(value.replace(DATA_URL, ""))) {
      style.removeProperty(name);
      job.blocked++;
    }
  }
}

// Drops @import, @font-face and remote url()s from a rule list, in place.
function cleanRules(owner) {
  const rules = owner.cssRules;
  for (let i = rules.length - 1; i >= 0; i--) {
    const r = rules[i];
    if (r instanceof CSSImportRule || r instanceof CSSFontFaceRule) {
      if (owner.deleteRule) owner.deleteRule(i);
      job.blocked++;
      continue;
    }
    if (r.style) cleanDeclarations(r.style);
    if (r.cssRules) cleanRules(r);
  }
}

function cleanSheet(text) {
  const sheet = new CSSStyleSheet();
  try {
    if (/@import/i.test(text)) job.blocked++;  // replaceSync drops these itself
    sheet.replaceSync(text.replace(/@import[^;]*;?/gi, ""));
  } catch {
    return "";
  }
  cleanRules(sheet);
  return Array.from(sheet.cssRules, (r) => r.cssText).join("\n");
}

function styleAttributeRule(node, attr) {
  const probe = document.createElement("div").style;
  probe.cssText = node.getAttribute(attr);
  node.removeAttribute(attr);
  cleanDeclarations(probe);
  if (!probe.length) return;
  const decls = [];
  for (let i = 0; i < probe.length; i++)
    decls.push(`${probe[i]}: ${probe.getPropertyValue(probe[i])} !important`);
  const cls = `tern-s${job.rules.length}`;
  node.classList.add(cls);
  job.rules.push(`.${cls} { ${decls.join("; ")} }`);
}

function decodeCid(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;  // a stray %: take it as written
  }
}

DOMPurify.addHook("uponSanitizeElement", (node, data) => {
  if (job && data.tagName === "style") job.sheets.push(cleanSheet(node.textContent || ""));
  else if (job && ["link", "iframe", "frame", "object", "embed", "audio", "video", "source"].includes(data.tagName))
    job.blocked++;
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (!job) return;
  if (node.hasAttribute("src")) {
    const src = node.getAttribute("src").trim();
    const cid = /^cid:(.*)$/i.exec(src);
    const url = cid ? job.cidUrl(decodeCid(cid[1])) : /^data:image\//i.test(src) ? src : null;
    if (url) {
      node.setAttribute("src", url);
    } else {
      node.removeAttribute("src");
      if (!cid) job.blocked++;
      node.setAttribute("title", cid ? "inline image not found" : "remote image not loaded");
    }
  }
  if (node.hasAttribute("href")) {
    const href = node.getAttribute("href").trim();
    if (/^(?:https?:|mailto:|tel:)/i.test(href)) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    } else if (!href.startsWith("#")) {
      node.removeAttribute("href");
    }
  }
  for (const attr of ["style", "data-tern-style"])
    if (node.hasAttribute(attr)) styleAttributeRule(node, attr);
});

// Comments go (Outlook's conditional ones hold <style>s for Outlook only);
// <style> elements go into sheets. Whichever starts first wins, as in HTML.
const COMMENT_OR_STYLE = /<!--[\s\S]*?(?:--!?>|$)|<style(?=[\s/>])[^>]*>([\s\S]*?)(?:<\/style[^>]*>|$)/gi;
const SPACE = /[\t\n\f\r ]/;

function prepare(html, sheets) {
  html = html.replace(COMMENT_OR_STYLE, (m, css) => {
    if (css !== undefined) sheets.push(css);
    return "";
  });
  // start tags, read as the HTML tokenizer does
  let out = "", done = 0;
  const n = html.length;
  const open = /<[a-zA-Z]/g;
  let m;
  while ((m = open.exec(html))) {
    let j = open.lastIndex;
    while (j < n && !SPACE.test(html[j]) && html[j] !== "/" && html[j] !== ">") j++;
    if (html.slice(m.index + 1, j).toLowerCase() === "base") {
      const end = html.indexOf(">", j);
      out += html.slice(done, m.index);
      done = end < 0 ? n : end + 1;
      open.lastIndex = done;
      continue;
    }
    for (;;) {
      while (j < n && (SPACE.test(html[j]) || html[j] === "/")) j++;
      if (j >= n || html[j] === ">") break;
      const start = j++;
      while (j < n && !SPACE.test(html[j]) && !"/>=".includes(html[j])) j++;
      const name = html.slice(start, j).toLowerCase();
      if (name === "style") {
        out += html.slice(done, start) + "data-tern-style";
        done = j;
      }
      let k = j;
      while (k < n && SPACE.test(html[k])) k++;
      if (html[k] === "=") {
        k++;
        while (k < n && SPACE.test(html[k])) k++;
        if (html[k] === '"' || html[k] === "'") {
          const q = html.indexOf(html[k], k + 1);
          k = q < 0 ? n : q + 1;
        } else {
          while (k < n && !SPACE.test(html[k]) && html[k] !== ">") k++;
        }
      } else {
        k = j;
      }
      if (name.startsWith("on")) {  // the handler and its value
        out += html.slice(done, start);
        done = k;
      }
      j = k;
    }
    open.lastIndex = j;
  }
  return out + html.slice(done);
}

const BASE_CSS = `html { color-scheme: light; }
body { margin: 8px; font-family: system-ui, sans-serif; background: #fff; color: #111; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; }`;

// {srcdoc, blocked (remote resources dropped)}. cidUrl(contentId)
// gives the URL of an inline part, or null.
export function sanitizeMessageHtml(html, nonce, cidUrl) {
  job = { sheets: [], rules: [], blocked: 0, cidUrl };
  try {
    const sheets = [];
    html = prepare(html, sheets);
    job.sheets = sheets.map(cleanSheet);
    const root = DOMPurify.sanitize(html, {
      WHOLE_DOCUMENT: true, RETURN_DOM: true, FORBID_TAGS, FORBID_ATTR,
    });
    const body = root && root.querySelector("body");
    // "<" cannot end the <style> element: CSS reads \3c as the same character
    const css = [BASE_CSS, ...job.sheets, ...job.rules].join("\n").replace(/</g, "\\3c ");
    // the nonce is base64: nothing in it needs quoting
    const srcdoc = `<!doctype html><html><head><meta charset="utf-8"><style nonce="${nonce}">${css}</style>` +
      `</head><body>${body ? body.innerHTML : ""}</body></html>`;
    return { srcdoc, blocked: job.blocked };
  } finally {
    job = null;
  }
}
