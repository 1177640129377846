// aflow ui: keeps a live page up to date and makes its pictures clickable. No dependencies.
//
// A page is made of fragments (<div class="fragment" id=... data-v=version>). While the page says
// it is live, one EventSource on /live<path> receives the fragments whose HTML changed and swaps
// them in; the stream ends when nothing more will change (a finished run), and closes while the tab
// is hidden (reopened when it is shown). Log view choices (which stream, times) and a log scrolled
// to its end survive a swap, so a live task's output tails.
(function () {
  "use strict";

  const prefs = { show: "all", times: false };
  const badge = document.getElementById("live-state");

  function say(text, cls) {
    if (badge) {
      badge.textContent = text;
      badge.className = "live-state " + cls;
    }
  }

  function applyPrefs(root) {
    root.querySelectorAll(".log").forEach((log) => {
      log.classList.remove("show-all", "show-out", "show-err");
      log.classList.add("show-" + prefs.show);
      log.classList.toggle("with-times", prefs.times);
    });
    root.querySelectorAll("[data-show]").forEach((b) => {
      b.classList.toggle("on", b.dataset.show === prefs.show);
    });
    root.querySelectorAll("input[data-times]").forEach((box) => {
      box.checked = prefs.times;
    });
  }

  // Sizes the pictures say they want: inline style attributes are refused by the page's CSP.
  function size(root) {
    root.querySelectorAll("svg[data-max-width]").forEach((svg) => {
      svg.style.maxWidth = svg.dataset.maxWidth + "px";
      svg.style.minWidth = svg.dataset.minWidth + "px";
    });
  }

  function atEnd(log) {
    return !log || log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  }

  function liveUrl() {
    const have = Array.from(document.querySelectorAll(".fragment[id]"))
      .map((el) => el.id + ":" + (el.dataset.v || ""))
      .join(",");
    const query = new URLSearchParams(location.search);
    query.set("v", have);
    return "/live" + location.pathname + "?" + query.toString();
  }

  function swap(changed) {
    for (const [id, frag] of Object.entries(changed)) {
      const el = document.getElementById(id);
      if (!el) continue;
      const old = el.querySelector(".log");
      const tail = atEnd(old);
      el.innerHTML = frag.html;
      el.dataset.v = frag.v;
      applyPrefs(el);
      size(el);
      const log = el.querySelector(".log");
      if (log && tail) log.scrollTop = log.scrollHeight;
    }
  }

  let ended = false;

  function connect() {
    if (document.body.dataset.live !== "1" || !window.EventSource || ended) return;
    if (document.hidden) {
      say("paused while hidden", "off");
      return;
    }
    const stream = new EventSource(liveUrl());
    window.aflowLive = stream;
    stream.onopen = () => say("live", "on");
    stream.addEventListener("fragments", (e) => {
      swap(JSON.parse(e.data));
      say("live · updated " + new Date().toLocaleTimeString(), "on");
    });
    stream.addEventListener("end", () => {
      ended = true;
      stream.close();
      say("finished · up to date", "done");
    });
    stream.onerror = () => say("reconnecting…", "off");
  }

  document.addEventListener("click", (e) => {
    const show = e.target.closest("[data-show]");
    if (show) {
      prefs.show = show.dataset.show;
      applyPrefs(document);
      return;
    }
    const bar = e.target.closest("[data-href]");
    if (bar) location.href = bar.getAttribute("data-href");
  });
  document.addEventListener("change", (e) => {
    if (e.target.matches("input[data-times]")) {
      prefs.times = e.target.checked;
      applyPrefs(document);
    }
  });

  // A hidden tab reads nothing: its stream closes, and reopens (asking only for what changed,
  // by the versions the page holds) when the tab is shown again.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      if (window.aflowLive && window.aflowLive.readyState !== 2) {
        window.aflowLive.close();
        say("paused while hidden", "off");
      }
    } else if (!window.aflowLive || window.aflowLive.readyState === 2) {
      connect();
    }
  });

  applyPrefs(document);
  size(document);
  document.querySelectorAll(".log").forEach((log) => {
    if (document.body.dataset.live === "1") log.scrollTop = log.scrollHeight;
  });
  connect();
})();
