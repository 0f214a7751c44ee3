/* costtune dashboard, part 3 of 3: the pages. Draws each page from /api/v1 and keeps it live; no build
   step, no network beyond this server. Every value is put in the page as text (textContent). */
(function () {
  "use strict";
  const { $, put, el, usd, rate, T, num, ago, studyUrl, apiStudy, params, token, call, flash, poll, table, facts, bar } = window.costtuneUI;
  const { charts, box, draw, usdAxis, bestChart, paretoChart, curvesChart, parallelChart, placementTable, improvementsTable } = window.costtuneCharts;
  const app = $("#app");
  const page = document.body.dataset.page;
  const initial = JSON.parse($("#initial").textContent);
  // -- pages ------------------------------------------------------------------------------------
  function studiesPage() {
    let rows = initial.studies, sort = { key: "last_activity", desc: true }, query = "";
    const search = el("input", { id: "search", type: "search", placeholder: "search studies", "aria-label": "search studies" });
    const holder = el("div", {});
    put(app, el("div", { cls: "tools" }, search), holder);
    search.addEventListener("input", () => { query = search.value.toLowerCase(); render(); });
    const keyOf = { name: (r) => r.name, state: (r) => r.state, trials: (r) => r.trials, best: (r) => r.best,
      spend: (r) => r.spend_micros, burn: (r) => r.burn_micros_per_hour, last_activity: (r) => r.last_activity || "" };
    function render() {
      const shown = rows.filter((r) => !query || r.name.toLowerCase().includes(query) || r.metric.toLowerCase().includes(query));
      const f = keyOf[sort.key];
      shown.sort((a, b) => {  // a missing value (a study with no best yet) sorts last either way
        const x = f(a), y = f(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * (sort.desc ? -1 : 1);
      });
      holder.textContent = "";
      holder.appendChild(shown.length ? table([
        { label: "study", sort: "name", get: (r) => el("a", { href: studyUrl(r.name), text: r.name }) },
        { label: "state", sort: "state", get: (r) => r.state + (r.paused ? " (paused)" : ""), cls: (r) => "st-" + r.state },
        { label: "trials", sort: "trials", num: true, get: (r) => (r.counts.complete + r.counts.stopped + r.counts.failed) + "/" + r.trials },
        { label: "best", sort: "best", num: true, get: (r) => num(r.best) + " " + r.metric + " (" + r.mode + ")" },
        { label: "spend / cap", sort: "spend", num: true, get: (r) => T(r, "spend_micros") + " / " + (r.cap_micros === null ? "no cap" : T(r, "cap_micros")) },
        { label: "", get: (r) => (r.cap_micros ? bar(r.spend_micros / r.cap_micros) : "") },
        { label: "$/h now", sort: "burn", num: true, get: (r) => T(r, "burn_micros_per_hour") },
        { label: "last activity", sort: "last_activity", get: (r) => ago(r.last_activity) },
      ], shown, { id: "studies", sorted: sort, onSort: (k) => { sort = { key: k, desc: sort.key === k ? !sort.desc : false }; render(); } })
        : el("p", { cls: "empty", text: rows.length ? "no study matches" : "no studies in this store yet: costtune run SWEEP.yaml" }));
    }
    render();
    poll(async () => { rows = (await call("/api/v1/studies")).studies; render(); }, 3000);
  }

  function studyPage() {
    const s = initial.summary, name = s.name;
    let lb = initial.trials, cursor = initial.cursor, state = { sort: "value", desc: false, offset: 0 };
    const pauseBtn = el("button", { id: "pause", text: s.paused ? "resume launches" : "pause launches" });
    put(app, 
      facts([["state", s.state + (s.paused ? " (paused)" : ""), "f-state"], ["trials", String(s.trials), "f-trials"],
        ["spend", T(s, "spend_micros"), "f-spend"], ["cap", s.cap_micros === null ? "no cap" : T(s, "cap_micros"), "f-cap"],
        ["$/h now", T(s, "burn_micros_per_hour"), "f-burn"], ["best " + s.metric + " (" + s.mode + ")", num(s.best), "f-best"]]),
      el("div", { cls: "tools" }, pauseBtn,
        el("button", { id: "export-csv", text: "export CSV", on: { click: () => exportAs("csv") } }),
        el("button", { id: "export-json", text: "export JSON", on: { click: () => exportAs("json") } })),
      el("div", { cls: "charts" }, box("chart-best", "best " + s.metric + " vs cumulative spend"),
        box("chart-pareto", s.metric + " vs trial cost, Pareto front"), box("chart-curves", "learning curves of the best trials, in dollars"),
        box("chart-parallel", "parallel coordinates of the parameters")),
      el("h2", { text: "spend by instance type and market" }), el("div", { id: "placement" }),
      el("h2", { text: "cost per improvement" }), el("div", { id: "improvements" }),
      el("h2", { text: "leaderboard" }), leaderboardTools(), el("div", { id: "lb" }), el("div", { cls: "pager", id: "pager" }),
      el("h2", { text: "enqueue a configuration" }), enqueueForm());
    pauseBtn.addEventListener("click", async () => {
      const paused = pauseBtn.textContent.startsWith("pause");
      try { await call(apiStudy(name) + (paused ? "/pause" : "/resume"), { method: "POST", body: {} });
        pauseBtn.textContent = paused ? "resume launches" : "pause launches"; flash(paused ? "launches paused" : "launches resumed");
      } catch (e) { flash(e.message, true); }
    });
    async function exportAs(fmt) {
      try {
        const r = await call(apiStudy(name) + "/export?format=" + fmt, { raw: true });
        const url = URL.createObjectURL(await r.blob());
        const a = el("a", { href: url, download: name + "-leaderboard." + fmt });
        document.body.appendChild(a); a.click(); a.remove();
      } catch (e) { flash(e.message, true); }
    }
    function leaderboardTools() {
      const st = el("select", { id: "f-state-filter", "aria-label": "state" }, ["", "complete", "stopped", "failed", "running", "queued"].map((v) => el("option", { value: v, text: v || "any state" })));
      const q = el("input", { id: "f-search", type: "search", placeholder: "parameter text" });
      const lo = el("input", { id: "f-min", type: "number", step: "any", placeholder: "min $" });
      const hi = el("input", { id: "f-max", type: "number", step: "any", placeholder: "max $" });
      const apply = () => { state.offset = 0; state.states = st.value; state.q = q.value; state.min = lo.value; state.max = hi.value; loadTrials(); };
      [st, q, lo, hi].forEach((i) => i.addEventListener("change", apply));
      return el("div", { cls: "tools" }, st, q, lo, hi);
    }
    async function loadTrials() {
      const p = new URLSearchParams({ sort: state.sort, desc: state.desc ? "1" : "0", offset: String(state.offset), limit: "50" });
      if (state.states) p.set("state", state.states);
      if (state.q) p.set("q", state.q);
      if (state.min) p.set("min_cost", String(Math.round(Number(state.min) * 1e6)));
      if (state.max) p.set("max_cost", String(Math.round(Number(state.max) * 1e6)));
      lb = await call(apiStudy(name) + "/trials?" + p);
      renderTrials();
    }
    function renderTrials() {
      const keys = Array.from(new Set(lb.rows.flatMap((r) => Object.keys(r.params)))).sort();
      const holder = $("#lb");
      holder.textContent = "";
      const sortBy = (k) => { state.desc = state.sort === k ? !state.desc : false; state.sort = k; state.offset = 0; loadTrials().catch((e) => flash(e.message, true)); };
      holder.appendChild(table([
        { label: "trial", sort: "number", get: (r) => el("a", { href: studyUrl(name) + "/trials/" + r.number, text: "#" + r.number }) },
        { label: "state", sort: "state", get: (r) => r.state, cls: (r) => "st-" + r.state },
        { label: s.metric, sort: "value", num: true, get: (r) => num(r.value === null ? r.raw_value : r.value) },
        { label: "cost", sort: "cost", num: true, get: (r) => T(r, "cost_micros") },
        { label: "instance", get: (r) => r.instance_type },
        { label: "market", get: (r) => r.market },
        { label: "$/h", num: true, get: (r) => T(r, "rate_micros_per_hour") },
        { label: "time billed", num: true, get: (r) => T(r, "charged_ms") },
        { label: "attempts", num: true, get: (r) => r.attempts },
        { label: "preempted", num: true, get: (r) => r.preemptions },
        { label: "step", sort: "step", num: true, get: (r) => r.last_step },
      ].concat(keys.map((k) => ({ label: k, num: true, get: (r) => num(r.params[k]) }))),
      lb.rows.map((r) => Object.assign({ _id: r.number }, r)), { id: "leaderboard", sorted: { key: state.sort, desc: state.desc }, onSort: sortBy }));
      const pager = $("#pager");
      pager.textContent = "";
      const last = Math.min(lb.total, lb.offset + lb.rows.length);
      pager.append(el("button", { text: "‹ previous", disabled: lb.offset <= 0, on: { click: () => { state.offset = Math.max(0, lb.offset - 50); loadTrials(); } } }),
        el("span", { id: "page-info", text: (lb.total ? lb.offset + 1 : 0) + "–" + last + " of " + lb.total }),
        el("button", { text: "next ›", disabled: last >= lb.total, on: { click: () => { state.offset = lb.offset + 50; loadTrials(); } } }));
    }
    function enqueueForm() {
      const space = s.space || {};
      const inputs = Object.entries(space).map(([k, d]) => {
        const hint = d && typeof d === "object" ? (d.choices ? d.choices.join(" | ") : (d.type || "") + (d.low !== undefined ? " " + d.low + "…" + d.high : "")) : String(d);
        const field = d && typeof d === "object" && Array.isArray(d.choices)
          ? el("select", { name: k, "data-param": k }, el("option", { value: "", text: "choose" }), d.choices.map((c) => el("option", { value: String(c), text: String(c) })))
          : el("input", { name: k, "data-param": k, placeholder: hint });
        return el("label", {}, el("span", { text: k }), field);
      });
      const out = el("span", { id: "enqueue-result" });
      const raise = el("input", { id: "raise-trials", type: "number", min: "1", step: "1", placeholder: "optional" });
      const form = el("form", { id: "enqueue", cls: "enqueue" }, inputs,
        el("label", {}, el("span", { text: "raise budget.trials to" }), raise), el("button", { type: "submit", text: "enqueue" }), out);
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const p = {};
        form.querySelectorAll("[data-param]").forEach((i) => { if (i.value !== "") p[i.dataset.param] = i.value; });
        const body = { params: p };
        if (raise.value) body.raise_trials = Number(raise.value);
        try { const r = await call(apiStudy(name) + "/enqueue", { method: "POST", body: body });
          out.textContent = "queued trial " + r.queued; out.className = "ok"; flash("queued trial " + r.queued);
        } catch (err) { out.textContent = err.message; out.className = "bad"; flash(err.message, true); }
      });
      return form;
    }
    async function loadCharts() {
      const c = await call(apiStudy(name) + "/charts");
      bestChart(c); paretoChart(c); curvesChart(c); parallelChart(c);
      const pl = $("#placement"); pl.textContent = ""; pl.appendChild(c.placement.length ? placementTable(c) : el("p", { cls: "empty", text: "no attempts yet" }));
      const im = $("#improvements"); im.textContent = ""; im.appendChild(c.improvements.length ? improvementsTable(c) : el("p", { cls: "empty", text: "no finished trial yet" }));
    }
    renderTrials();
    loadCharts().catch((e) => flash(e.message, true));
    let chartsDue = 0;
    poll(async () => {
      const d = await call(apiStudy(name) + "/live?" + new URLSearchParams(cursor));
      cursor = d.cursor; if (!cursor.since) cursor.since = "";
      $("#f-trials").textContent = String(d.trials);
      $("#f-spend").textContent = T(d, "spend_micros");
      $("#f-burn").textContent = T(d, "burn_micros_per_hour");
      const st = d.counts.running ? "running" : d.counts.queued ? "queued" : d.trials ? "finished" : "empty";
      $("#f-state").textContent = st + (d.paused ? " (paused)" : "");
      pauseBtn.textContent = d.paused ? "resume launches" : "pause launches";
      if (d.trials_changed.length || d.counts.running) {
        await loadTrials();
        if (Date.now() >= chartsDue && d.trials_changed.some((t) => t.finished_at)) { chartsDue = Date.now() + 3000; await loadCharts(); }
      }
      const finished = d.trials_changed.filter((t) => t.value !== null);
      if (finished.length) call(apiStudy(name)).then((x) => { $("#f-best").textContent = num(x.best); });
    }, 2000);
  }

  function trialPage() {
    let t = initial;
    function render() {
      app.textContent = "";
      const stop = (t.state === "running" || t.state === "queued")
        ? el("button", { id: "stop", text: "stop this trial", on: { click: async () => {
          try { const r = await call(apiStudy(t.study) + "/trials/" + t.number + "/stop", { method: "POST", body: {} }); flash("trial " + r.trial + ": " + r.state); }
          catch (e) { flash(e.message, true); } } } }) : null;
      put(app, facts([["state", t.state, "t-state"], [t.metric, num(t.value), "t-value"], ["cost", T(t, "cost_micros"), "t-cost"],
        ["last step", num(t.last_step), "t-step"], ["source", t.source], ["attempts", String(t.attempts.length)]]),
      el("div", { cls: "tools" }, stop),
      t.error ? el("pre", { cls: "error", id: "t-error", text: t.error }) : null,
      el("h2", { text: "parameters" }), table([{ label: "name", get: (r) => r[0] }, { label: "value", get: (r) => (typeof r[1] === "object" ? JSON.stringify(r[1]) : num(r[1])) }], Object.entries(t.params), { id: "params" }),
      el("h2", { text: "metrics (last reported)" }), table([{ label: "name", get: (r) => r[0] }, { label: "value", num: true, get: (r) => num(r[1]) }], Object.entries(t.metrics), { id: "metrics" }),
      el("div", { cls: "charts" }, box("chart-trial", t.metric + " vs this trial's spend")),
      t.verdicts.length ? el("h2", { text: "rung verdicts" }) : null,
      t.verdicts.length ? table([{ label: "rung", num: true, get: (r) => T(r, "rung_micros") }, { label: t.metric, num: true, get: (r) => num(r.value) }, { label: "verdict", get: (r) => (r.promoted ? "promoted" : "stopped") }, { label: "why", get: (r) => r.reason || "" }], t.verdicts) : null,
      el("h2", { text: "attempts" }),
      table([{ label: "#", get: (r) => r.number }, { label: "provider", get: (r) => r.provider }, { label: "region", get: (r) => r.region },
        { label: "instance", get: (r) => r.instance_type }, { label: "market", get: (r) => r.market }, { label: "rate", num: true, get: (r) => T(r, "rate_micros_per_hour") },
        { label: "billable", num: true, get: (r) => T(r, "billable_ms") }, { label: "charged", num: true, get: (r) => T(r, "charged_ms") },
        { label: "charge", num: true, get: (r) => T(r, "cost_micros") }, { label: "waste", num: true, get: (r) => T(r, "waste_micros") },
        { label: "exit", get: (r) => (r.exit_reason || "running") + (r.exit_code_shown !== null && r.exit_code_shown !== undefined ? " (" + r.exit_code_shown + ")" : "") },
        { label: "started", get: (r) => r.started_at }, { label: "note", get: (r) => r.note }], t.attempts, { id: "attempts" }),
      el("h2", { text: "log tail" }),
      Object.entries(t.logs).map(([k, lines]) => el("details", { open: lines.length ? true : null }, el("summary", { text: k + " (" + lines.length + " lines)" }), el("pre", { cls: "log", text: lines.join("\n") }))),
      el("h2", { text: "artifacts" }),
      t.artifacts.length ? table([{ label: "file", get: (r) => r.name }, { label: "bytes", num: true, get: (r) => r.bytes }], t.artifacts) : el("p", { cls: "empty", text: t.output_dir ? "no files besides the logs in " + t.output_dir : "no output directory" }));
      const xs = t.curve.map((p) => p[0] / 1e6), ys = t.curve.map((p) => p[1]);
      draw("chart-trial", { scales: { x: { time: false } }, axes: [usdAxis("trial spend"), { label: t.metric }],
        series: [{ label: "spend" }, { label: t.metric, stroke: "#2f6fde", width: 2, points: { show: xs.length < 200 } }] }, [xs, ys], xs.length);
    }
    render();
    poll(async () => { if (t.state === "running" || t.state === "queued") { t = await call(apiStudy(t.study) + "/trials/" + t.number); render(); } }, 3000);
  }

  function moneyPage() {
    let d = initial;
    function render() {
      app.textContent = "";
      put(app, facts([["burning now", T(d, "burn_micros_per_hour"), "m-burn"], ["attempts running", String(d.running), "m-running"],
        ["scopes", String(d.scopes.length)]]),
      el("h2", { text: "spend by scope against caps" }),
      d.scopes.length ? table([
        { label: "scope", get: (r) => r.label }, { label: "kind", get: (r) => r.kind },
        { label: "spent", num: true, get: (r) => T(r, "spent_micros") }, { label: "reserved", num: true, get: (r) => T(r, "reserved_micros") },
        { label: "cap", num: true, get: (r) => (r.cap_micros === null ? "no cap" : T(r, "cap_micros")) },
        { label: "used", get: (r) => (r.used === null ? "" : bar(r.used)) }, { label: "used %", num: true, get: (r) => (r.used === null ? "–" : (100 * r.used).toFixed(1) + "%") },
        { label: "$/h now", num: true, get: (r) => T(r, "burn_micros_per_hour") },
        { label: "forecast", get: (r) => forecast(r) },
      ], d.scopes, { id: "scopes" }) : el("p", { cls: "empty", text: "no money scopes yet" }),
      el("h2", { text: "burn-down" }),
      el("div", { cls: "charts" }, d.scopes.filter((r) => r.burn_down).slice(0, 12).map((r, i) => box("chart-burn-" + i, r.label + ": left of " + T(r, "cap_micros")))),
      el("h2", { text: "audit trail (latest 50)" }),
      d.audit.length ? table([{ label: "when", get: (r) => r.at }, { label: "who", get: (r) => r.actor }, { label: "action", get: (r) => r.action },
        { label: "detail", get: (r) => JSON.stringify(r.detail) }], d.audit, { id: "audit" }) : el("p", { cls: "empty", text: "nothing audited yet" }));
      d.scopes.filter((r) => r.burn_down).slice(0, 12).forEach((r, i) => {
        const pts = r.burn_down.points;
        draw("chart-burn-" + i, { scales: { x: { time: true } }, axes: [{}, usdAxis("left")],
          series: [{}, { label: "left", stroke: "#3b9c6b", width: 2, fill: "rgba(59,156,107,.1)", paths: uPlot.paths.stepped({ align: 1 }) }] },
        [pts.map((p) => Date.parse(p[0]) / 1000), pts.map((p) => p[1] / 1e6)], pts.length);
      });
    }
    function forecast(r) {
      const f = r.burn_down && r.burn_down.forecast;
      if (!f) return "–";
      const reached = f.cap_reached_at ? "cap reached " + f.cap_reached_at.slice(0, 16).replace("T", " ") + " UTC at this rate" : "";
      if (f.forecast_micros !== null && f.forecast_micros !== undefined) {  // a window: costtune policy status's forecast
        return T(f, "forecast_micros") + (f.forecast_at_cap ? " (cap)" : "") + " by window end, " + T(f, "left_at_end_micros") + " left" + (reached ? "; " + reached : "");
      }
      if (reached) return reached;
      return f.rate_micros_per_hour ? "averaging " + T(f, "rate_micros_per_hour") : "–";
    }
    render();
    poll(async () => { const n = await call("/api/v1/spend"); if (JSON.stringify(n) !== JSON.stringify(d)) { d = n; render(); } }, 5000);
  }

  function runningPage() {
    let d = initial, rows = initial.attempts;
    function render() {
      app.textContent = "";
      put(app, facts([["attempts running", String(rows.length), "r-count"], ["burning", T(d, "burn_micros_per_hour"), "r-burn"],
        ["spent by them so far", T(d, "spent_micros"), "r-spent"]]),
      rows.length ? table([
        { label: "study", get: (r) => el("a", { href: studyUrl(r.study), text: r.study }) },
        { label: "trial", get: (r) => el("a", { href: studyUrl(r.study) + "/trials/" + r.trial, text: "#" + r.trial + " (attempt " + r.attempt + ")" }) },
        { label: "placement", get: (r) => r.placement }, { label: "market", get: (r) => r.market || "-" }, { label: "region", get: (r) => r.region || "-" },
        { label: "$/h", num: true, get: (r) => T(r, "rate_micros_per_hour") }, { label: "attempt spend", num: true, get: (r) => T(r, "attempt_cost_micros") },
        { label: "trial spend", num: true, get: (r) => T(r, "trial_cost_micros") }, { label: "next rung", num: true, get: (r) => T(r, "next_rung_micros") },
        { label: "to next rung", num: true, get: (r) => (r.hours_to_next_rung === null ? "–" : T(r, "to_next_rung_micros") + " ≈ " + T(r, "hours_to_next_rung")) },
        { label: "step", num: true, get: (r) => r.last_step }, { label: "started", get: (r) => ago(r.started_at) },
      ], rows, { id: "running" }) : el("p", { cls: "empty", text: "nothing is running" }));
    }
    render();
    poll(async () => { d = await call("/api/v1/running"); rows = d.attempts; render(); }, 2000);
  }

  function schedulesPage() {
    let d = initial;
    function render() {
      app.textContent = "";
      put(app, el("h2", { text: "schedules" }),
        d.schedules.length ? table([
          { label: "schedule", get: (r) => r.name }, { label: "timing", get: (r) => r.timing },
          { label: "state", get: (r) => (r.paused ? "paused" : "active") },
          { label: "next run (UTC)", get: (r) => (r.next_run ? r.next_run.slice(0, 16).replace("T", " ") : "–") },
          { label: "last run", get: (r) => (r.runs.length ? r.runs[0].state + (r.runs[0].reason ? ": " + r.runs[0].reason : "") : "never") },
          { label: "last study", get: (r) => (r.runs.length && r.runs[0].study ? el("a", { href: studyUrl(r.runs[0].study), text: r.runs[0].study }) : "–") },
        ], d.schedules, { id: "schedules" }) : el("p", { cls: "empty", text: "no schedules: costtune schedule add ..." }),
        el("h2", { text: "model versions" }),
        d.models.length ? table([
          { label: "version", get: (r) => r.ref }, { label: "serving", get: (r) => (r.promoted ? "yes" : "") },
          { label: "metric", num: true, get: (r) => num(r.value) + " " + r.metric },
          { label: "run cost", num: true, get: (r) => T(r, "run_cost_micros") }, { label: "cost to reach", num: true, get: (r) => T(r, "reach_cost_micros") },
          { label: "from", get: (r) => el("a", { href: studyUrl(r.study) + "/trials/" + r.trial, text: r.study + " #" + r.trial }) },
          { label: "parameters", get: (r) => params(r.params) }, { label: "created", get: (r) => r.created_at },
          { label: "note", get: (r) => r.note },
        ], d.models.slice().reverse(), { id: "models" }) : el("p", { cls: "empty", text: "no model versions yet" }));
    }
    render();
    poll(async () => { const n = await call("/api/v1/schedules"); if (JSON.stringify(n) !== JSON.stringify(d)) { d = n; render(); } }, 5000);
  }

  const pages = { studies: studiesPage, study: studyPage, trial: trialPage, money: moneyPage, running: runningPage,
    schedules: schedulesPage };
  if (pages[page]) pages[page]();
  else if (initial.error) app.appendChild(el("p", { cls: "empty", text: initial.error }));
  if (!pages[page] && initial.needs_token) app.appendChild(el("p", { text: "Open the link printed when the dashboard started, or save the token above and reload." }));
})();
