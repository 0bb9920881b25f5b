// logarchive serve: the run page's log viewer, search within the log, the level chart and the
// integrity check. Vanilla JS, no dependency; every text is inserted with textContent.
"use strict";
(function () {
  const COLOURS = {trace: "#9aa3b2", debug: "#7b8798", info: "#3b7dd8", notice: "#2a9d8f",
    warning: "#e0a100", error: "#d64545", critical: "#7d1128", none: "#c3c8d0"};

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, {credentials: "same-origin"});
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || response.statusText);
    return body;
  }

  function highlight(cell, text, regex) {
    if (!regex) { cell.textContent = text; return; }
    let last = 0;
    for (const m of text.matchAll(regex)) {
      if (!m[0]) break;
      cell.append(text.slice(last, m.index), el("mark", {}, m[0]));
      last = m.index + m[0].length;
    }
    cell.append(text.slice(last));
  }

  function logViewer(table) {
    const run = table.dataset.run;
    const body = table.tBodies[0];
    const more = document.getElementById("log-more");
    const count = document.getElementById("log-count");
    const form = document.getElementById("logsearch");
    let state = {after: 0, q: "", level: "", shown: 0};

    async function page() {
      const params = new URLSearchParams({after: state.after, limit: 1000});
      if (state.q) params.set("q", state.q);
      if (state.level) params.set("level", state.level);
      let data;
      try { data = await getJSON(`/api/runs/${run}/lines?${params}`); }
      catch (e) { count.textContent = e.message; return; }
      let regex = null;
      if (state.q) { try { regex = new RegExp(state.q, "gi"); } catch (e) { regex = null; } }
      for (const line of data.lines) {
        const row = el("tr", {class: "lvl-" + (line.level || "none"), "data-seq": line.seq});
        row.append(el("td", {class: "seq"}, line.seq), el("td", {class: "ts"}, line.timestamp || ""));
        const msg = el("td", {class: "msg"});
        highlight(msg, line.message || "", regex);
        row.append(msg);
        body.append(row);
      }
      state.after = data.after;
      state.shown += data.lines.length;
      more.hidden = !data.more;
      count.textContent = (state.q || state.level) ? `${state.shown}${data.more ? "+" : ""} matching line(s)` : "";
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      state = {after: 0, q: form.elements.q.value, level: form.elements.level.value, shown: 0};
      body.replaceChildren();
      page();
    });
    more.addEventListener("click", page);
    page();
  }

  function chart(box) {
    getJSON(`/api/runs/${box.dataset.run}/levels`).then((data) => {
      box.replaceChildren();
      const levels = Object.keys(data.levels);
      if (!levels.length) { box.append(el("small", {}, "No timestamped lines.")); return; }
      const n = data.levels[levels[0]].length;
      const totals = Array.from({length: n}, (_, i) => levels.reduce((s, l) => s + data.levels[l][i], 0));
      const peak = Math.max(1, ...totals);
      const W = 600, H = 180, bar = W / n;
      const ns = "http://www.w3.org/2000/svg";
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("viewBox", `0 0 ${W} ${H + 20}`);
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", "lines per level over time");
      for (let i = 0; i < n; i++) {
        let y = H;
        for (const level of levels) {
          const v = data.levels[level][i];
          if (!v) continue;
          const h = (v / peak) * (H - 4);
          const rect = document.createElementNS(ns, "rect");
          rect.setAttribute("x", (i * bar + 0.5).toFixed(2));
          rect.setAttribute("width", Math.max(bar - 1, 1).toFixed(2));
          rect.setAttribute("y", (y - h).toFixed(2));
          rect.setAttribute("height", h.toFixed(2));
          rect.setAttribute("fill", COLOURS[level] || "#999");
          rect.setAttribute("data-level", level);
          const title = document.createElementNS(ns, "title");
          title.textContent = `${level}: ${v}`;
          rect.append(title);
          svg.append(rect);
          y -= h;
        }
      }
      for (const [x, text, anchor] of [[0, data.start, "start"], [W, data.end, "end"]]) {
        const label = document.createElementNS(ns, "text");
        label.setAttribute("x", x); label.setAttribute("y", H + 15);
        label.setAttribute("font-size", "11"); label.setAttribute("text-anchor", anchor);
        label.setAttribute("fill", "#5b6475");
        label.textContent = text;
        svg.append(label);
      }
      const legend = el("div", {class: "legend"});
      for (const level of levels) {
        const total = data.levels[level].reduce((a, b) => a + b, 0);
        const item = el("span", {});
        item.append(el("i", {style: `background:${COLOURS[level] || "#999"}`}), `${level} ${total}`);
        legend.append(item);
      }
      box.append(svg, legend);
    }).catch((e) => { box.textContent = e.message; });
  }

  function verifier(box) {
    const button = document.getElementById("verify");
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.textContent = "Verifying…";
      try {
        const result = await getJSON(`/api/runs/${box.dataset.run}/verify`);
        box.replaceChildren(result.ok ? el("span", {class: "ok"}, "✔ sha256 verified just now")
          : el("span", {class: "bad"}, "✘ " + result.detail));
      } catch (e) { button.textContent = e.message; }
    });
  }

  const log = document.getElementById("log");
  if (log) logViewer(log);
  const box = document.getElementById("chart");
  if (box) chart(box);
  const verified = document.getElementById("verified");
  if (verified) verifier(verified);
})();
