// cnnkit prediction page: no build step, no dependencies. Text from the server is only
// ever inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let objectUrls = [];

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function loadHealth() {
  try {
    const r = await fetch("/health");
    const h = await r.json();
    const size = h.image_size.join("×");
    $("model-info").textContent =
      `${h.model} · ${h.class_names.length} classes · ${size} ${h.color_mode} · backend ${h.backend}`;
  } catch (e) {
    $("model-info").textContent = "server not reachable";
  }
}

function showBars(entry) {
  const list = $("bars");
  list.replaceChildren();
  for (const t of entry.top_k) {
    const li = document.createElement("li");
    li.className = "bar-row";
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = t.label;
    name.title = t.label;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.display = "block";
    fill.style.width = `${(100 * t.probability).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = `${(100 * t.probability).toFixed(1)}%`;
    li.append(name, track, value);
    list.append(li);
  }
  $("label").textContent = entry.label;
  $("probability").textContent = `${(100 * entry.probability).toFixed(1)}% probability`;
}

async function errorText(r) {
  try {
    return (await r.json()).error || `HTTP ${r.status}`;
  } catch (e) {
    return `HTTP ${r.status}`;
  }
}

async function explain(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  const r = await fetch("/explain", { method: "POST", body: form });
  if (!r.ok) {
    $("heatmap-caption").textContent = `no heatmap: ${await errorText(r)}`;
    $("heatmap").removeAttribute("src");
    return;
  }
  const url = URL.createObjectURL(await r.blob());
  objectUrls.push(url);
  $("heatmap").src = url;
  // A map that locates nothing comes back as the plain image with a note saying so.
  const note = r.headers.get("x-cnnkit-note");
  $("heatmap-caption").textContent = note
    ? `Grad-CAM: ${decodeURIComponent(note)}`
    : "Grad-CAM: where the model looked";
  document.querySelector("#result .legend").hidden = Boolean(note); // no colours to explain
}

async function handle(file) {
  if (!file) return;
  objectUrls.forEach((u) => URL.revokeObjectURL(u));
  objectUrls = [];
  setStatus(`predicting ${file.name}…`);
  const form = new FormData();
  form.append("files", file, file.name);
  try {
    const r = await fetch("/predict", { method: "POST", body: form });
    if (!r.ok) {
      $("result").hidden = true;
      setStatus(await errorText(r), true);
      return;
    }
    const [entry] = await r.json();
    const preview = URL.createObjectURL(file);
    objectUrls.push(preview);
    $("preview").src = preview;
    $("file-name").textContent = file.name;
    showBars(entry);
    $("result").hidden = false;
    setStatus("");
    await explain(file);
  } catch (e) {
    setStatus(`request failed: ${e.message}`, true);
  }
}

function pixelateIfSmall(img) {
  img.classList.toggle("pixelated", img.naturalWidth > 0 && img.naturalWidth <= 64);
}

function setup() {
  const drop = $("drop");
  $("file-input").addEventListener("change", (e) => handle(e.target.files[0]));
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => handle(e.dataTransfer.files[0]));
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file-input").click(); }
  });
  $("preview").addEventListener("load", (e) => pixelateIfSmall(e.target));
  loadHealth();
}

document.addEventListener("DOMContentLoaded", setup);
