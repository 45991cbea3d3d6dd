// A small MIME reader for the capture page.
//
// The API's message JSON is to carry headers, text, html and parts; until it
// does (or for a field it leaves out) the page reads them from the raw
// message itself. This reads what mail from an application usually is:
// headers with RFC 2047 words, multipart nesting, base64 and
// quoted-printable, charsets the browser's TextDecoder knows.

// Bytes <-> "binary strings" (one char per byte), the form MIME is parsed in.
export function bytesToBinary(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return s;
}

function binaryToBytes(s) {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

export function decodeText(bytes, charset) {
  let dec;
  try {
    dec = new TextDecoder((charset || "utf-8").trim());
  } catch {
    dec = new TextDecoder("utf-8");  // an unknown charset: best effort
  }
  return dec.decode(bytes);
}

// RFC 2047 encoded words (=?charset?B|Q?...?=); the rest is read as UTF-8.
function decodeWords(value) {
  const re = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;
  value = value.replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?)/g, "$1");
  let out = "", last = 0, m;
  while ((m = re.exec(value))) {
    out += decodeText(binaryToBytes(value.slice(last, m.index)));
    const charset = m[1].split("*")[0];
    let bin;
    if (m[2].toUpperCase() === "B") {
      bin = base64ToBinary(m[3]);
    } else {
      bin = m[3].replace(/_/g, " ").replace(/=([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
    }
    out += decodeText(binaryToBytes(bin), charset);
    last = re.lastIndex;
  }
  return out + decodeText(binaryToBytes(value.slice(last)));
}

function base64ToBinary(s) {
  s = s.replace(/[^A-Za-z0-9+/]/g, "");
  if (s.length % 4 === 1) s = s.slice(0, -1);
  while (s.length % 4) s += "=";
  try {
    return atob(s);
  } catch {
    return "";
  }
}

function parseHeaders(head) {
  const headers = [];
  for (const line of head.replace(/\r?\n(?=[ \t])/g, "").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0)
      headers.push({ name: line.slice(0, colon).trim(), value: decodeWords(line.slice(colon + 1).trim()) });
  }
  return headers;
}

function header(headers, name) {
  const h = headers.find((x) => x.name.toLowerCase() === name);
  return h ? h.value : "";
}

// "type/sub; a=b; c="d"" -> {value: "type/sub", params: {a: "b", c: "d"}}
function parseParams(value) {
  const [first, ...rest] = value.split(/;(?=(?:[^"]*"[^"]*")*[^"]*$)/);
  const params = {};
  for (const p of rest) {
    const eq = p.indexOf("=");
    if (eq < 0) continue;
    let name = p.slice(0, eq).trim().toLowerCase();
    let v = p.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, "$1");
    if (name.endsWith("*")) {  // RFC 2231: charset'lang'%XX
      name = name.slice(0, -1);
      const m = /^([^']*)'[^']*'(.*)$/.exec(v);
      if (m) {
        try {
          const bin = m[2].replace(/%([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
          v = decodeText(binaryToBytes(bin), m[1] || "utf-8");
        } catch { /* keep it as it came */ }
      }
    }
    params[name] = v;
  }
  return { value: first.trim().toLowerCase(), params };
}

function decodeBody(body, encoding) {
  switch (encoding.trim().toLowerCase()) {
    case "base64":
      return binaryToBytes(base64ToBinary(body));
    case "quoted-printable":
      return binaryToBytes(body.replace(/[ \t]+(?=\r?\n|$)/g, "").replace(/=\r?\n/g, "").replace(/=([0-9A-Fa-f]{2})/g,
        (_, h) => String.fromCharCode(parseInt(h, 16))));
    default:
      return binaryToBytes(body);
  }
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function splitMultipart(body, boundary) {
  const re = new RegExp("(?:^|\\r?\\n)--" + escapeRegExp(boundary) + "(--)?[ \\t]*(?:\\r?\\n|$)", "g");
  const parts = [];
  let start = -1, m;
  while ((m = re.exec(body))) {
    if (start >= 0) parts.push(body.slice(start, m.index));
    start = re.lastIndex;
    if (m[1]) break;
    if (m[0].length === 0) re.lastIndex++;
  }
  return parts;
}

// Parses a message given as bytes: {headers, text, html, parts}. Each part:
// {part, content_type, filename, size, disposition, content_id, bytes}.
export function parseMessage(bytes) {
  const out = { headers: null, text: null, html: null, parts: [] };
  let count = 0;
  const walk = (entity, depth) => {
    const sep = /\r?\n\r?\n/.exec(entity);
    const head = sep ? entity.slice(0, sep.index) : entity;
    const body = sep ? entity.slice(sep.index + sep[0].length) : "";
    const headers = parseHeaders(head);
    if (!out.headers) out.headers = headers;
    const ct = parseParams(header(headers, "content-type") || "text/plain");
    if (ct.value.startsWith("multipart/") && ct.params.boundary && depth < 20) {
      for (const p of splitMultipart(body, ct.params.boundary)) walk(p, depth + 1);
      return;
    }
    const disp = parseParams(header(headers, "content-disposition") || "");
    const filename = disp.params.filename || ct.params.name || null;
    const data = decodeBody(body, header(headers, "content-transfer-encoding") || "7bit");
    const cid = header(headers, "content-id").replace(/^<|>$/g, "") || null;
    const attached = disp.value === "attachment" || (filename && !ct.value.startsWith("text/"));
    if (!attached && ct.value === "text/plain" && out.text === null) {
      out.text = decodeText(data, ct.params.charset);
    } else if (!attached && ct.value === "text/html" && out.html === null) {
      out.html = decodeText(data, ct.params.charset);
    }
    out.parts.push({
      part: ++count, content_type: ct.value, filename, size: data.length,
      disposition: disp.value || null, content_id: cid, bytes: data,
    });
  };
  walk(bytesToBinary(bytes), 0);
  out.headers = out.headers || [];
  return out;
}
