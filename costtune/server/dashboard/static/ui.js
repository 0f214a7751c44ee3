/* costtune dashboard, part 1 of 3: elements, formatting, the token, requests, live polling, tables.
   Every value goes into the page as text (textContent), never as markup. */
(function () {
  "use strict";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const page = document.body.dataset.page;
  // -- elements, formatting ---------------------------------------------------------------------
  function el(tag, attrs) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else if (k === "cls") node.className = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (let i = 2; i < arguments.length; i++) {
      const c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) c.forEach((x) => x && node.appendChild(typeof x === "object" ? x : document.createTextNode(String(x))));
      else node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function put(parent) {  // append children, arrays flattened, null/false left out (Element.append would write "null")
    const kids = Array.prototype.slice.call(arguments, 1).flat(Infinity);
    kids.forEach((k) => { if (k !== null && k !== undefined && k !== false) parent.appendChild(typeof k === "object" ? k : document.createTextNode(String(k))); });
    return parent;
  }
  // costtune.money.format_usd, for what only the browser has (chart legends): three significant
  // digits of the amount, 2 to 6 decimals, rounded half up, trailing zeros past the cents dropped
  function usd(micros) {
    if (micros === null || micros === undefined || !isFinite(micros)) return "-";
    micros = Math.round(micros);
    if (micros === 0) return "$0";
    const a = Math.abs(micros);
    let places = Math.max(2, Math.min(6, 9 - String(a).length));
    const q = 10 ** (6 - places);
    let units = Math.floor((a + q / 2) / q);
    while (places > 2 && units % 10 === 0) { units /= 10; places -= 1; }
    const digits = String(units).padStart(places + 1, "0");
    const whole = digits.slice(0, digits.length - places), frac = digits.slice(digits.length - places);
    return (micros < 0 ? "-$" : "$") + whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + "." + frac;
  }
  const rate = (m) => (m === null || m === undefined ? "-" : usd(m) + "/h");
  // an amount or duration as the server wrote it by the CLI's rules (key + "_text"), else formatted here
  function T(o, k) {
    const t = o ? o[k + "_text"] : undefined;
    if (t !== undefined) return t;
    return k.endsWith("_per_hour") ? rate(o && o[k]) : usd(o && o[k]);
  }
  function num(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(6)));
  }
  function ago(iso) {
    if (!iso) return "–";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  const studyUrl = (name) => "/studies/" + encodeURIComponent(name);
  const apiStudy = (name) => "/api/v1/studies/" + encodeURIComponent(name);
  function params(p) { return Object.entries(p || {}).map(([k, v]) => k + "=" + num(v)).join(" "); }

  // -- token and requests ---------------------------------------------------------------------
  if (location.hash.startsWith("#token=")) {
    localStorage.setItem("costtune_token", decodeURIComponent(location.hash.slice(7)));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = () => localStorage.getItem("costtune_token") || "";
  $("#token").value = token();
  $("#tokenform").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem("costtune_token", $("#token").value.trim());
    flash("token saved in this browser");
    if (page === "login") login();
  });
  function login() {  // the token goes in a POST body, never a URL (URLs reach access logs)
    const form = el("form", { method: "post", action: "/login" });
    form.style.display = "none";
    for (const [name, value] of [["token", token()], ["next", location.pathname === "/login" ? "/" : location.pathname]]) {
      const input = el("input", { type: "hidden", name: name });
      input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit();
  }
  if (page === "login" && token()) {  // a saved token (or the #token= link): sign in once, unless it was refused
    const said = JSON.parse(($("#initial") || {}).textContent || "{}");
    if (!said.error) login();
  }
  async function call(path, opts) {
    opts = opts || {};
    const headers = Object.assign({}, opts.headers || {});
    if (token()) headers["Authorization"] = "Bearer " + token();
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method: opts.method || "GET", headers: headers, credentials: "same-origin",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    if (opts.raw && r.ok) return r;
    const data = await r.json().catch(() => ({ error: "HTTP " + r.status }));
    if (!r.ok) throw new Error(data.error || "HTTP " + r.status);
    return data;
  }
  function flash(message, bad) {
    let box = $("#flash");
    if (!box) { box = el("div", { id: "flash" }); document.body.appendChild(box); }
    box.textContent = message;
    box.className = bad ? "bad" : "ok";
    clearTimeout(flash.t);
    flash.t = setTimeout(() => { box.className = "gone"; }, 6000);
  }
  function poll(fn, ms) {
    let busy = false;
    const live = $("#live");
    const tick = async () => {
      if (busy || document.hidden) return;
      busy = true;
      try { await fn(); live.className = "live ok"; } catch (e) { live.className = "live err"; live.title = String(e.message || e); }
      busy = false;
    };
    setInterval(tick, ms);
  }

  // -- tables ---------------------------------------------------------------------------------
  function table(cols, rows, opts) {
    opts = opts || {};
    const head = el("tr", {}, cols.map((c) => {
      const th = el("th", { cls: (c.num ? "n " : "") + (c.sort ? "sortable" : ""), "data-sort": c.sort, text: c.label });
      if (c.sort && opts.onSort) {
        th.addEventListener("click", () => opts.onSort(c.sort));
        if (opts.sorted && opts.sorted.key === c.sort) th.classList.add(opts.sorted.desc ? "desc" : "asc");
      }
      return th;
    }));
    const body = el("tbody", {}, rows.map((r) => el("tr", { "data-row": r._id === undefined ? null : r._id },
      cols.map((c) => {
        const v = c.get(r);
        const td = el("td", { cls: (c.num ? "n " : "") + (c.cls ? c.cls(r) : "") });
        if (v instanceof Node) td.appendChild(v); else td.textContent = v === null || v === undefined ? "–" : String(v);
        return td;
      }))));
    return el("div", { cls: "scroll" }, el("table", { id: opts.id }, el("thead", {}, head), body));
  }
  function facts(items) {
    return el("div", { cls: "facts" }, items.map(([label, value, id]) =>
      el("div", {}, el("span", { text: label }), el("b", { id: id, text: value }))));
  }
  const bar = (frac) => el("span", { cls: "bar" + (frac > 0.8 ? " hot" : "") },
    el("i", { style: "width:" + Math.min(100, Math.max(0, (frac || 0) * 100)).toFixed(1) + "%" }));

  window.costtuneUI = { $, put, el, usd, rate, T, num, ago, studyUrl, apiStudy, params, token, call, flash, poll, table, facts, bar };
})();
