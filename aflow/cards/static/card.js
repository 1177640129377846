// aflow cards: draws a card from its JSON data. The same file runs inlined in a card's own HTML
// document and, served by `aflow ui` from its own origin, on a task's page.
//
// Text from the card is always set as text (textContent), never parsed as HTML. The only markup
// taken from the data is a Markdown component's HTML (rendered by aflow with raw HTML disabled) and
// an Html component, which is shown in a sandboxed frame without scripts. Charts are drawn by the
// vendored vega-embed with vega's expression interpreter (no eval), so they work under a strict
// Content-Security-Policy. No inline styles are set from markup: only classes and the CSSOM.
(function () {
  "use strict";

  const script = document.currentScript;
  const vendorBase = script && script.src ? new URL("vendor/", script.src).href : null;
  const VEGA = ["vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "vega-interpreter.min.js"];
  let vegaLoading = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function when(seconds) {
    return seconds ? new Date(seconds * 1000).toLocaleString() : "-";
  }

  function span(seconds) {
    if (seconds === null || seconds === undefined || seconds < 0) return "-";
    if (seconds < 1) return Math.round(seconds * 1000) + "ms";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 2 : 1) + "s";
    const m = Math.floor(seconds / 60);
    if (m < 60) return m + "m" + String(Math.floor(seconds % 60)).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error("could not load " + src));
      document.head.appendChild(s);
    });
  }

  function vegaReady() {
    if (window.vegaEmbed && window.vega && window.vega.expressionInterpreter) {
      return Promise.resolve();
    }
    if (!vendorBase) return Promise.reject(new Error("the chart library is not in this document"));
    if (!vegaLoading) {
      vegaLoading = VEGA.reduce((p, f) => p.then(() => loadScript(vendorBase + f)), Promise.resolve());
    }
    return vegaLoading;
  }

  function dressFrame(frame) {
    const doc = frame.contentDocument;
    if (!doc || !doc.documentElement) return;
    try {
      doc.querySelectorAll("[style]").forEach((node) => {
        node.style.cssText = node.getAttribute("style");
      });
      const rules = Array.from(doc.querySelectorAll("style")).map((s) => s.textContent).join("\n");
      if (rules && frame.contentWindow.CSSStyleSheet) {
        const sheet = new frame.contentWindow.CSSStyleSheet();
        sheet.replaceSync(rules);
        doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
      }
    } catch (e) {
      // Styles are a nicety: the markup shows without them.
    }
    const tall = Math.max(doc.documentElement.scrollHeight, doc.body ? doc.body.scrollHeight : 0);
    frame.style.height = Math.min(Math.max(tall + 4, 40), 2000) + "px";
  }

  function errorBlock(title, text) {
    const box = el("div", "c-error");
    box.appendChild(el("div", "c-error-title", title || "Error"));
    if (text) box.appendChild(el("pre", "c-pre", text));
    return box;
  }

  const draw = {
    text: (c) => el("span", "c-text", c.text),
    heading: (c) => el("h1", "c-heading", c.text),
    pre: (c) => el("pre", "c-pre", c.text),
    markdown: (c) => {
      const box = el("div", "c-markdown");
      box.innerHTML = c.html || ""; // rendered by aflow from Markdown with raw HTML disabled
      return box;
    },
    html: (c) => {
      // A frame without scripts or forms. Same-origin (but never scripts) so that this renderer
      // can apply the markup's own styles through the CSSOM, which a page's CSP allows where it
      // refuses style attributes and <style> elements, and fit the frame to its content.
      const frame = el("iframe", "c-html");
      frame.setAttribute("sandbox", "allow-same-origin");
      frame.setAttribute("referrerpolicy", "no-referrer");
      frame.addEventListener("load", () => dressFrame(frame));
      frame.srcdoc = c.html || "";
      return frame;
    },
    table: (c) => {
      const wrap = el("div", "c-table-wrap");
      const table = el("table", "c-table");
      if (c.headers && c.headers.length) {
        const tr = el("tr");
        c.headers.forEach((h) => tr.appendChild(el("th", null, h)));
        table.appendChild(el("thead")).appendChild(tr);
      }
      const body = table.appendChild(el("tbody"));
      (c.rows || []).forEach((row) => {
        const tr = body.appendChild(el("tr"));
        row.forEach((cell) => tr.appendChild(el("td")).appendChild(component(cell)));
      });
      wrap.appendChild(table);
      if (c.note) wrap.appendChild(el("p", "c-note", c.note));
      return wrap;
    },
    image: (c) => {
      const fig = el("figure", "c-image");
      if (typeof c.src === "string" && c.src.startsWith("data:image/")) {
        const img = fig.appendChild(el("img"));
        img.src = c.src;
        img.alt = c.label || "image";
      } else {
        fig.appendChild(el("div", "c-note", "(no image)"));
      }
      if (c.label) fig.appendChild(el("figcaption", null, c.label));
      return fig;
    },
    artifact: (c) => {
      const box = el("div", "c-artifact");
      const head = box.appendChild(el("div", "c-artifact-head"));
      if (c.name) head.appendChild(el("span", "c-artifact-name", c.name));
      if (c.value_type) head.appendChild(el("span", "c-artifact-type", c.value_type));
      box.appendChild(el("pre", "c-pre", c.text));
      return box;
    },
    progress: (c) => {
      const box = el("div", "c-progress");
      if (c.label) box.appendChild(el("div", "c-progress-label", c.label));
      const bar = box.appendChild(el("progress"));
      bar.max = c.max > 0 ? c.max : 1;
      bar.value = Math.min(c.value, bar.max);
      const unit = c.unit ? " " + c.unit : "";
      const pct = c.max > 0 ? " (" + Math.round((100 * c.value) / c.max) + "%)" : "";
      box.appendChild(el("span", "c-progress-text", c.value + " / " + c.max + unit + pct));
      if (c.details) box.appendChild(el("div", "c-note", c.details));
      return box;
    },
    vega: (c) => {
      const box = el("div", "c-vega");
      vegaReady()
        .then(() =>
          window.vegaEmbed(box, c.spec, {
            actions: false,
            renderer: "canvas",
            ast: true,
            expr: window.vega.expressionInterpreter,
            defaultStyle: false,
            tooltip: { disableDefaultStyle: true },
          })
        )
        .catch((e) => {
          box.replaceChildren(errorBlock("The chart could not be drawn", String(e && e.message)));
        });
      return box;
    },
    error: (c) => errorBlock(c.title, c.text),
    code: (c) => el("pre", "c-pre c-code", c.text),
    valuebox: (c) => {
      const box = el("div", "c-valuebox c-theme-" + (c.theme || "default"));
      if (c.title) box.appendChild(el("div", "c-valuebox-title", c.title));
      box.appendChild(el("div", "c-valuebox-value", c.value));
      if (c.subtitle) box.appendChild(el("div", "c-valuebox-sub", c.subtitle));
      if (c.change) box.appendChild(el("div", "c-valuebox-change", c.change));
      return box;
    },
    section: (c) => {
      const box = el("section", "c-section");
      box.appendChild(el("h2", null, c.title));
      (c.contents || []).forEach((x) => box.appendChild(component(x)));
      return box;
    },
    facts: (c) => {
      const dl = el("dl", "c-facts");
      const add = (k, v) => {
        dl.appendChild(el("dt", null, k));
        dl.appendChild(el("dd", null, v));
      };
      (c.items || []).forEach(([k, v]) => add(k, v));
      const t = c.timing || {};
      add("Started", when(t.started));
      if (t.finished) {
        add("Finished", when(t.finished));
        add("Duration", span(t.finished - t.started));
      } else {
        add("Duration", "running");
      }
      return dl;
    },
    dag: (c) => {
      const box = el("div", "c-dag");
      (c.columns || []).forEach((col, i) => {
        if (i > 0) box.appendChild(el("div", "c-dag-arrow", "\u2192"));
        const column = box.appendChild(el("div", "c-dag-col"));
        col.forEach((name) => {
          const info = (c.steps || {})[name] || {};
          const step = column.appendChild(el("div", "c-dag-step" + (name === c.current ? " current" : "")));
          step.appendChild(el("div", "c-dag-name", name));
          let kind = info.type || "";
          if (info.foreach) kind += " over " + info.foreach;
          step.appendChild(el("div", "c-dag-type", kind));
          if ((info.next || []).length) step.appendChild(el("div", "c-dag-next", "\u2192 " + info.next.join(", ")));
          if (name === c.current) step.setAttribute("aria-current", "step");
        });
      });
      return box;
    },
  };

  function component(c) {
    try {
      const fn = c && draw[c.type];
      if (!fn) return errorBlock("Unknown component", JSON.stringify(c && c.type));
      const node = fn(c);
      if (c.id) node.dataset.componentId = c.id;
      return node;
    } catch (e) {
      return errorBlock("This component could not be drawn", String(e && e.message));
    }
  }

  function render(target, data) {
    const card = el("article", "c-card c-type-" + (data.type || "card"));
    const head = card.appendChild(el("header", "c-head"));
    head.appendChild(el("span", "c-head-path", data.pathspec || ""));
    head.appendChild(el("span", "c-head-kind", (data.type || "") + (data.id ? " · " + data.id : "")));
    const ended = target.dataset && target.dataset.ended !== undefined;
    const state = data.final ? "final" : ended ? "as last refreshed" : "updating while the task runs";
    const live = data.final || ended ? "" : " live";
    head.appendChild(el("span", "c-head-state" + live, state + " · " + when(data.created_at)));
    const body = card.appendChild(el("div", "c-body"));
    (data.components || []).forEach((c) => body.appendChild(component(c)));
    if (!(data.components || []).length) body.appendChild(el("p", "c-note", "This card is empty."));
    target.replaceChildren(card);
  }

  // The last data drawn for each card: a live page swaps in a fresh element when a card changes,
  // which is drawn from this at once (no blank flash) and again when its new data arrives.
  const drawn = new Map();

  function load(target) {
    const src = target.dataset.src;
    if (!src || target.dataset.loaded === src) return;
    target.dataset.loaded = src;
    const key = target.dataset.key || src;
    if (drawn.has(key)) render(target, drawn.get(key));
    fetch(src, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status + " " + r.statusText))))
      .then((data) => {
        drawn.set(key, data);
        render(target, data);
      })
      .catch((e) => target.replaceChildren(errorBlock("The card could not be read", String(e.message))));
  }

  function scan(root) {
    if (root.matches && root.matches(".aflow-card[data-src]")) load(root);
    if (root.querySelectorAll) root.querySelectorAll(".aflow-card[data-src]").forEach(load);
  }

  window.aflowCards = { render: render };

  const inline = document.getElementById("aflow-card-data");
  if (inline) {
    render(document.getElementById("aflow-card"), JSON.parse(inline.textContent));
    return;
  }
  // In aflow ui: cards name their data's URL; a live page swaps in new ones as a card changes.
  scan(document);
  new MutationObserver((changes) => {
    changes.forEach((m) => m.addedNodes.forEach((n) => n.nodeType === 1 && scan(n)));
  }).observe(document.body, { childList: true, subtree: true });
})();
