// promcast's web page: the series list, one series' chart (actual, forecast cone, past
// forecasts, anomalies) and the scaling targets, from the agent's JSON API. No framework,
// no build step; uPlot draws the charts. What the page drew is also written to `data-*`
// attributes, which the browser tests read.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const refreshMs = Math.max(500, 1000 * (parseFloat(params.get("refresh")) || 2));
  // Absolute URLs without credentials (a page opened as http://user:pass@host/ must not put
  // them into fetch URLs; the browser sends the cached ones).
  const base = location.origin + location.pathname.replace(/[^/]*$/, "");
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const fmt = (v) => {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return Number(v.toPrecision(4)).toString();
  };
  const quote = (v) => '"' + v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") + '"';
  const selectorOf = (labels) =>
    "{" + Object.keys(labels).sort().map((k) => k + "=" + quote(labels[k])).join(",") + "}";
  const nameOf = (labels) => {
    const rest = Object.keys(labels).filter((k) => k !== "__name__").sort()
      .map((k) => k + "=" + quote(labels[k])).join(", ");
    return (labels.__name__ || "") + "{" + rest + "}";
  };
  const sameLabels = (a, b) => {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => a[k] === b[k]);
  };

  let hours = 6;
  let list = [];
  let listGenerated = null;
  let selected = location.hash.length > 1 ? decodeURIComponent(location.hash.slice(1)) : null;
  let chart = null, scalingChart = null;
  let firstRender = false;

  async function api(path) {
    const r = await fetch(base + path, { credentials: "same-origin", cache: "no-store" });
    const body = await r.json().catch(() => null);
    if (!r.ok) throw new Error(path.split("?")[0] + ": HTTP " + r.status + (body && body.error ? " " + body.error : ""));
    return body.data;
  }

  function stateCell(s) {
    let text = s.state.replace("_", " ");
    let why = "";
    if (s.state === "warming_up") text += " (" + s.points_needed + " more points for " + s.for_model + ")";
    if (s.state === "failed") why = '<span class="why">' + esc(s.reason) + "</span>";
    return '<td class="state state-' + esc(s.state) + '">' + esc(text) + why + "</td>";
  }

  // The model, and for an `auto` series how far its choice is: "waiting" (the preference
  // order serves until its first choice) or "provisional" (chosen without the expensive
  // candidates while others waited); a full choice shows the model alone.
  function modelText(s) {
    const m = s.model || "–";
    return s.auto_choice && s.auto_choice !== "chosen" ? m + " (" + s.auto_choice + ")" : m;
  }

  function renderList() {
    const filter = $("filter").value.trim();
    const text = filter.startsWith("{") ? "" : filter.toLowerCase();
    const rows = [];
    let ready = 0;
    for (const s of list) {
      const name = nameOf(s.labels);
      if (text && !name.toLowerCase().includes(text)) continue;
      if (s.state === "ready") ready++;
      const sel = selectorOf(s.labels);
      const next = s.forecasts && s.forecasts.length ? s.forecasts[0].yhat : null;
      const score = s.anomaly_score;
      rows.push(
        '<tr data-sel="' + esc(sel) + '"' + (sel === selected ? ' class="sel"' : "") + ">" +
        '<td class="name">' + esc(name) + "</td>" + stateCell(s) +
        "<td>" + esc(modelText(s)) + "</td>" +
        '<td class="num' + (s.anomalous ? " hot" : "") + '">' + fmt(score) + "</td>" +
        '<td class="num">' + fmt(next) + "</td></tr>");
    }
    const table = $("series-list");
    table.tBodies[0].innerHTML = rows.join("");
    table.dataset.rows = rows.length;
    table.dataset.ready = ready;
  }

  async function loadList() {
    const filter = $("filter").value.trim();
    const q = "api/v1/forecasts?limit=5000" + (filter.startsWith("{") ? "&selector=" + encodeURIComponent(filter) : "");
    const data = await api(q);
    list = data.series;
    list.sort((a, b) => { const x = nameOf(a.labels), y = nameOf(b.labels); return x < y ? -1 : x > y ? 1 : 0; });
    listGenerated = data.generated_at;
    $("list-note").textContent = list.length + " series" + (data.truncated ? " (first 5,000; filter with a selector)" : "");
    if (!selected && list.length) {
      const s = list.find((x) => x.state === "ready" && x.anomaly_score !== undefined) || list.find((x) => x.state === "ready") || list[0];
      selected = selectorOf(s.labels);
    }
    renderList();
    const when = listGenerated ? "forecasts of " + new Date(listGenerated * 1000).toLocaleString() : "no forecast step yet";
    $("status").textContent = when + " · refresh " + refreshMs / 1000 + " s";
    if (!list.length) $("list-note").textContent = "no series yet: promcast forecasts what Prometheus remote-writes to it (see the README)";
  }

  function chartData(actualSeries, past, current) {
    const rows = new Map();
    const row = (t) => {
      let r = rows.get(t);
      if (!r) { r = { t }; rows.set(t, r); }
      return r;
    };
    const points = actualSeries ? actualSeries.points : [];
    const last = points.length ? points[points.length - 1] : null;
    const from = last ? last[0] - hours * 3600 : -Infinity;
    for (const [t, v] of points) if (t >= from) row(t).actual = v;
    const horizons = past ? past.forecasts.map((f) => f.horizon) : [];
    if (past) {
      past.forecasts.forEach((f, h) => {
        for (const [t, y] of f.points) if (t >= from) row(t)["past" + h] = y;
      });
      for (const [t, , dir] of past.anomalies) {
        const r = rows.get(t);
        if (dir !== 0 && r && r.actual !== undefined) r.anomaly = r.actual;
      }
    }
    const cone = [];
    if (current && current.state === "ready" && current.forecasts.length) {
      const o = current.origin;
      const start = rows.get(o);
      const y0 = start && start.actual !== undefined ? start.actual : current.forecasts[0].yhat;
      Object.assign(row(o), { yhat: y0, lower: y0, upper: y0 });
      for (const f of current.forecasts) {
        Object.assign(row(f.target_time), { yhat: f.yhat, lower: f.yhat_lower, upper: f.yhat_upper });
        cone.push([f.target_time, f.yhat, f.yhat_lower, f.yhat_upper]);
      }
    }
    const ts = [...rows.keys()].sort((a, b) => a - b);
    const col = (k) => ts.map((t) => { const v = rows.get(t)[k]; return v === undefined ? null : v; });
    const data = [ts, col("actual")];
    horizons.forEach((_, h) => data.push(col("past" + h)));
    data.push(col("yhat"), col("lower"), col("upper"), col("anomaly"));
    return { data, horizons, cone };
  }

  function chartOpts(horizons, width) {
    const dash = [[6, 3], [3, 3], [1, 3], [8, 4, 2, 4]];
    const pastColors = ["#8250df", "#bf8700", "#0a7f8f", "#6e7781"];
    const series = [{}, { label: "actual", stroke: "#1d2329", width: 1.5, spanGaps: false }];
    horizons.forEach((h, i) => series.push({
      label: "forecast " + h + " ahead", stroke: pastColors[i % 4], dash: dash[i % 4], width: 1, spanGaps: true,
    }));
    const c = series.length;
    series.push(
      { label: "forecast", stroke: "#0969da", width: 2, spanGaps: true },
      { label: "lower", stroke: "rgba(9,105,218,0.45)", width: 1, spanGaps: true },
      { label: "upper", stroke: "rgba(9,105,218,0.45)", width: 1, spanGaps: true },
      { label: "anomalous", stroke: "#cf222e", fill: "#cf222e", paths: () => null,
        points: { show: true, size: 7, stroke: "#cf222e", fill: "#cf222e" } },
    );
    return {
      width, height: 340, series,
      bands: [{ series: [c + 2, c + 1], fill: "rgba(9,105,218,0.15)" }],
      scales: { x: { time: true } },
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    };
  }

  async function loadChart() {
    if (!selected) return;
    const q = "?limit=50&selector=" + encodeURIComponent(selected);
    const [hist, past, now] = await Promise.all([
      api("api/v1/history" + q), api("api/v1/forecast_history" + q), api("api/v1/forecasts" + q),
    ]);
    const target = list.find((s) => selectorOf(s.labels) === selected);
    const labels = target ? target.labels : (hist.series[0] || {}).labels || {};
    const pick = (arr) => (arr || []).find((s) => sameLabels(s.labels, labels));
    const actual = pick(hist.series), pastS = pick(past.series), current = pick(now.series);
    const { data, horizons, cone } = chartData(actual, pastS, current);
    $("chart-title").textContent = nameOf(labels);
    const meta = [];
    if (current) {
      meta.push(current.state.replace("_", " "), "model " + modelText(current));
      if (current.anomaly_score !== undefined) meta.push("anomaly score " + fmt(current.anomaly_score));
    }
    if (actual && actual.rate) meta.push("counter, as its per-second rate");
    $("chart-meta").textContent = meta.join(" · ");
    // The served forecasts' rolling accuracy, per horizon (absent until one was scored).
    const scored = current ? current.forecasts.filter((f) => f.scored !== undefined) : [];
    const acc = $("accuracy");
    acc.tBodies[0].innerHTML = scored.map((f) =>
      "<tr><td>" + esc(f.horizon) + '</td><td class="num">' + fmt(f.mase) + '</td><td class="num">' +
      (f.coverage === null ? "–" : (100 * f.coverage).toFixed(0) + "%") + '</td><td class="num">' + fmt(f.scored) + "</td></tr>").join("") ||
      '<tr><td colspan="4" class="muted">no forecast scored yet: a forecast is scored once its target time has passed</td></tr>';
    Object.assign(acc.dataset, {
      rows: scored.length,
      mase: JSON.stringify(scored.map((f) => [f.horizon, f.mase])),
    });
    const el = $("chart");
    const width = Math.max(300, el.clientWidth || 600);
    const key = selected + "|" + horizons.join(",");
    if (!chart || chart.promcastKey !== key) {
      if (chart) chart.destroy();
      chart = new uPlot(chartOpts(horizons, width), data, el);
      chart.promcastKey = key;
    } else {
      chart.setData(data);
    }
    const count = (i) => data[i].filter((v) => v !== null).length;
    const h = horizons.length;
    let pastPoints = 0;
    for (let i = 0; i < h; i++) pastPoints += count(2 + i);
    Object.assign(el.dataset, {
      rendered: "1",
      series: selected,
      actualPoints: count(1),
      pastPoints,
      conePoints: cone.length,
      cone: JSON.stringify(cone),
      anomalyPoints: count(data.length - 1),
      anomalyScore: current && current.anomaly_score !== undefined ? current.anomaly_score : "",
      autoChoice: current && current.auto_choice ? current.auto_choice : "",
      meta: $("chart-meta").textContent,
      lastActual: actual && actual.points.length ? actual.points[actual.points.length - 1][0] : "",
    });
  }

  async function loadScaling() {
    const data = await api("api/v1/scaling?history=1");
    const rows = data.targets.map((t) =>
      "<tr><td>" + esc(t.target) + "</td><td>" + esc(t.mode) + "</td><td>" + esc(t.policy) +
      '</td><td class="num">' + fmt(t.desired_replicas) + '</td><td class="num">' + fmt(t.observed_replicas) +
      "</td><td>" + esc(t.decided_by || "–") + '</td><td class="num">' + fmt(t.observed) +
      '</td><td class="num">' + fmt(t.predicted) + "</td><td>" + esc(t.status || "ok") + "</td></tr>");
    const table = $("scaling");
    table.tBodies[0].innerHTML = rows.join("") || '<tr><td colspan="9" class="muted">no scaling targets configured</td></tr>';
    table.dataset.rows = data.targets.length;
    if (!data.targets.length) return;
    // The first target over the kept steps: desired replicas against the observed load's.
    const t = data.targets[0];
    table.dataset.desired = t.desired_replicas === null ? "" : t.desired_replicas;
    const past = t.history || [];
    const d = [past.map((p) => p[0]), past.map((p) => p[1]), past.map((p) => p[2])];
    const el = $("scaling-chart");
    if (!scalingChart) {
      const stepped = uPlot.paths.stepped({ align: 1 });
      scalingChart = new uPlot({
        width: Math.max(300, el.clientWidth || 600), height: 160,
        series: [{},
          { label: t.target + " desired replicas", stroke: "#0969da", width: 2, paths: stepped },
          { label: "replicas for the observed load", stroke: "#1d2329", dash: [4, 3], width: 1, paths: stepped }],
        // A lone point still gets a readable axis: the ten minutes before it.
        scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - 600, max + 60] : [min, max]) } },
      }, d, el);
    } else {
      scalingChart.setData(d);
    }
    el.dataset.points = past.length;
  }

  async function refresh() {
    try {
      await loadList();
      await Promise.all([loadChart(), loadScaling()]);
      if (!firstRender) {
        firstRender = true;
        const ms = performance.now();
        document.body.dataset.firstRenderMs = ms.toFixed(0);
        console.log("promcast-mark rendered " + ms.toFixed(0));
      }
      document.body.dataset.refreshed = listGenerated === null ? "" : listGenerated;
    } catch (e) {
      $("status").textContent = String(e.message || e);
      document.body.dataset.error = String(e.message || e);
    }
    setTimeout(refresh, refreshMs);
  }

  $("series-list").addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-sel]");
    if (!tr) return;
    selected = tr.dataset.sel;
    history.replaceState(null, "", "#" + encodeURIComponent(selected));
    renderList();
    loadChart().catch((e) => { $("status").textContent = String(e.message || e); });
  });
  $("filter").addEventListener("input", () => renderList());
  $("filter").addEventListener("change", () => loadList().catch(() => {}));
  $("ranges").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-hours]");
    if (!b) return;
    hours = parseFloat(b.dataset.hours);
    for (const x of $("ranges").children) x.classList.toggle("on", x === b);
    loadChart().catch(() => {});
  });
  window.addEventListener("resize", () => {
    if (chart) chart.setSize({ width: Math.max(300, $("chart").clientWidth), height: 340 });
    if (scalingChart) scalingChart.setSize({ width: Math.max(300, $("scaling-chart").clientWidth), height: 160 });
  });
  refresh();
})();
