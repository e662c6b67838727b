// ninlab explore: the page. Every number comes from the server's JSON (ninlab.explore.explorer);
// this file only lays it out. Each tab holds its own picture id, so two tabs never mix.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { about: null, picture: null, mapClass: null, layer: null, classNth: {}, seed: 0 };

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body;
  try { body = await response.json(); } catch { body = { error: `the server answered ${response.status}` }; }
  if (!response.ok || body.error) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

// body[data-busy] counts the actions under way, each with all its requests (a test waits for "0")
let busy = 0;
async function busyWhile(promise) {
  document.body.dataset.busy = ++busy;
  try { return await promise; } finally { document.body.dataset.busy = --busy; }
}

function say(id, error) {
  const p = $(id);
  p.hidden = !error;
  p.textContent = error ? error.message || String(error) : "";
}

function upload(path, file) {
  const limit = state.about.upload_limit;
  if (file.size > limit) {
    const mb = (n) => (n / 2 ** 20).toFixed(1);
    return Promise.reject(new Error(`${file.name} is ${mb(file.size)} MB, over the ${mb(limit)} MB ` +
                                    "the page takes; make it smaller first."));
  }
  return api(path, { method: "POST", body: file,
                     headers: { "X-Filename": encodeURIComponent(file.name || "upload") } });
}

function postJSON(path, body) {
  return api(path, { method: "POST", body: JSON.stringify(body),
                     headers: { "Content-Type": "application/json" } });
}

// a box of input pixels [top, left, bottom, right) placed on a stage of h x w pixels
function place(el, [top, left, bottom, right], [h, w]) {
  el.style.top = `${(100 * top) / h}%`;
  el.style.left = `${(100 * left) / w}%`;
  el.style.height = `${(100 * (bottom - top)) / h}%`;
  el.style.width = `${(100 * (right - left)) / w}%`;
}

function colourBar(el, stops, lo, hi) {
  el.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  el.querySelector(".lo").textContent = lo.toPrecision(3);
  el.querySelector(".hi").textContent = hi.toPrecision(3);
}

const pct = (p) => `${(100 * p).toFixed(2)}%`;
const rows = (b) => `rows ${b[0]}–${b[2] - 1}, columns ${b[1]}–${b[3] - 1}`;

// --- Picture ---------------------------------------------------------------------------------
async function showPicture(promise) {
  try {
    const pic = await promise;
    state.picture = pic;
    say("#picture-message", null);
    for (const stage of ["#picture-stage", "#units-stage"]) $(`${stage} img.input`).src = pic.png;
    $("#picture-line").textContent = pic.line + (pic.truth ? ` (true: ${pic.truth})` : "");
    const list = $("#top5");
    list.replaceChildren(...pic.top.map((t) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.dataset.class = t.class;
      b.dataset.index = t.index;
      b.innerHTML = `<span class="name"></span> <span class="prob">${pct(t.prob)}</span>` +
                    `<span class="bar" style="width:${Math.round(80 * t.prob)}px"></span>`;
      b.querySelector(".name").textContent = t.class;
      b.onclick = () => busyWhile(showMap(t.index));
      li.append(b);
      return li;
    }));
    $("#unit-box").hidden = true;
    $("#cell-mark").hidden = true;
    $("#unit-info").textContent = "Click a unit of the maps to see what it looks at.";
    await Promise.all([showMap(pic.predicted), showLayer()]);
  } catch (e) {
    say("#picture-message", e);
  }
}

async function showMap(c) {
  const pic = state.picture;
  try {
    const m = await api(`/api/picture/${pic.id}/class/${c}`);
    if (state.picture !== pic) return;
    state.mapClass = c;
    const [h, w] = pic.size;
    const overlay = $("#picture-stage img.overlay");
    overlay.src = m.png;
    const e = m.extent;
    place(overlay, [e.top, e.left, e.top + e.height, e.left + e.width], [h, w]);
    overlay.hidden = !$("#show-map").checked;
    const box = $("#picture-stage .box");
    place(box, m.box, [h, w]);
    box.dataset.box = m.box.join(",");
    box.hidden = false;
    for (const b of document.querySelectorAll("#top5 button")) b.classList.toggle("on", +b.dataset.index === c);
    colourBar($("#map-bar"), state.about.colours.map, m.lo, m.hi);
    $("#map-lines").textContent = m.lines.join("\n");
    $("#map-info").hidden = false;
  } catch (e) {
    say("#picture-message", e);
  }
}

