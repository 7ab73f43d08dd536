// kinect-occlusion live view: one WebSocket per page; binary messages are pictures
// ([u32 header length][JSON header][JPEG]), text messages are status summaries.
"use strict";
(() => {
  const kind = document.body.dataset.kind;
  const camera = document.body.dataset.camera;
  const main = document.getElementById("main");
  const conn = document.getElementById("conn");
  const pauseButton = document.getElementById("pause");
  const views = new Map();
  let paused = false;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) node.append(child);
    return node;
  }

  // One view per camera: a canvas with a badge, and a status area
  function view(cam) {
    if (views.has(cam)) return views.get(cam);
    const canvas = el("canvas", { width: 640, height: 360 });
    canvas.dataset.frameId = "-1";
    canvas.dataset.received = "0";
    const badge = el("span", { className: "badge nomask", textContent: "WAITING FOR FRAMES" });
    const pic = el("div", { className: "pic" }, canvas, badge);
    const line = el("div", { className: "line", textContent: "no status yet" });
    const table = el("table");
    let node;
    if (kind === "ward") {
      const link = el("a", { href: "/bed/" + encodeURIComponent(cam), textContent: cam });
      node = el("section", { className: "tile" }, el("h2", {}, link), pic, line);
    } else {
      node = el("section", { className: "tile" }, pic, el("div", {}, line, table));
    }
    node.dataset.camera = cam;
    const after = [...main.children].find((n) => n.dataset.camera > cam);
    main.insertBefore(node, after || null);  // tiles in camera order
    const v = { canvas, badge, line, table, node, arrived: 0, drawn: 0, received: 0 };
    views.set(cam, v);
    return v;
  }

  async function onPicture(buffer) {
    const n = new DataView(buffer).getUint32(0);
    const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
    const v = view(meta.camera);
    v.received += 1;
    v.canvas.dataset.received = String(v.received);
    if (paused) return;
    const order = ++v.arrived;
    const blob = new Blob([new Uint8Array(buffer, 4 + n)], { type: "image/jpeg" });
    const bitmap = await createImageBitmap(blob);
    if (paused || order < v.drawn) { bitmap.close(); return; }  // never draw an older picture
    v.drawn = order;
    if (v.canvas.width !== bitmap.width || v.canvas.height !== bitmap.height) {
      v.canvas.width = bitmap.width;
      v.canvas.height = bitmap.height;
    }
    v.canvas.getContext("2d").drawImage(bitmap, 0, 0);
    bitmap.close();
    v.canvas.dataset.frameId = String(meta.frame_id);
    v.canvas.dataset.fused = String(meta.fused);
    if (!meta.has_mask) { v.badge.textContent = "NO MASK"; v.badge.className = "badge nomask"; }
    else if (!meta.fused) { v.badge.textContent = "COARSE ONLY"; v.badge.className = "badge coarse"; }
    else { v.badge.textContent = ""; v.badge.className = "badge"; }
  }

  const fmt = (x, unit) => (x === null || x === undefined ? "–" : `${Math.round(x * 10) / 10}${unit}`);

  function row(cells, classes) {
    const tr = el("tr");
    cells.forEach((c, i) => tr.append(el("td", { textContent: c, className: (classes || [])[i] || "" })));
    return tr;
  }

  function onStats(msg) {
    for (const [cam, s] of Object.entries(msg.cameras || {})) {
      const v = view(cam);
      const rates = s.rates_hz || {};
      v.line.textContent = `${s.pipeline} · fused ${fmt(rates.fuser, " Hz")} · capture→fused p50 ` +
        `${fmt(s.latency_ms.p50, " ms")} p95 ${fmt(s.latency_ms.p95, " ms")} · partition age ` +
        `${fmt(s.partition_age_ms, " ms")} · fused share ${fmt(s.fused_share === null ? null : s.fused_share * 100, "%")}`;
      if (kind === "ward") continue;
      const head = el("tr", {}, ...["worker", "state", "rate", "restarts", "errors", "alive"].map(
        (h) => el("th", { textContent: h })));
      const rows = Object.entries(s.workers || {}).map(([name, w]) => {
        const bad = w.failed || w.alive === false || ["silent", "error", "degraded"].includes(w.state);
        return row([name, w.state, fmt(w.rate_hz, " Hz"), fmt(w.restarts, ""), fmt(w.errors, ""),
          w.alive === null ? "–" : String(w.alive)], ["", bad ? "bad" : "ok"]);
      });
      v.table.replaceChildren(head, ...rows);
    }
  }

  function setConn(text, state) {
    conn.textContent = text;
    conn.className = "conn " + state;
    document.body.dataset.ws = state;
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws?camera=${encodeURIComponent(camera)}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => setConn("live", "live");
    ws.onclose = () => { setConn("disconnected — retrying", "down"); setTimeout(connect, 2000); };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") onStats(JSON.parse(ev.data));
      else onPicture(ev.data).catch((err) => console.warn("picture not drawn", err));
    };
  }

  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    document.body.dataset.paused = String(paused);
  });
  document.getElementById("title").textContent = kind === "ward" ? "kinect-occlusion · ward" : `kinect-occlusion · ${camera}`;
  main.className = kind;
  if (kind === "bed") view(camera);
  connect();
})();
