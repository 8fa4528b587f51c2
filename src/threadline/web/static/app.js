// Threadline dashboard: live updates, keyboard navigation, theme switch.
(function () {
  "use strict";
  var root = document.documentElement;

  // Theme: auto (the system's), then dark, then light.
  var toggle = document.getElementById("theme-toggle");
  if (toggle) {
    toggle.addEventListener("click", function () {
      var order = ["auto", "dark", "light"];
      var next = order[(order.indexOf(root.dataset.theme || "auto") + 1) % order.length];
      root.dataset.theme = next;
      localStorage.setItem("tl-theme", next);
      toggle.title = "Theme: " + next;
    });
  }

  // Live updates: the server says which conversations changed; the parts of this page that
  // show them re-render themselves (htmx listens for these events on <body>).
  var dot = document.getElementById("live-dot");
  if (dot && window.EventSource) {
    var connect = function () {
      // since: the server's clock when this page was drawn, so what changed before the
      // stream started is told too.
      var since = dot.dataset.since ? "?since=" + encodeURIComponent(dot.dataset.since) : "";
      var source = new EventSource("/live" + since);
      source.addEventListener("ready", function () {
        dot.classList.add("on");
        document.getElementById("live-text").textContent = "live";
      });
      source.addEventListener("changed", function (event) {
        var ids = JSON.parse(event.data);
        document.body.dispatchEvent(new CustomEvent("tl:changed", { detail: ids }));
        ids.forEach(function (id) {
          document.body.dispatchEvent(new CustomEvent("tl:changed-" + id));
        });
      });
      source.onerror = function () {
        dot.classList.remove("on");
        document.getElementById("live-text").textContent = "reconnecting";
      };
    };
    connect();
  }

  // Keyboard: j/k move through the inbox, Enter opens; Ctrl/Cmd+Enter sends a reply.
  var selected = null;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#inbox-list .row")); }
  function select(index) {
    var all = rows();
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (r) { r.classList.remove("selected"); });
    var row = all[index];
    row.classList.add("selected");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
    selected = row.dataset.id;
  }
  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "textarea" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.target.form && event.target.form.requestSubmit();
      return;
    }
    if (tag === "input" || tag === "textarea" || tag === "select" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/") {
      var box = document.getElementById("top-search") || document.getElementById("search-q");
      if (box) { box.focus(); event.preventDefault(); return; }
    }
    var all = rows();
    if (!all.length) return;
    var current = all.findIndex(function (r) { return r.dataset.id === selected; });
    if (event.key === "j") { select(current + 1); event.preventDefault(); }
    else if (event.key === "k") { select(current < 0 ? 0 : current - 1); event.preventDefault(); }
    else if (event.key === "Enter" && selected && current >= 0) {
      window.location.href = all[current].getAttribute("href");
      event.preventDefault();
    }
  });
  // Never replace a draft, or its feedback, that a person is editing.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    if (event.target.id !== "draft-slot") return;
    var fields = event.target.querySelectorAll("textarea, input:not([type=hidden])");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f === document.activeElement || f.value !== f.defaultValue) {
        event.detail.shouldSwap = false;
        return;
      }
    }
  });
  // Erase: the button wakes up once the contact's name or ERASE is typed (the server checks too).
  var confirmBox = document.getElementById("erase-confirm");
  if (confirmBox) {
    var eraseButton = document.getElementById("erase-submit");
    var norm = function (s) { return s.trim().split(/\s+/).join(" "); };
    var check = function () {
      var typed = norm(confirmBox.value);
      var name = confirmBox.dataset.expectName;
      eraseButton.disabled = !(typed === confirmBox.dataset.expect ||
        (name && typed.toLowerCase() === norm(name).toLowerCase()));
    };
    confirmBox.addEventListener("input", check);
    check();
  }

  // Copy buttons: <button data-copy="ID"> copies the value of the field with that id.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.dataset.copy);
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    };
    var fallback = function () {
      field.select();
      document.execCommand("copy");
      done();
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, fallback);
    } else {
      fallback();
    }
  });

  // Keep the selection across live re-renders of the list.
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.target.id === "inbox-list" && selected) {
      var row = document.querySelector('#inbox-list .row[data-id="' + selected + '"]');
      if (row) {
        row.classList.add("selected");
        row.focus({ preventScroll: true });
      }
    }
  });
})();
