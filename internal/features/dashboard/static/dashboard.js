// The dashboard: the ranking of pages over a range of days (all time by
// default), refreshed every few seconds; the chosen page day by day; and a
// lookup of any page. Everything is built with DOM calls and textContent, so
// that no URL a visitor sent can become markup. The range, the zone and the
// chosen page live in the address's fragment, so a reload or a shared link
// shows the same view.
"use strict";
(function () {
  const REFRESH_MS = 5000, TOP = 10, TOKEN_KEY = "webtracker_token";
  const PRESETS = { today: 1, "7d": 7, "30d": 30 }; // days ending today
  const NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const status = (text) => { $("status").textContent = text; };
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  // state is what the page shows: range is "all", a key of PRESETS or
  // "custom" (with from and to, either possibly ""); page is the chosen URL.
  const state = { range: "all", from: "", to: "", tz: browserZone, page: "" };
  let generation = 0; // answers to an older refresh than the last are dropped
  let shownRanking = null, shownDaily = null; // for redrawing on resize

  // api fetches a read endpoint with the token, if one was given, and asks
  // for the token when the service wants one. A problem's field errors
  // become part of the message.
  async function api(path) {
    const headers = {};
    const sent = localStorage.getItem(TOKEN_KEY);
    if (sent) headers.Authorization = "Bearer " + sent;
    const resp = await fetch(path, { headers });
    if (resp.status === 401) {
      // Another request may have asked while this one was on its way.
      if (localStorage.getItem(TOKEN_KEY) !== sent) return api(path);
      const given = window.prompt("This tracker needs its API token to show counts:");
      if (given) { localStorage.setItem(TOKEN_KEY, given.trim()); return api(path); }
      throw new Error("an API token is needed");
    }
    const body = await resp.json();
    if (!resp.ok) {
      const fields = (body.errors || []).map((e) => `${e.field} ${e.reason}`);
      throw new Error([body.detail || resp.statusText, ...fields].join("; "));
    }
    return body;
  }

  // Dates are strings YYYY-MM-DD, computed at noon UTC so that no zone
  // rule moves them.
  function todayIn(tz) {
    const parts = {};
    for (const p of new Intl.DateTimeFormat("en-US", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date())) parts[p.type] = p.value;
    return `${parts.year}-${parts.month}-${parts.day}`;
  }
  function addDays(date, n) {
    const d = new Date(date + "T12:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }
  const shortDate = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  const dayLabel = (date) => shortDate.format(new Date(date + "T12:00:00Z"));
  const plural = (n, one, many) => (n === 1 ? one : many);
  const count = (n, exact) => (exact === false ? "≈" : "") + String(n);

  // span returns the from and to of the range ("" for an open end), or
  // null for all time.
  function span() {
    if (state.range === "all") return null;
    if (state.range === "custom") return { from: state.from, to: state.to };
    const today = todayIn(state.tz);
    return { from: addDays(today, 1 - PRESETS[state.range]), to: today };
  }
  function rangeParams(s) {
    const q = new URLSearchParams();
    if (s.from) q.set("from", s.from);
    if (s.to) q.set("to", s.to);
    q.set("tz", state.tz);
    return q;
  }
  // rangeProblem says what is wrong with a custom range, or "".
  function rangeProblem() {
    if (state.range === "custom" && state.from && state.to && state.from > state.to) return "From must not be after To.";
    return "";
  }

  // The fragment holds the state: #range=7d&tz=Europe%2FParis&page=….
  function readHash() {
    const q = new URLSearchParams(location.hash.slice(1));
    const range = q.get("range");
    if (range === "all" || range === "custom" || range in PRESETS) state.range = range;
    state.from = q.get("from") || "";
    state.to = q.get("to") || "";
    state.tz = q.get("tz") || browserZone;
    state.page = q.get("page") || "";
  }
  function writeHash() {
    const q = new URLSearchParams();
    if (state.range !== "all") q.set("range", state.range);
    if (state.range === "custom") {
      if (state.from) q.set("from", state.from);
      if (state.to) q.set("to", state.to);
    }
    if (state.tz !== browserZone) q.set("tz", state.tz);
    if (state.page) q.set("page", state.page);
    const hash = q.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  // The range form.
  function fillZones() {
    const zones = new Set(typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : []);
    zones.add("UTC").add(browserZone).add(state.tz);
    const options = [...zones].sort().map((z) => {
      const o = document.createElement("option");
      o.value = z;
      o.textContent = z === browserZone ? `${z} (this browser)` : z;
      return o;
    });
    $("tz").replaceChildren(...options);
  }
  function showForm() {
    const form = $("range");
    form.elements.range.value = state.range;
    $("custom").hidden = state.range !== "custom";
    $("from").value = state.from;
    $("to").value = state.to;
    const today = todayIn(state.tz);
    $("from").max = today;
    $("to").max = today;
    $("tz").value = state.tz;
    const bad = rangeProblem() !== "";
    $("from").setAttribute("aria-invalid", String(bad));
    $("to").setAttribute("aria-invalid", String(bad));
  }
  function onRangeInput() {
    const form = $("range");
    state.range = form.elements.range.value;
    state.tz = $("tz").value || browserZone;
    if (state.range === "custom") {
      if (!$("from").value && !$("to").value) { // start from the last 7 days
        const today = todayIn(state.tz);
        $("from").value = addDays(today, -6);
        $("to").value = today;
      }
      state.from = $("from").value;
      state.to = $("to").value;
    }
    writeHash();
    showForm();
    refresh();
  }

  // The ranking.
  function drawChart(pages) {
    const svg = $("chart"), barH = 22, gap = 6;
    svg.querySelectorAll("g").forEach((g) => g.remove());
    const max = Math.max(1, ...pages.map((p) => p.visitors));
    const width = svg.clientWidth || 600;
    const frac = width < 500 ? 0.35 : 0.6; // leave a phone room for the labels
    svg.setAttribute("height", String(pages.length * (barH + gap)));
    svg.setAttribute("viewBox", `0 0 ${width} ${pages.length * (barH + gap)}`);
    pages.forEach((p, i) => {
      const g = document.createElementNS(NS, "g");
      const rect = document.createElementNS(NS, "rect");
      rect.setAttribute("x", "0");
      rect.setAttribute("y", String(i * (barH + gap)));
      rect.setAttribute("height", String(barH));
      rect.setAttribute("width", String(Math.max(2, (width * frac * p.visitors) / max)));
      const label = document.createElementNS(NS, "text");
      label.setAttribute("x", String(Math.max(2, (width * frac * p.visitors) / max) + 6));
      label.setAttribute("y", String(i * (barH + gap) + barH * 0.7));
      label.textContent = `${count(p.visitors, p.exact)} · ${p.url}`;
      g.append(rect, label);
      svg.append(g);
    });
  }

  // fillTable updates the rows in place, so that a refresh keeps the focus
  // of a keyboard on its row.
  function fillTable(pages) {
    const body = $("top").tBodies[0];
    pages.forEach((p, i) => {
      let tr = body.rows[i];
      if (!tr) {
        tr = document.createElement("tr");
        const url = document.createElement("td");
        const pick = document.createElement("button");
        pick.type = "button";
        pick.className = "pick";
        url.append(pick);
        const n = document.createElement("td");
        n.className = "num";
        tr.append(url, n);
        body.append(tr);
      }
      tr.dataset.url = p.url;
      tr.querySelector("button").textContent = p.url;
      // An estimate (the page outgrew the memory limit) is marked ≈.
      tr.cells[1].textContent = count(p.visitors, p.exact);
    });
    while (body.rows.length > pages.length) body.rows[pages.length].remove();
    markChosen();
  }
  function markChosen() {
    for (const tr of $("top").tBodies[0].rows) {
      const chosen = tr.dataset.url === state.page;
      tr.classList.toggle("chosen", chosen);
      tr.querySelector("button").setAttribute("aria-pressed", String(chosen));
    }
  }
  function clearRanking() {
    shownRanking = null;
    $("total").textContent = "–";
    $("top").tBodies[0].replaceChildren();
    drawChart([]);
  }
  function describeRanking(data) {
    const ranged = state.range !== "all";
    $("total-heading").textContent = ranged ? "Pages visited in range" : "Pages tracked";
    const desc = ranged ? `${data.from} to ${data.to}, ${data.tz}` : "All time";
    $("range-desc").textContent = ranged ? `Showing ${data.from} to ${data.to}, days of ${data.tz}.` : "Showing all time.";
    $("top").caption.textContent = `Top pages by distinct visitors, ${desc}`;
  }

  // The chosen page, day by day.
  function dailyQuery() {
    // All time has no daily chart of its own: the service's default series
    // is then the last days up to today.
    const q = rangeParams(span() || { from: "", to: "" });
    q.set("url", state.page);
    return "/api/v1/visitors/daily?" + q;
  }
  function drawDaily(data) {
    const svg = $("daily");
    const width = svg.clientWidth || 600, height = 180;
    const left = 34, right = 4, top = 14, bottom = 22;
    const plotW = width - left - right, plotH = height - top - bottom;
    const days = data.days || [];
    const max = Math.max(1, ...days.map((d) => d.visitors));
    const step = plotW / Math.max(1, days.length);
    const barW = step > 3 ? step * 0.8 : step;
    const el = (name, attrs, text) => {
      const e = document.createElementNS(NS, name);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
      if (text !== undefined) e.textContent = text;
      return e;
    };
    const parts = [
      el("line", { class: "grid", x1: left, x2: width - right, y1: top, y2: top }),
      el("text", { class: "axis", x: left - 4, y: top + 4, "text-anchor": "end" }, String(max)),
      el("line", { class: "base", x1: left, x2: width - right, y1: top + plotH, y2: top + plotH }),
      el("text", { class: "axis", x: left - 4, y: top + plotH + 4, "text-anchor": "end" }, "0"),
    ];
    days.forEach((d, i) => {
      const exact = d.exact ?? data.exact;
      const h = (plotH * d.visitors) / max;
      const g = el("g", { class: "day", "data-date": d.date, "data-visitors": d.visitors });
      g.append(
        el("title", {}, `${d.date}: ${count(d.visitors, exact)} distinct ${plural(d.visitors, "visitor", "visitors")}`),
        el("rect", { class: "hit", x: left + i * step, y: top, width: step, height: plotH }),
        el("rect", { class: "bar", x: left + i * step + (step - barW) / 2, y: top + plotH - h, width: barW, height: h }),
      );
      parts.push(g);
    });
    // Dates under the bars: every day when there is room, else the first,
    // the middle and the last.
    const labelY = height - 6;
    if (step >= 48) {
      days.forEach((d, i) => parts.push(el("text", { class: "axis", x: left + (i + 0.5) * step, y: labelY, "text-anchor": "middle" }, dayLabel(d.date))));
    } else if (days.length > 0) {
      parts.push(el("text", { class: "axis", x: left, y: labelY, "text-anchor": "start" }, dayLabel(days[0].date)));
      if (days.length > 2 && plotW >= 240) {
        const mid = Math.floor(days.length / 2);
        parts.push(el("text", { class: "axis", x: left + (mid + 0.5) * step, y: labelY, "text-anchor": "middle" }, dayLabel(days[mid].date)));
      }
      if (days.length > 1) parts.push(el("text", { class: "axis", x: width - right, y: labelY, "text-anchor": "end" }, dayLabel(days[days.length - 1].date)));
    }
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren($("daily-title"), ...parts);
    $("daily-title").textContent = `Distinct visitors of ${data.url} each day from ${data.from} to ${data.to} (${data.tz})`;
  }
  function showDaily(data) {
    shownDaily = data;
    const days = data.days || [];
    $("daily-page").textContent = data.url;
    $("daily-range").textContent = (state.range === "all" ? `Last ${days.length} days: ` : "") +
      `${data.from} to ${data.to}, days of ${data.tz}`;
    $("daily-total").textContent = count(data.visitors, data.exact);
    const where = state.range === "all" ? `in the last ${days.length} days` : "in range";
    $("daily-total-label").textContent = `distinct ${plural(data.visitors, "visitor", "visitors")} ${where}`;
    const sum = days.reduce((n, d) => n + d.visitors, 0);
    $("daily-note").textContent = "Each bar counts one day's distinct visitors" + (sum > data.visitors
      ? ` (${sum} in all): a visitor who came on several days is in several bars, but counted once in the total.` : ".");
    const rows = days.map((d) => {
      const tr = document.createElement("tr");
      const day = document.createElement("td");
      day.textContent = d.date;
      const n = document.createElement("td");
      n.className = "num";
      n.textContent = count(d.visitors, d.exact ?? data.exact);
      tr.append(day, n);
      return tr;
    });
    $("daily-table").tBodies[0].replaceChildren(...rows);
    drawDaily(data);
  }
  function clearDaily(message) {
    shownDaily = null;
    $("daily-page").textContent = state.page;
    $("daily-range").textContent = "";
    $("daily-total").textContent = "–";
    $("daily-note").textContent = message;
    $("daily-table").tBodies[0].replaceChildren();
    $("daily").replaceChildren($("daily-title"));
    $("daily").setAttribute("height", "0");
  }

  async function refresh() {
    const gen = ++generation;
    const current = () => gen === generation;
    const problem = rangeProblem();
    if (problem) {
      clearRanking();
      $("range-desc").textContent = problem;
      $("daily-section").hidden = !state.page;
      if (state.page) clearDaily(problem);
      status(problem);
      return;
    }
    const s = span();
    const q = s ? rangeParams(s) : new URLSearchParams();
    q.set("limit", String(TOP));
    let ok = true;
    try {
      const data = await api("/api/v1/pages?" + q);
      if (!current()) return;
      shownRanking = data;
      $("total").textContent = String(data.total);
      describeRanking(data);
      fillTable(data.pages);
      drawChart(data.pages);
    } catch (err) {
      if (!current()) return;
      clearRanking();
      status("Could not load the counts: " + err.message);
      ok = false;
    }
    $("daily-section").hidden = !state.page;
    if (state.page) {
      try {
        const data = await api(dailyQuery());
        if (!current()) return;
        showDaily(data);
      } catch (err) {
        if (!current()) return;
        clearDaily("Could not load the days: " + err.message);
        if (ok) status("Updated " + new Date().toLocaleTimeString() + ", but not the days");
        ok = false;
      }
    }
    if (ok) status("Updated " + new Date().toLocaleTimeString());
  }

  function choose(url) {
    state.page = url;
    writeHash();
    markChosen();
    $("daily-section").hidden = false;
    clearDaily("Loading…");
    refresh().then(() => $("daily-section").scrollIntoView({ block: "nearest" }));
  }

  $("top").tBodies[0].addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr");
    if (tr && tr.dataset.url) choose(tr.dataset.url);
  });
  $("range").addEventListener("change", onRangeInput);
  $("range").addEventListener("submit", (ev) => ev.preventDefault());
  window.addEventListener("hashchange", () => { readHash(); fillZones(); showForm(); refresh(); });
  let resizing = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(() => {
      if (shownRanking) drawChart(shownRanking.pages);
      if (shownDaily) drawDaily(shownDaily);
    });
  });

  $("lookup").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const url = $("url").value.trim();
    const s = span();
    const q = s ? rangeParams(s) : new URLSearchParams();
    q.set("url", url);
    try {
      const a = await api("/api/v1/visitors?" + q);
      const how = a.exact ? "" : ` (estimate, ±${(100 * a.relative_error).toFixed(2)}%)`;
      const when = s ? ` from ${a.from} to ${a.to} (${a.tz})` : "";
      $("answer").textContent = `${a.url}: ${a.visitors} distinct ${plural(a.visitors, "visitor", "visitors")}${when}${how}`;
      choose(a.url);
    } catch (err) {
      $("answer").textContent = "Could not count: " + err.message;
    }
  });

  readHash();
  fillZones();
  showForm();
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