// --- Units -----------------------------------------------------------------------------------
async function showLayer() {
  const pic = state.picture;
  const name = $("#layer").value;
  if (!pic || !name) return;
  try {
    const L = await api(`/api/picture/${pic.id}/layer?name=${encodeURIComponent(name)}`);
    if (state.picture !== pic) return;
    state.layer = L;
    say("#units-message", null);
    $("#grid").src = L.png;
    const [c, h, w] = L.shape;
    const field = L.field ? `field ${L.field.size.join("x")}, jump ${L.field.jump.join("x")}, ` +
                            `start ${L.field.start.join(",")} px` : `no single window: ${L.why}`;
    const shown = L.order.length < c ? `${L.order.length} strongest of ${c}` : `all ${c}`;
    const tiles = L.class_maps ? ` Tiles: ${L.order.map((k) => state.about.classes[k]).join(", ")}.` : "";
    $("#layer-head").textContent = `${L.name} (${L.type}) ${c}x${h}x${w}: ${shown} channels, ` +
                                   `strongest first; ${field}.${tiles}`;
    colourBar($("#grid-bar"), state.about.colours.features, L.lo, L.hi);
    $("#cell-mark").hidden = true;
  } catch (e) {
    say("#units-message", e);
  }
}

// the unit under a click on the grid: tile (row, col) of (h+1) x (w+1) pixels, gaps ignored
function unitAt(event) {
  const L = state.layer;
  const img = $("#grid");
  const [th, tw] = L.tile;
  const gx = (event.offsetX / img.clientWidth) * img.naturalWidth;
  const gy = (event.offsetY / img.clientHeight) * img.naturalHeight;
  const col = Math.floor(gx / (tw + 1)), row = Math.floor(gy / (th + 1));
  const j = Math.floor(gx - col * (tw + 1)), i = Math.floor(gy - row * (th + 1));
  const t = row * L.cols + col;
  if (i >= th || j >= tw || col >= L.cols || t >= L.order.length) return null;
  return { channel: L.order[t], i, j, row, col };
}

async function clickUnit(event) {
  const L = state.layer, pic = state.picture;
  const at = L && unitAt(event);
  if (!at) return;
  const img = $("#grid");
  const sx = img.clientWidth / img.naturalWidth, sy = img.clientHeight / img.naturalHeight;
  const [th, tw] = L.tile;
  const mark = $("#cell-mark");
  Object.assign(mark.style, { left: `${(at.col * (tw + 1) + at.j) * sx}px`, top: `${(at.row * (th + 1) + at.i) * sy}px`,
                              width: `${sx}px`, height: `${sy}px` });
  mark.hidden = false;
  try {
    const q = new URLSearchParams({ layer: L.name, channel: at.channel, i: at.i, j: at.j });
    if (state.mapClass !== null) q.set("class", state.mapClass);
    const u = await api(`/api/picture/${pic.id}/unit?${q}`);
    const box = $("#unit-box");
    const info = $("#unit-info");
    info.dataset.unit = `${u.unit[0]},${u.unit[1]}`;
    info.dataset.channel = u.channel;
    const what = state.about.classes.length === L.channels && L.class_maps
      ? `${state.about.classes[u.channel]} (channel ${u.channel})` : `channel ${u.channel}`;
    let text = `${u.layer}, ${what}, unit (${u.unit[0]}, ${u.unit[1]}): activation ${u.activation.toPrecision(4)}. `;
    if (u.box) {
      place(box, u.box, pic.size);
      box.dataset.box = u.box.join(",");
      box.hidden = false;
      const clipped = u.box.join() !== u.window.join() ? " (clipped to the image)" : "";
      text += `It sees input ${rows(u.box)}${clipped}.`;
    } else {
      box.hidden = true;
      box.dataset.box = "";
      text += `It has no single window: ${u.why}.`;
    }
    if (u.share) {
      const s = u.share;
      text += s.why ? ` ${s.why}.` : ` Its cell of ${s.class}'s map, ${s.cell.toPrecision(4)}, over ${s.cells} cells ` +
        `gives ${s.part.toPrecision(4)} of the logit ${s.logit.toPrecision(4)}` +
        (s.share === null ? "." : ` (${(100 * s.share).toFixed(1)}%).`);
    }
    info.textContent = text;
    say("#units-message", null);
  } catch (e) {
    say("#units-message", e);
  }
}

// --- Scene -----------------------------------------------------------------------------------
async function showScene(promise) {
  try {
    const s = await promise;
    say("#scene-message", null);
    const stage = $("#scene-stage");
    stage.querySelectorAll(".det, .det-label").forEach((el) => el.remove());
    stage.querySelector("img.input").src = s.png;
    $("#scene-line").textContent = `${s.line}: ${s.windows} windows, ${s.detections.length} ` +
      `detections in ${(1000 * s.seconds).toFixed(0)} ms`;
    const body = s.detections.map((d) => {
      for (const kind of ["unit", "cam", "window"]) {
        const el = document.createElement("div");
        el.className = `det ${kind}`;
        place(el, d[kind], s.size);
        stage.append(el);
      }
      const label = document.createElement("span");
      label.className = "det-label";
      label.textContent = `${d.class} ${(100 * d.prob).toFixed(0)}%`;
      label.style.left = `${(100 * d.window[1]) / s.size[1]}%`;
      label.style.top = `${(100 * d.window[0]) / s.size[0]}%`;
      stage.append(label);
      return [d.class, pct(d.prob), rows(d.window), rows(d.cam), rows(d.unit)];
    });
    fillTable($("#detections"), ["class", "prob", "window", "CAM box", "unit"], body);
  } catch (e) {
    say("#scene-message", e);
  }
}

