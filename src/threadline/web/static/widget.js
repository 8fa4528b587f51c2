/* Threadline web chat. Add to a page with one tag:
 *   <script src="https://threadline.example/widget.js" data-inbox="INBOX_ID" async></script>
 * Optional: data-color="#1f4fd1" (the accent), data-name / data-email (a signed-in visitor).
 * Plain JavaScript, no build step. Everything lives in a shadow root, so the page's styles
 * and the widget's never meet; message text is always set as text, never as HTML. */
(function () {
  "use strict";
  var tag = document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-inbox]');
  if (!tag || !tag.dataset.inbox || window.__threadlineWidget) return;
  window.__threadlineWidget = true;

  var inbox = tag.dataset.inbox;
  var base = new URL(tag.src, location.href).origin + "/widget/" + encodeURIComponent(inbox);
  var storeKey = "threadline:" + inbox;
  var accent = /^#[0-9a-f]{3,8}$/i.test(tag.dataset.color || "") ? tag.dataset.color : "#1f4fd1";

  var state = { token: load(), lastSeq: 0, shown: {}, open: false, info: null, source: null, unread: 0 };

  function load() {
    try { return localStorage.getItem(storeKey); } catch (e) { return null; }
  }
  function save(token) {
    state.token = token;
    try {
      if (token) localStorage.setItem(storeKey, token); else localStorage.removeItem(storeKey);
    } catch (e) { /* storage blocked: the chat lasts as long as the page */ }
  }

  // --- the elements ------------------------------------------------------------------------
  var host = document.createElement("div");
  host.setAttribute("data-threadline-widget", "");
  var root = host.attachShadow({ mode: "open" });
  var css = document.createElement("style");
  css.textContent = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;border:0;",
    "background:var(--accent);color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center}",
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}",
    ".badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;padding:0 5px;border-radius:10px;background:#b00020;color:#fff;font-size:12px;line-height:20px;text-align:center}",
    ".panel{position:fixed;right:20px;bottom:88px;z-index:2147483000;width:360px;max-width:calc(100vw - 40px);height:520px;max-height:calc(100vh - 110px);",
    "display:flex;flex-direction:column;background:#fff;color:#1a1a1a;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);overflow:hidden}",
    ".panel[hidden]{display:none}",
    "header{display:flex;align-items:center;justify-content:space-between;padding:12px 14px;background:var(--accent);color:#fff}",
    "h2{margin:0;font-size:16px;font-weight:600}",
    ".close{background:transparent;border:0;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:4px 8px;border-radius:6px}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f7f9}",
    ".msg{max-width:80%;padding:8px 11px;border-radius:12px;font-size:14px;line-height:1.4;white-space:pre-wrap;overflow-wrap:anywhere}",
    ".msg.visitor{align-self:flex-end;background:var(--accent);color:#fff;border-bottom-right-radius:4px}",
    ".msg.agent,.msg.staff,.msg.greeting{align-self:flex-start;background:#fff;color:#1a1a1a;border:1px solid #dde1e6;border-bottom-left-radius:4px}",
    ".note{font-size:12px;color:#5a6270;text-align:center}",
    ".note.error{color:#b00020}",
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #dde1e6;background:#fff}",
    "textarea{flex:1;resize:none;height:42px;max-height:120px;padding:10px;border:1px solid #8a929e;border-radius:8px;font-size:15px;color:#1a1a1a;background:#fff}",
    ".send{border:0;border-radius:8px;padding:0 14px;background:var(--accent);color:#fff;font-size:14px;font-weight:600;cursor:pointer}",
    ".send:disabled{opacity:.6;cursor:default}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;max-width:100vw;height:100%;max-height:100%;border-radius:0}",
    ".launcher.is-open{display:none}}",
    "@media (prefers-color-scheme:dark){.panel{background:#1c1f24;color:#eceff3}.log{background:#15171b}",
    ".msg.agent,.msg.staff,.msg.greeting{background:#262a31;color:#eceff3;border-color:#3a3f48}",
    "form{background:#1c1f24;border-color:#3a3f48}textarea{background:#15171b;color:#eceff3;border-color:#6b7380}.note{color:#a6adb8}}"
  ].join("");
  root.appendChild(css);
  host.style.setProperty("--accent", accent);

  function el(name, attrs, text) {
    var node = document.createElement(name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = text;
    return node;
  }

  var launcher = el("button", {
    "class": "launcher", type: "button", "aria-label": "Open chat",
    "aria-expanded": "false", "aria-controls": "tl-panel"
  });
  launcher.innerHTML = '<svg width="26" height="26" viewBox="0 0 24 24" aria-hidden="true" fill="currentColor">' +
    '<path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg>';
  var badge = el("span", { "class": "badge", hidden: "" });
  launcher.appendChild(badge);

  var panel = el("div", { "class": "panel", id: "tl-panel", role: "dialog", "aria-labelledby": "tl-title", hidden: "" });
  var header = el("header");
  var title = el("h2", { id: "tl-title" }, "Chat with us");
  var close = el("button", { "class": "close", type: "button", "aria-label": "Close chat" }, "\u00d7");
  header.appendChild(title);
  header.appendChild(close);
  var log = el("div", { "class": "log", role: "log", "aria-live": "polite", "aria-label": "Messages", tabindex: "0" });
  var form = el("form");
  var label = el("label", { "for": "tl-input", "class": "sr" }, "Your message");
  var input = el("textarea", { id: "tl-input", rows: "1", maxlength: "4000", placeholder: "Write a message\u2026", autocomplete: "off" });
  var send = el("button", { "class": "send", type: "submit" }, "Send");
  form.appendChild(label);
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(launcher);

  // --- talking to Threadline -----------------------------------------------------------------
  function call(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    return fetch(base + path, {
      method: method, headers: headers, body: body ? JSON.stringify(body) : undefined,
      credentials: "omit", mode: "cors"
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) { var e = new Error((data.error && data.error.message) || r.statusText); e.status = r.status; throw e; }
        return data;
      });
    });
  }

  function note(text, isError) {
    var n = el("p", { "class": "note" + (isError ? " error" : "") }, text);
    log.appendChild(n);
    log.scrollTop = log.scrollHeight;
    return n;
  }

  function show(m) {
    if (state.shown[m.id]) return;
    state.shown[m.id] = true;
    if (m.seq > state.lastSeq) state.lastSeq = m.seq;
    var who = m.author === "visitor" ? "You" : (m.author === "staff" ? "Team" : "Assistant");
    var bubble = el("div", { "class": "msg " + m.author });
    bubble.appendChild(el("span", { "class": "sr" }, who + ": "));
    bubble.appendChild(document.createTextNode(m.content));
    log.appendChild(bubble);
    log.scrollTop = log.scrollHeight;
    if (m.author !== "visitor" && !state.open) {
      state.unread += 1;
      badge.textContent = String(state.unread);
      badge.hidden = false;
      launcher.setAttribute("aria-label", "Open chat (" + state.unread + " new)");
    }
  }

  function forget() {
    save(null);
    if (state.source) { state.source.close(); state.source = null; }
    state.lastSeq = 0;
  }

  function history() {
    if (!state.token) return Promise.resolve();
    return call("GET", "/messages").then(function (page) {
      page.data.forEach(show);
      if (page.last_seq > state.lastSeq) state.lastSeq = page.last_seq;
      listen();
    }).catch(function (e) {
      if (e.status === 401 || e.status === 403 || e.status === 410) forget();
    });
  }

  function listen() {
    if (!state.token || state.source || !window.EventSource) return;
    var url = base + "/stream?token=" + encodeURIComponent(state.token) + "&after_seq=" + state.lastSeq;
    var source = new EventSource(url);
    state.source = source;
    source.addEventListener("message", function (event) { show(JSON.parse(event.data)); });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {  // refused: check why, then again
        state.source = null;
        setTimeout(history, 3000);
      }
    };
  }

  function info() {
    if (state.info) return Promise.resolve(state.info);
    return call("GET", "").then(function (data) {
      state.info = data;
      title.textContent = data.title;
      if (!log.firstChild) log.appendChild(el("div", { "class": "msg greeting" }, data.greeting));
      return data;
    }).catch(function () { return null; });
  }

  function clientId() {
    var bytes = crypto.getRandomValues(new Uint8Array(12));
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function session() {
    if (state.token) return Promise.resolve();
    return call("POST", "/sessions", {
      name: tag.dataset.name || null, email: tag.dataset.email || null, page: location.href.slice(0, 2000)
    }).then(function (data) { save(data.token); });
  }

  function submit(text, id, retried) {
    return session().then(function () {
      return call("POST", "/messages", { content: text, client_id: id });
    }).then(function (m) {
      show(m);
      listen();
    }).catch(function (e) {
      if ((e.status === 401 || e.status === 410) && !retried) { forget(); return submit(text, id, true); }
      throw e;
    });
  }

  // --- behaviour ------------------------------------------------------------------------------
  function setOpen(open) {
    state.open = open;
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.classList.toggle("is-open", open);
    if (open) {
      state.unread = 0;
      badge.hidden = true;
      launcher.setAttribute("aria-label", "Close chat");
      info();
      input.focus();
      log.scrollTop = log.scrollHeight;
    } else {
      launcher.setAttribute("aria-label", "Open chat");
      launcher.focus();
    }
  }

  launcher.addEventListener("click", function () { setOpen(!state.open); });
  close.addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); setOpen(false); }
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || send.disabled) return;
    send.disabled = true;
    submit(text, clientId()).then(function () {
      input.value = "";
    }).catch(function (e) {
      note(e.status === 429 ? "You are sending messages too fast. Wait a moment and try again."
        : "Your message was not sent. Try again.", true);
    }).then(function () {
      send.disabled = false;
      input.focus();
    });
  });

  function mount() {
    document.body.appendChild(host);
    history();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
  window.Threadline = { open: function () { setOpen(true); }, close: function () { setOpen(false); } };
})();
