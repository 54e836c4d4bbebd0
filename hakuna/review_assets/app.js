// Hakuna review page: everything comes from data.js (window.REVIEW); no server, no network.
// Reviewing: arrows move between crops, c confirms, x rejects, r relabels, u undoes, Enter opens the sequence;
// the "download corrections.csv" button saves the review (kept meanwhile in this browser's local storage).
(function () {
  "use strict";
  const data = window.REVIEW || { species: [], labels: [], crops: [], sequences: {}, failures: [], columns: [] };
  const PAGE = 200; // crops rendered per species before "show more"
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const shown = {}; // species -> how many tiles are rendered
  const storeKey = "hakuna-review:" + (data.title || "") + ":" + (data.detector || "") + ":" + data.crops.length;
  let review = {}; // crop id -> {status, label}
  try { review = JSON.parse(localStorage.getItem(storeKey) || "{}"); } catch (e) { review = {}; }
  const byId = {};
  data.crops.forEach((c) => (byId[c.id] = c));
  let relabelling = null; // crop id whose new label is being chosen
  let openSeq = null; // sequence shown in the sequence view
  let seqShown = PAGE; // sequences listed before "show more"

  function save() {
    try { localStorage.setItem(storeKey, JSON.stringify(review)); } catch (e) { /* private mode: memory only */ }
    const done = Object.values(review).filter((r) => r.status !== "unreviewed").length;
    $("reviewed").textContent = `${done} reviewed`;
  }

  function filtered() {
    const sp = $("species").value;
    const lo = parseFloat($("min-conf").value) || 0;
    const hiRaw = parseFloat($("max-conf").value);
    const hi = isNaN(hiRaw) ? 1 : hiRaw;
    return data.crops.filter((c) => (!sp || c.species === sp) && c.prob >= lo && c.prob <= hi);
  }

  function stateOf(c) { return review[c.id] || { status: "unreviewed", label: c.species }; }

  function paint(t, c) {
    const s = stateOf(c);
    t.setAttribute("data-status", s.status);
    t.setAttribute("data-label", s.label);
    t.querySelector(".state").textContent = s.status === "relabelled" ? `→ ${s.label}` : s.status;
  }

  function setState(id, status, label) {
    const c = byId[id];
    if (status === "unreviewed") delete review[id];
    else review[id] = { status: status, label: label || c.species };
    document.querySelectorAll(`.crop[data-id="${CSS.escape(id)}"]`).forEach((t) => paint(t, c));
    save();
  }

  function tile(c) {
    const t = el("div", { class: "crop", tabindex: "0", "data-id": c.id, "data-seq": c.seq, "data-species": c.species,
      title: c.file });
    t.appendChild(el("img", { src: c.thumb, loading: "lazy", alt: c.species }));
    t.appendChild(el("span", { title: "classifier" }, `${c.species} ${c.prob.toFixed(2)}`));
    t.appendChild(el("span", { title: "detector confidence" }, `detector ${c.conf.toFixed(2)}`));
    t.appendChild(el("span", { class: "file" }, c.file.split("/").pop()));
    t.appendChild(el("span", { class: "date" }, c.date || "no date"));
    t.appendChild(el("span", { class: "state" }, ""));
    paint(t, c);
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
    box.appendChild(el("div", { class: "caption" }, `${f.file}${f.date ? " · " + f.date : ""}`));
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
      const name = b.top3.length ? b.top3[0][0] : b.category;
      r.appendChild(el("b", {}, `${i + 1}: ${name} ${b.conf.toFixed(2)}`));
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
    openSeq = seq;
    paintSeqReview();
    const fused = $("fused");
    fused.textContent = s.fused.length
      ? "Sequence probabilities: " + s.fused.map(([k, p]) => `${k} ${p.toFixed(3)}`).join(", ")
      : "";
    const frames = $("frames");
    frames.textContent = "";
    s.frames.forEach((f) => frames.appendChild(frameView(f)));
    $("sequence").hidden = false;
  }

  function seqState(seq) {
    const s = data.sequences[seq];
    const called = s.unreadable ? "" : s.empty ? "empty" : (s.called.join(";") || "empty");
    return review["seq:" + seq] || { status: "unreviewed", label: called, predicted: called };
  }

  function paintSeqReview() {
    const st = seqState(openSeq);
    const s = data.sequences[openSeq];
    $("seq-called").textContent = (s.unreadable ? `unreadable: none of its ${s.n} frame(s) could be read; ` :
      `called: ${s.empty ? "empty" : s.called.join(", ") || "?"} (${s.source}); ` +
      `detector best ${s.best.toFixed(2)}; ${s.n} frame(s)${s.failed ? ` (${s.failed} unreadable)` : ""}`) +
      `${s.date ? "; " + s.date : ""} — review: ` +
      (st.status === "relabelled" ? `→ ${st.label}` : st.status);
    $("seq-label").value = st.label.split(";")[0];
  }

  function setSeq(status, label) {
    const st = seqState(openSeq);
    if (status === "unreviewed") delete review["seq:" + openSeq];
    else review["seq:" + openSeq] = { status: status, label: label || st.predicted, predicted: st.predicted };
    paintSeqReview();
    renderSequences();
    save();
  }

  function seqRows() {
    const which = $("seq-filter").value;
    let seqs = Object.keys(data.sequences).map((k) => [k, data.sequences[k]]);
    if (which === "empty") seqs = seqs.filter(([, s]) => s.empty).sort((a, b) => b[1].best - a[1].best);
    else if (which === "animal") seqs = seqs.filter(([, s]) => !s.empty && !s.unreadable);
    else if (which === "unreadable") seqs = seqs.filter(([, s]) => s.unreadable);
    return seqs;
  }

  function renderSequences() {
    const list = $("seq-list");
    list.textContent = "";
    const seqs = seqRows();
    seqs.slice(0, seqShown).forEach(([k, s]) => {
      const st = seqState(k);
      const row = el("li", { class: "seq", tabindex: "0", "data-seq": k, "data-empty": String(s.empty),
        "data-best": String(s.best) });
      row.appendChild(el("b", {}, k));
      row.appendChild(el("span", {}, ` ${s.date || "no date"} · ${s.n} frame(s) · ` + (s.unreadable
        ? "unreadable (no frame could be read)"
        : `${s.empty ? "called empty" : s.called.join(", ")} · detector best ${s.best.toFixed(2)}` +
          (s.failed ? ` · ${s.failed} frame(s) unreadable` : "")) +
        (st.status !== "unreviewed" ? ` · ${st.status === "relabelled" ? "→ " + st.label : st.status}` : "")));
      row.addEventListener("click", () => openSequence(k));
      row.addEventListener("keydown", (e) => { if (e.key === "Enter") openSequence(k); });
      list.appendChild(row);
    });
    if (seqs.length > seqShown) {
      const more = el("li", {});
      const b = el("button", { class: "more", type: "button" }, `show ${seqs.length - seqShown} more`);
      b.addEventListener("click", () => { seqShown += PAGE; renderSequences(); });
      more.appendChild(b);
      list.appendChild(more);
    }
    $("seq-count").textContent = `${seqs.length} of ${Object.keys(data.sequences).length} sequences`;
  }

  function startRelabel(id) {
    relabelling = id;
    $("relabel-crop").textContent = `${byId[id].file} (box ${byId[id].det + 1})`;
    $("relabel-select").value = stateOf(byId[id]).label;
    $("relabel").hidden = false;
    $("relabel-select").focus();
  }

  function finishRelabel(apply) {
    const id = relabelling;
    $("relabel").hidden = true;
    relabelling = null;
    if (apply && id) setState(id, "relabelled", $("relabel-select").value);
    const t = id && document.querySelector(`.crop[data-id="${CSS.escape(id)}"]`);
    if (t) t.focus();
  }

  function move(t, step) {
    const tiles = Array.from(document.querySelectorAll(".crop"));
    const next = tiles[tiles.indexOf(t) + step];
    if (next) next.focus();
  }

  function onKey(e) {
    if (e.key === "Escape") { $("sequence").hidden = true; finishRelabel(false); return; }
    if (relabelling) { if (e.key === "Enter") { e.preventDefault(); finishRelabel(true); } return; }
    const t = document.activeElement;
    if (!t || !t.classList || !t.classList.contains("crop")) {
      // no crop selected yet: a review key selects the first one (the next press acts on it)
      const first = document.querySelector(".crop");
      const typing = t && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(t.tagName);
      if (first && !typing && /^(c|x|u|r|Arrow(Right|Down|Left|Up))$/.test(e.key)) { e.preventDefault(); first.focus(); }
      return;
    }
    const id = t.getAttribute("data-id");
    const keys = { c: () => setState(id, "confirmed"), x: () => setState(id, "rejected"),
      u: () => setState(id, "unreviewed"), r: () => startRelabel(id), Enter: () => openSequence(byId[id].seq),
      ArrowRight: () => move(t, 1), ArrowDown: () => move(t, 1), ArrowLeft: () => move(t, -1),
      ArrowUp: () => move(t, -1) };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  }

  function csvCell(v) {
    let s = String(v === undefined || v === null ? "" : v);
    if (/^[=+\-@\t\r]/.test(s)) s = "'" + s; // a spreadsheet would run it as a formula: keep it text
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }

  function correctionsCsv() {
    const rows = [data.columns.join(",")];
    data.crops.forEach((c) => {
      const s = stateOf(c);
      const values = { crop_id: c.id, file: c.file, detection_index: c.det, bbox: c.bbox.join(" "),
        predicted: c.species, status: s.status, label: s.status === "rejected" ? "" : s.label, seq_id: c.seq };
      rows.push(data.columns.map((k) => csvCell(values[k])).join(","));
    });
    Object.keys(data.sequences).forEach((k) => { // sequence-level reviews: species present, or empty
      const st = review["seq:" + k];
      if (!st) return;
      const values = { crop_id: "seq:" + k, file: data.sequences[k].frames.map((f) => f.file).join(";"),
        detection_index: "", bbox: "", predicted: st.predicted, status: st.status, label: st.label, seq_id: k };
      rows.push(data.columns.map((c) => csvCell(values[c])).join(","));
    });
    return rows.join("\n") + "\n";
  }

  function download() {
    const blob = new Blob([correctionsCsv()], { type: "text/csv" });
    const a = el("a", { href: URL.createObjectURL(blob), download: "corrections.csv" });
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  }

  function init() {
    $("title").textContent = `${data.title || "Hakuna review"} — detector ${data.detector || "?"}`;
    data.species.forEach((s) => $("species").appendChild(el("option", { value: s }, s)));
    (data.labels || data.species).forEach((s) => $("relabel-select").appendChild(el("option", { value: s }, s)));
    ["species", "min-conf", "max-conf"].forEach((id) => $(id).addEventListener("input", render));
    $("species").addEventListener("change", render);
    $("close").addEventListener("click", () => { $("sequence").hidden = true; });
    (data.labels || data.species).filter((s) => s !== "empty").concat(["empty"]).forEach((s) =>
      $("seq-label").appendChild(el("option", { value: s }, s)));
    $("seq-confirm").addEventListener("click", () => setSeq("confirmed"));
    $("seq-relabel").addEventListener("click", () => setSeq("relabelled", $("seq-label").value));
    $("seq-undo").addEventListener("click", () => setSeq("unreviewed"));
    $("seq-filter").addEventListener("change", () => { seqShown = PAGE; renderSequences(); });
    $("relabel-ok").addEventListener("click", () => finishRelabel(true));
    $("relabel-cancel").addEventListener("click", () => finishRelabel(false));
    $("download").addEventListener("click", download);
    document.addEventListener("keydown", onKey);
    const rows = $("failure-rows");
    data.failures.forEach((f) => {
      const tr = el("tr");
      [f.file, f.seq, f.reason].forEach((v) => tr.appendChild(el("td", {}, v)));
      rows.appendChild(tr);
    });
    if (!data.failures.length) rows.appendChild(el("tr", {}, "none"));
    render();
    renderSequences();
    save();
  }

  init();
})();
