/* costtune dashboard, part 2 of 3: the charts (uPlot, shipped beside this file) and the money tables. */
(function () {
  "use strict";
  const { $, put, el, usd, rate, T, num, ago, studyUrl, apiStudy, params, token, call, flash, poll, table, facts, bar } = window.costtuneUI;
  const charts = {};
  // -- charts -----------------------------------------------------------------------------------
  function box(id, title) {
    return el("figure", { cls: "chart", id: id }, el("figcaption", { text: title }), el("div", { cls: "plot" }));
  }
  function draw(id, opts, data, points) {
    const holder = $("#" + id);
    if (!holder) return;
    const plot = $(".plot", holder);
    if (charts[id]) charts[id].destroy();
    plot.textContent = "";
    holder.dataset.points = String(points);
    if (!points) { plot.appendChild(el("p", { cls: "empty", text: "no data yet" })); delete charts[id]; return; }
    opts.width = Math.max(300, plot.clientWidth || 520);
    opts.height = opts.height || 260;
    charts[id] = new uPlot(opts, data, plot);
  }
  const usdAxis = (label) => ({ label: label, values: (u, ticks) => ticks.map((t) => "$" + Number(t.toPrecision(4))) });
  const dots = { show: true, size: 5, fill: "#2f6fde" };
  const noLine = () => null;

  function bestChart(c) {
    const rows = c.best_vs_spend;
    const xs = rows.map((r) => r[0] / 1e6), ys = rows.map((r) => r[1]);
    draw("chart-best", { scales: { x: { time: false } }, axes: [usdAxis("cumulative spend"), { label: "best " + c.metric }],
      series: [{ label: "spend", value: (u, v) => (v == null ? "-" : usd(v * 1e6)) },
        { label: "best " + c.metric, stroke: "#2f6fde", width: 2, paths: uPlot.paths.stepped({ align: 1 }) }] },
    [xs, ys], ys.filter((v) => v !== null).length);
  }
  function paretoChart(c) {
    const pts = c.scatter.slice().sort((a, b) => a[0] - b[0]);
    const front = new Set(c.pareto.map((p) => p[2]));
    const xs = pts.map((p) => p[0] / 1e6), ys = pts.map((p) => p[1]);
    const fr = pts.map((p) => (front.has(p[2]) ? p[1] : null));
    draw("chart-pareto", { scales: { x: { time: false } }, axes: [usdAxis("trial cost"), { label: c.metric }],
      series: [{ label: "cost" }, { label: c.metric, stroke: "#2f6fde", paths: noLine, points: dots },
        { label: "Pareto front", stroke: "#e4572e", width: 2, spanGaps: true, points: { show: true, size: 7, stroke: "#e4572e" } }] },
    [xs, ys, fr], pts.length);
  }
  function curvesChart(c) {
    const curves = c.curves.filter((k) => k.points.length);
    const xsSet = new Set();
    curves.forEach((k) => k.points.forEach((p) => xsSet.add(p[0])));
    const xsMicros = Array.from(xsSet).sort((a, b) => a - b);
    const index = new Map(xsMicros.map((x, i) => [x, i]));
    const series = [{ label: "trial spend" }], data = [xsMicros.map((x) => x / 1e6)];
    const palette = ["#2f6fde", "#e4572e", "#3b9c6b", "#8e44ad", "#d9822b", "#16a085", "#c0392b", "#2c3e50", "#7f8c8d", "#b7950b", "#1abc9c", "#e84393"];
    let n = 0;
    curves.forEach((k, i) => {
      const col = new Array(xsMicros.length).fill(null);
      k.points.forEach((p) => { col[index.get(p[0])] = p[1]; n++; });
      data.push(col);
      series.push({ label: "trial " + k.trial, stroke: palette[i % palette.length], spanGaps: true, width: 1.5 });
    });
    const rungs = (c.rungs || []).map((r) => r / 1e6);
    draw("chart-curves", { scales: { x: { time: false } }, axes: [usdAxis("trial spend (rung lines dashed)"), { label: c.metric }],
      series: series, legend: { show: curves.length <= 12 },
      hooks: { draw: [(u) => {
        const ctx = u.ctx; ctx.save(); ctx.strokeStyle = "#999"; ctx.setLineDash([4, 4]);
        rungs.forEach((r) => {
          const x = u.valToPos(r, "x", true);
          if (x >= u.bbox.left && x <= u.bbox.left + u.bbox.width) { ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke(); }
        });
        ctx.restore();
      }] } }, data, n);
  }
  function parallelChart(c) {
    const holder = $("#chart-parallel");
    if (!holder) return;
    const plot = $(".plot", holder);
    plot.textContent = "";
    const rows = c.parallel.rows, names = c.parallel.params.concat([c.metric]);
    holder.dataset.points = String(rows.length);
    if (!rows.length) { plot.appendChild(el("p", { cls: "empty", text: "no data yet" })); return; }
    const w = Math.max(300, plot.clientWidth || 520), h = 280, pad = 30;
    const canvas = el("canvas", { width: w, height: h });
    plot.appendChild(canvas);
    const ctx = canvas.getContext("2d");
    const cols = names.map((_, j) => rows.map((r) => (j < names.length - 1 ? r[j + 2] : r[1])));
    const scales = cols.map((vals) => {
      if (vals.every((v) => typeof v === "number")) {
        const lo = Math.min(...vals), hi = Math.max(...vals);
        return (v) => (hi > lo ? (v - lo) / (hi - lo) : 0.5);
      }
      const cats = Array.from(new Set(vals.map(String))).sort();
      return (v) => (cats.length > 1 ? cats.indexOf(String(v)) / (cats.length - 1) : 0.5);
    });
    const x = (j) => pad + (j * (w - 2 * pad)) / Math.max(1, names.length - 1);
    const y = (f) => h - pad - f * (h - 2 * pad);
    ctx.lineWidth = 1;
    for (let i = rows.length - 1; i >= 0; i--) {  // best drawn last, on top
      const t = rows.length > 1 ? i / (rows.length - 1) : 0;
      ctx.strokeStyle = "hsla(" + (220 - 180 * t).toFixed(0) + ",70%," + (35 + 30 * t).toFixed(0) + "%," + (rows.length > 500 ? 0.25 : 0.6) + ")";
      ctx.beginPath();
      names.forEach((_, j) => { const yy = y(scales[j](cols[j][i])); if (j) ctx.lineTo(x(j), yy); else ctx.moveTo(x(j), yy); });
      ctx.stroke();
    }
    ctx.fillStyle = "#222"; ctx.strokeStyle = "#555"; ctx.font = "11px system-ui,sans-serif"; ctx.textAlign = "center";
    names.forEach((name, j) => {
      ctx.beginPath(); ctx.moveTo(x(j), pad); ctx.lineTo(x(j), h - pad); ctx.stroke();
      ctx.fillText(name.length > 14 ? name.slice(0, 13) + "…" : name, x(j), h - 10);
    });
    ctx.fillText("colour: " + c.metric + " (blue = best)", w / 2, 14);
  }
  function placementTable(c) {
    const total = c.placement.reduce((a, r) => a + r.cost_micros, 0) || 1;
    return table([
      { label: "instance type", get: (r) => r.instance_type || r.provider },
      { label: "market", get: (r) => r.market },
      { label: "attempts", num: true, get: (r) => r.attempts },
      { label: "running", num: true, get: (r) => r.running },
      { label: "preemptions", num: true, get: (r) => r.preemptions },
      { label: "spend", num: true, get: (r) => T(r, "cost_micros") },
      { label: "share", get: (r) => bar(r.cost_micros / total) },
      { label: "preemption waste", num: true, get: (r) => T(r, "waste_micros") },
    ], c.placement, { id: "placement-table" });
  }
  function improvementsTable(c) {
    return table([
      { label: "trial", get: (r) => r.trial },
      { label: c.metric, num: true, get: (r) => num(r.value) },
      { label: "gain", num: true, get: (r) => num(r.gain) },
      { label: "spent since previous best", num: true, get: (r) => T(r, "cost_of_gain_micros") },
      { label: "cumulative", num: true, get: (r) => T(r, "cumulative_micros") },
      { label: "$ per unit gain", num: true, get: (r) => T(r, "usd_per_unit_gain") },
    ], c.improvements.slice().reverse(), { id: "improvements-table" });
  }

  window.costtuneCharts = { charts, box, draw, usdAxis, bestChart, paretoChart, curvesChart, parallelChart, placementTable, improvementsTable };
  window.costtune = { charts: charts };
})();