// --- Model -----------------------------------------------------------------------------------
function fillTable(table, head, body, numeric = new Set()) {
  const tr = (cells, tag) => {
    const row = document.createElement("tr");
    cells.forEach((c, k) => {
      const cell = document.createElement(tag);
      cell.textContent = c;
      if (numeric.has(k) && tag === "td") cell.className = "num";
      row.append(cell);
    });
    return row;
  };
  table.replaceChildren(...(head ? [tr(head, "th")] : []), ...body.map((r) => tr(r, "td")));
}

async function showModel() {
  const m = await api("/api/model");
  fillTable($("#facts"), null, Object.entries(m.facts));
  const s = m.summary;
  const f = (x) => (x ? `${x.size.join("x")} / ${x.jump.join("x")} / ${x.start.join(",")}` : "-");
  fillTable($("#summary"), ["layer", "type", "output", "params", "MACs", "field / jump / start", "note"],
            s.layers.map((r) => [r.name, r.type, r.output_shape.join("x"), r.params.toLocaleString("en"),
                                  r.macs.toLocaleString("en"), f(r.field), r.note]), new Set([3, 4]));
  // a row of a layer with a map opens it in Units
  const mapped = new Set(state.about.layers.map((l) => l.name));
  for (const row of $("#summary").querySelectorAll("tr")) {
    const name = row.firstChild.textContent;
    if (!mapped.has(name) || row.firstChild.tagName !== "TD") continue;
    row.classList.add("link");
    row.title = "show its maps in Units";
    row.onclick = () => { $("#layer").value = name; showView("units"); busyWhile(showLayer()); };
  }
  const t = s.totals;
  $("#totals").textContent = `${s.model}, input ${s.input_size.join("x")}: ${t.params.toLocaleString("en")} ` +
    `parameters, ${t.macs.toLocaleString("en")} MACs per image. ${s.convention}.`;
}

// --- wiring ----------------------------------------------------------------------------------
function dropZone(zone, input, handle) {
  input.onchange = () => { if (input.files[0]) handle(input.files[0]); input.value = ""; };
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files[0]) handle(e.dataTransfer.files[0]);
  });
}

function showView(name) {
  for (const b of document.querySelectorAll("nav button")) b.setAttribute("aria-selected", b.dataset.view === name);
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  if (name === "model" && !$("#facts").children.length) busyWhile(showModel().catch((e) => say("#picture-message", e)));
}

async function start() {
  const a = (state.about = await api("/api/about"));
  $("#model-name").textContent = `· ${a.model}`;
  $("#run-path").textContent = `${a.run} · input ${a.input.join("x")} · ${a.method} of ${a.map_layer}`;
  $("#tta").textContent = a.probabilities;
  $("#test-class").replaceChildren(...a.classes.map((c) => new Option(c, c)));
  $("#layer").replaceChildren(...a.layers.map((l) => new Option(`${l.name} (${l.type}, ${l.shape.join("x")})`, l.name)));
  $("#test-index").max = a.test_images - 1;
  for (const el of document.querySelectorAll(".test-only")) el.hidden = !a.test_images;
  for (const b of document.querySelectorAll("nav button")) b.onclick = () => showView(b.dataset.view);
  dropZone($("#picture-drop"), $("#picture-file"), (f) => busyWhile(showPicture(upload("/api/picture", f))));
  dropZone($("#scene-drop"), $("#scene-file"), (f) => busyWhile(showScene(upload("/api/scene", f))));
  $("#by-index").onsubmit = (e) => {
    e.preventDefault();
    busyWhile(showPicture(postJSON("/api/test-picture", { index: +$("#test-index").value })));
  };
  $("#by-class").onsubmit = (e) => {
    e.preventDefault();
    const c = $("#test-class").value;
    const nth = (state.classNth[c] = (state.classNth[c] ?? -1) + 1);
    busyWhile(showPicture(postJSON("/api/test-picture", { class: c, nth })));
  };
  $("#sample-scene").onclick = () => busyWhile(showScene(postJSON("/api/sample-scene", { seed: state.seed++ })));
  $("#layer").onchange = () => busyWhile(showLayer());
  $("#grid").onclick = (e) => busyWhile(clickUnit(e));
  $("#grid").onmousemove = (e) => {
    const at = state.layer && unitAt(e);
    const name = at && state.layer.class_maps ? ` (${state.about.classes[at.channel]})` : "";
    e.target.title = at ? `channel ${at.channel}${name}, unit (${at.i}, ${at.j})` : "";
  };
  $("#show-map").onchange = (e) => { $("#picture-stage img.overlay").hidden = !e.target.checked; };
  if (a.test_images) await busyWhile(showPicture(postJSON("/api/test-picture", { index: 0 })));
  document.body.dataset.busy = busy;
  document.body.dataset.ready = "yes";
}

start().catch((e) => say("#picture-message", e));
