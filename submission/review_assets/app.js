// Hakuna review page: everything comes from data.js (window.REVIEW); no server, no network.
(function () {
  "use strict";
  const data = window.REVIEW || { species: [], crops: [], sequences: {}, failures: [] };
  const PAGE = 200; // crops rendered per species before "show more"
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const shown = {}; // species -> how many tiles are rendered

  function filtered() {
    const sp = $("species").value;
    const lo = parseFloat($("min-conf").value) || 0;
    const hiRaw = parseFloat($("max-conf").value);
    const hi = isNaN(hiRaw) ? 1 : hiRaw;
    return data.crops.filter((c) => (!sp || c.species === sp) && c.prob >= lo && c.prob <= hi);
  }

  function tile(c) {
    const t = el("div", { class: "crop", "data-seq": c.seq, "data-species": c.species, title: c.file });
    t.appendChild(el("img", { src: c.thumb, loading: "lazy", alt: c.species }));
    t.appendChild(el("span", {}, `${c.species} ${c.prob.toFixed(2)}`));
    t.appendChild(el("span", {}, `detector ${c.conf.toFixed(2)}`));
    t.addEventListener("click", () => openSequence(c.seq));
    return t;
  }

  function render() {
    const grid = $("grid");
    grid.textContent = "";
    const crops = filtered();
    const groups = {};
    crops.forEach((c) => (groups[c.species] = groups[c.species] || []).push(c));
    data.species.filter((s) => groups[s]).forEach((s) => {
      const g = el("div", { class: "group", "data-species": s });
      g.appendChild(el("h2", {}, `${s} (${groups[s].length})`));
      const tiles = el("div", { class: "tiles" });
      const n = shown[s] || PAGE;
      groups[s].slice(0, n).forEach((c) => tiles.appendChild(tile(c)));
      g.appendChild(tiles);
      if (groups[s].length > n) {
        const more = el("button", { class: "more", type: "button" }, `show ${groups[s].length - n} more`);
        more.addEventListener("click", () => { shown[s] = n + PAGE; render(); });
        g.appendChild(more);
      }
      grid.appendChild(g);
    });
    $("count").textContent = `${crops.length} of ${data.crops.length} crops`;
  }

  function frameView(f) {
    const box = el("div", { class: "frame" });
    box.appendChild(el("div", {}, f.file));
    if (f.failure || !f.thumb) {
      box.appendChild(el("div", { class: "failed" }, `failed: ${f.failure}`));
      return box;
    }
    const pic = el("div", { class: "pic" });
    pic.appendChild(el("img", { src: f.thumb, alt: f.file }));
    const list = el("ul");
    f.boxes.forEach((b, i) => {
      const [x, y, w, h] = b.bbox;
      const r = el("div", { class: b.top3.length ? "box" : "box low",
        style: `left:${x * 100}%;top:${y * 100}%;width:${w * 100}%;height:${h * 100}%` });
      r.appendChild(el("b", {}, `${i + 1}: ${b.category} ${b.conf.toFixed(2)}`));
      pic.appendChild(r);
      const top = b.top3.map(([s, p]) => `${s} ${p.toFixed(2)}`).join(", ");
      list.appendChild(el("li", {}, `box ${i + 1}: ${b.category} ${b.conf.toFixed(2)}${top ? " — " + top : ""}`));
    });
    if (f.hidden) list.appendChild(el("li", {}, `${f.hidden} low-confidence box(es) not drawn`));
    box.appendChild(pic);
    box.appendChild(list);
    return box;
  }

  function openSequence(seq) {
    const s = data.sequences[seq];
    if (!s) return;
    $("seq-title").textContent = seq;
    const fused = $("fused");
    fused.textContent = s.fused.length
      ? "Sequence probabilities: " + s.fused.map(([k, p]) => `${k} ${p.toFixed(3)}`).join(", ")
      : "";
    const frames = $("frames");
    frames.textContent = "";
    s.frames.forEach((f) => frames.appendChild(frameView(f)));
    $("sequence").hidden = false;
  }

  function init() {
    $("title").textContent = `${data.title || "Hakuna review"} — detector ${data.detector || "?"}`;
    data.species.forEach((s) => $("species").appendChild(el("option", { value: s }, s)));
    ["species", "min-conf", "max-conf"].forEach((id) => $(id).addEventListener("input", render));
    $("species").addEventListener("change", render);
    $("close").addEventListener("click", () => { $("sequence").hidden = true; });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("sequence").hidden = true; });
    const rows = $("failure-rows");
    data.failures.forEach((f) => {
      const tr = el("tr");
      [f.file, f.seq, f.reason].forEach((v) => tr.appendChild(el("td", {}, v)));
      rows.appendChild(tr);
    });
    if (!data.failures.length) rows.appendChild(el("tr", {}, "none"));
    render();
  }

  init();
})();
