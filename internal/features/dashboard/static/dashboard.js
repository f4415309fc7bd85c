// The dashboard: the ranking of pages, refreshed every few seconds, and a
// lookup of any page. Everything is built with DOM calls and textContent, so
// that no URL a visitor sent can become markup.
"use strict";
(function () {
  const REFRESH_MS = 5000, TOP = 10, TOKEN_KEY = "webtracker_token";
  const $ = (id) => document.getElementById(id);
  const status = (text) => { $("status").textContent = text; };

  // api fetches a read endpoint with the token, if one was given, and asks
  // for the token once when the service wants one.
  async function api(path) {
    const headers = {};
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const resp = await fetch(path, { headers });
    if (resp.status === 401) {
      const given = window.prompt("This tracker needs its API token to show counts:");
      if (given) { localStorage.setItem(TOKEN_KEY, given.trim()); return api(path); }
      throw new Error("an API token is needed");
    }
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.detail || resp.statusText);
    return body;
  }

  function drawChart(pages) {
    const svg = $("chart"), ns = "http://www.w3.org/2000/svg", barH = 22, gap = 6;
    svg.querySelectorAll("g").forEach((g) => g.remove());
    const max = Math.max(1, ...pages.map((p) => p.visitors));
    const width = svg.clientWidth || 600;
    const frac = width < 500 ? 0.35 : 0.6; // leave a phone room for the labels
    svg.setAttribute("height", String(pages.length * (barH + gap)));
    svg.setAttribute("viewBox", `0 0 ${width} ${pages.length * (barH + gap)}`);
    pages.forEach((p, i) => {
      const g = document.createElementNS(ns, "g");
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", "0");
      rect.setAttribute("y", String(i * (barH + gap)));
      rect.setAttribute("height", String(barH));
      rect.setAttribute("width", String(Math.max(2, (width * frac * p.visitors) / max)));
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", String(Math.max(2, (width * frac * p.visitors) / max) + 6));
      label.setAttribute("y", String(i * (barH + gap) + barH * 0.7));
      label.textContent = `${p.visitors} · ${p.url}`;
      g.append(rect, label);
      svg.append(g);
    });
  }

  function fillTable(pages) {
    const rows = pages.map((p) => {
      const tr = document.createElement("tr");
      const url = document.createElement("td");
      url.textContent = p.url;
      const n = document.createElement("td");
      n.className = "num";
      // An estimate (the page outgrew the memory limit) is marked ≈.
      n.textContent = (p.exact === false ? "≈" : "") + String(p.visitors);
      tr.append(url, n);
      return tr;
    });
    $("top").tBodies[0].replaceChildren(...rows);
  }

  async function refresh() {
    try {
      const data = await api(`/api/v1/pages?limit=${TOP}`);
      $("total").textContent = String(data.total);
      fillTable(data.pages);
      drawChart(data.pages);
      status("Updated " + new Date().toLocaleTimeString());
    } catch (err) {
      status("Could not load the counts: " + err.message);
    }
  }

  $("lookup").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const url = $("url").value.trim();
    try {
      const a = await api("/api/v1/visitors?url=" + encodeURIComponent(url));
      const how = a.exact ? "" : ` (estimate, ±${(100 * a.relative_error).toFixed(2)}%)`;
      $("answer").textContent = `${a.url}: ${a.visitors} distinct visitor${a.visitors === 1 ? "" : "s"}${how}`;
    } catch (err) {
      $("answer").textContent = "Could not count: " + err.message;
    }
  });

  refresh();
  setInterval(refresh, REFRESH_MS);
})();
