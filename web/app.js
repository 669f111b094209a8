// The page's only script: ask /v1/predict and draw the answers; fill the model card from /v1/model.
// Everything a user typed is put on the page as text (textContent), never as HTML.
"use strict";

const TOPK = 5;
const MAX_ON_PAGE = 50;  // names per request from the page

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

const percent = (p) => (p > 0 && p < 0.001 ? "<0.1%" : (100 * p).toFixed(p >= 0.995 ? 0 : 1) + "%");

function splitNames(text) {
  return text.split(/[\n,;]+/).map((s) => s.trim()).filter(Boolean);
}

function bars(top) {
  const list = el("ol", { className: "bars" });
  for (const { country, probability } of top) {
    const fill = el("div", { className: "fill" });
    fill.style.width = (100 * probability).toFixed(1) + "%";
    const track = el("div", { className: "track" }, fill);
    track.setAttribute("aria-hidden", "true");
    list.append(el("li", {}, el("span", { className: "country", textContent: country }), track,
                   el("span", { className: "value", textContent: percent(probability) })));
  }
  return list;
}

function strip(explanation, country) {
  // colour by each letter's effect on the answer's probability: blue for, orange against
  const biggest = Math.max(0.05, ...explanation.map((e) => Math.abs(e.effect)));
  const row = el("div", { className: "strip" });
  row.setAttribute("role", "list");
  for (const { letter, effect } of explanation) {
    const alpha = Math.min(1, Math.abs(effect) / biggest) * 0.85;
    const rgb = getComputedStyle(document.documentElement).getPropertyValue(effect >= 0 ? "--for" : "--against");
    const sign = effect >= 0 ? "+" : "−";
    const label = `${letter === " " ? "space" : letter}: ${sign}${Math.abs(effect).toFixed(2)} for ${country}`;
    const cell = el("span", { textContent: letter === " " ? "␣" : letter, title: label });
    cell.setAttribute("role", "listitem");
    cell.setAttribute("aria-label", label);
    cell.style.background = `rgba(${rgb.trim()}, ${alpha.toFixed(2)})`;
    if (alpha > 0.55) cell.style.color = "#fff";
    row.append(cell);
  }
  return row;
}

function renderResult(r) {
  if (r.error) {
    return el("article", { className: "result failed" },
              el("h3", {}, el("span", { textContent: r.name || "(empty)" })),
              el("p", { className: "note", textContent: r.error }));
  }
  const best = r.top[0];
  const answer = r.abstained
    ? el("span", { className: "answer unknown", textContent: "unknown" })
    : el("span", { className: "answer", textContent: `${r.country} ${percent(best.probability)}` });
  const article = el("article", { className: "result" }, el("h3", {}, el("span", { textContent: r.name }), answer));
  const notes = [];
  if (r.abstained) notes.push(`Not sure enough to answer; the best guess is ${best.country} (${percent(best.probability)}).`);
  if (r.normalised !== r.name) notes.push(`Read as “${r.normalised}”.`);
  if (r.seen_in_training.length) notes.push(`In the training data under ${r.seen_in_training.join(" and ")}.`);
  if (notes.length) article.append(el("p", { className: "note", textContent: notes.join(" ") }));
  article.append(bars(r.top));
  if (r.explanation) {
    article.append(el("div", { className: "strip-label", textContent: `Letters for and against ${best.country}:` }),
                   strip(r.explanation, best.country));
  }
  return article;
}

async function classify(event) {
  if (event) event.preventDefault();
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const names = splitNames(document.getElementById("names").value).slice(0, MAX_ON_PAGE);
  status.className = "status";
  if (!names.length) {
    status.textContent = "Type a surname first.";
    return;
  }
  status.textContent = "Asking the model…";
  const body = {
    names, topk: TOPK, explain: true,
    prior: document.getElementById("prior").value,
    min_probability: Number(document.getElementById("min-probability").value),
  };
  try {
    const response = await fetch("/v1/predict", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    results.replaceChildren(...data.results.map(renderResult));
    status.textContent = `${data.results.length} name${data.results.length === 1 ? "" : "s"} classified.`;
  } catch (e) {
    status.className = "status error";
    status.textContent = `Could not classify: ${e.message}`;
  }
}

function fact(dl, term, text) {
  dl.append(el("dt", { textContent: term }), el("dd", { textContent: text }));
}

async function loadCard() {
  const dl = document.getElementById("card-facts");
  try {
    const card = await (await fetch("/v1/model")).json();
    const m = card.models[0];
    fact(dl, "Countries", `${card.countries.length}: ${card.countries.join(", ")}`);
    fact(dl, "Model", card.models.map((x) => x.families.join(" + ")).join("; ") + ` (${m.file})`);
    fact(dl, "Trained on", `${m.names_in_training.toLocaleString("en")} distinct surnames from ${m.data.file} ` +
                           `(seed ${m.data.seed}; ${Math.round(100 * m.data.test_fraction)}% held out for the test)`);
    if (m.test.accuracy !== undefined) {
      let text = `accuracy ${percent(m.test.accuracy)}`;
      if (m.test.balanced_accuracy !== undefined) text += `, balanced accuracy ${percent(m.test.balanced_accuracy)}`;
      if (m.test.macro_f1 !== undefined) text += `, macro-F1 ${m.test.macro_f1.toFixed(2)}`;
      fact(dl, "On its test split", text);
    }
    for (const e of m.evaluations) {
      fact(dl, `On ${e.set}`, `accuracy ${percent(e.accuracy)}, balanced accuracy ${percent(e.balanced_accuracy)} ` +
                              `(${e.rows.toLocaleString("en")} names)`);
    }
    fact(dl, "On real surnames", "Expect less than on the test split: the default model was right about half " +
                                 "the time on 1,443 real surnames outside the data set, and too sure of itself there.");
  } catch (e) {
    fact(dl, "Model", "could not be loaded");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("form");
  const box = document.getElementById("names");
  form.addEventListener("submit", classify);
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) classify(e);
  });
  for (const id of ["prior", "min-probability"]) {
    document.getElementById(id).addEventListener("change", () => { if (box.value.trim()) classify(); });
  }
  loadCard();
  const given = new URLSearchParams(location.search).get("names");
  if (given) {
    box.value = given;
    classify();
  }
});
