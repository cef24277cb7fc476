// curator serve: the pages' script. No framework, no build step.
// Label and review are keyboard-first: one key per answer, as in the terminal prompts.
// An answer is POSTed and committed before the next image is shown; keys pressed while a
// request is in flight wait their turn, so none is lost or applied twice.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const csrf = document.querySelector("meta[name=csrf-token]").content;
const main = document.getElementById("main");
const decoded = new Map(); // url -> Promise of a decoded Image (prefetch)
let chain = Promise.resolve();
let presses = 0;

const imgURL = (sha, size = "display") => `/img/${sha}?size=${size}`;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function prefetch(url) {
  if (!decoded.has(url)) {
    const image = new Image();
    image.src = url;
    decoded.set(url, image.decode().then(() => image, () => image));
    if (decoded.size > 40) decoded.delete(decoded.keys().next().value);
  }
  return decoded.get(url);
}

async function api(url, body) {
  const options = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
  };
  const response = await fetch(url, { credentials: "same-origin", ...options });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// ------------------------------------------------------------------------------------------
// The photo: large, zoom with the wheel or + - 0, pan by dragging

function stage() {
  const img = el("img", { id: "current", alt: "current image" });
  const box = el("div", { class: "stage" }, img);
  const view = { scale: 1, x: 0, y: 0 };
  const apply = () => { img.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`; };
  const zoom = (factor) => { view.scale = Math.min(Math.max(view.scale * factor, 1), 12); apply(); };
  const reset = () => { view.scale = 1; view.x = 0; view.y = 0; apply(); };
  box.addEventListener("wheel", (e) => { e.preventDefault(); zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2); });
  let drag = null;
  box.addEventListener("mousedown", (e) => { drag = { x: e.clientX - view.x, y: e.clientY - view.y }; e.preventDefault(); });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (e) => {
    if (drag) { view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; apply(); }
  });
  // Show an image only once decoded, then mark when it is painted (the benchmark reads this).
  async function show(sha, press) {
    const image = await prefetch(imgURL(sha));
    reset();
    img.src = image.src;
    img.dataset.sha256 = sha;
    requestAnimationFrame(() => setTimeout(() => {
      performance.mark(`paint-${press}`);
      if (press > 0) performance.measure("key-to-paint", `key-${press}`, `paint-${press}`);
      else performance.mark("first-image");
    }, 0));
  }
  return { box, img, show, zoom, reset };
}

function keyHandler(handle) {
  window.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.target.tagName === "INPUT") return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (handle(key) !== false) e.preventDefault();
  });
}

function keyButtons(pairs, press) {
  return el("div", { class: "keys" }, ...pairs.map(([key, name]) =>
    el("button", { type: "button", "data-key": key, onclick: () => press(key) }, el("kbd", { text: key }), name)));
}

function thumbs(shas) {
  return el("div", { class: "members" }, ...shas.slice(0, 12).map((sha) =>
    el("a", { href: imgURL(sha, "full"), target: "_blank", title: sha }, el("img", { src: imgURL(sha, "thumb"), alt: sha.slice(0, 12) }))));
}

// ------------------------------------------------------------------------------------------
// A prompt page (label, review): a queue walked one key at a time on the server

function promptPage(endpoint, describe, keyPairs, commandKeys) {
  const photo = stage();
  const progress = el("span", { class: "progress", id: "progress" });
  const info = el("div", { class: "bar", id: "info" });
  const message = el("div", { class: "message", id: "message" });
  const members = el("div", { id: "members" });
  const keys = el("div", { id: "keys" });
  main.append(el("div", { class: "bar" }, progress, info), photo.box, keys, message, members);
  let view = null;

  function render(next, press) {
    view = next;
    main.dataset.pos = String(view.pos);
    main.dataset.done = String(view.done);
    progress.textContent = view.done ? `[done ${view.total}/${view.total}]` : `[${view.pos + 1}/${view.total}]`;
    message.textContent = view.message || (view.done ? "Every item in this session has an answer; u undoes the last one." : "");
    keys.replaceChildren(keyButtons(keyPairs(view), onKey));
    for (const sha of view.next) prefetch(imgURL(sha));
    if (view.done) {
      info.replaceChildren();
      members.replaceChildren();
      photo.img.removeAttribute("src");
      photo.img.dataset.sha256 = "";
      return;
    }
    info.replaceChildren(...describe(view.item));
    members.replaceChildren(el("span", { class: "muted", text: `cluster: ${view.item.members.length} other member(s)` }), thumbs(view.item.members));
    return photo.show(view.item.sha256, press);
  }

  function send(key, extra = {}) {
    const press = ++presses;
    performance.mark(`key-${press}`);
    if (config.readOnly) { message.textContent = "Read-only: answers are not saved."; return; }
    chain = chain.then(() => api(endpoint, { key, ...extra }))
      .then((next) => render(next, press))
      .catch((err) => { message.textContent = `Not saved: ${err.message}`; });
  }

  // One path for keys and for the buttons that stand for them.
  function onKey(key) {
    if (key === "+" || key === "=") photo.zoom(1.25);
    else if (key === "-") photo.zoom(1 / 1.25);
    else if (key === "0") photo.reset();
    else if (key === "o" && view && view.item) window.open(imgURL(view.item.sha256, "full"), "_blank");
    else if (key === "?") message.textContent = "Keys: " + keyPairs(view).map(([k, n]) => `${k} ${n}`).join(", ") + "; + - 0 zoom; drag to pan; o original";
    else if (commandKeys(view, key, send)) return true;
    else return false;
    return true;
  }
  keyHandler(onKey);
  api(endpoint).then((first) => render(first, 0));
}

function labelPage() {
  const hidden = "hidden (blind subset)";
  const describe = (item) => [
    el("span", { text: `${item.width}x${item.height} ${item.format}` }),
    el("span", { class: "muted", text: item.sha256.slice(0, 12) }),
    el("span", { text: `hint: ${item.blind ? hidden : item.hint || "-"}` }),
    el("span", { text: `label: ${item.blind ? hidden : name(item.label)}  yours: ${name(item.mine)}` }),
    el("span", { class: "muted", text: `source: ${item.blind ? hidden : item.source || "-"}` }),
    ...(item.suggestion ? [el("span", { class: "suggestion", text: item.suggestion })] : []),
  ];
  const pairs = (view) => [...Object.entries(view ? view.keys : {}), ["x", "exclude"], ["s", "skip"], ["u", "undo"]];
  promptPage("/api/label", describe, pairs, (view, key, send) => {
    if (!view) return false;
    if (key in view.keys || key === "x" || key === "s" || key === "u") { send(key); return true; }
    return false;
  });
}

function reviewPage() {
  let relabeling = false;
  const describe = (item) => {
    const detail = Object.entries(item.detail).filter(([k]) => k !== "top").map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
    const parts = [
      el("span", { id: "finding-kind", text: item.kind }),
      el("span", { text: `score ${item.score.toFixed(2)}` }),
      el("span", { class: "muted", text: detail }),
    ];
    if (item.kind === "label-issue") {
      const top = (item.detail.top || []).map(([n, p]) => `${n} ${p.toFixed(2)}`).join(", ");
      parts.push(el("span", { text: `given ${item.given_label}, suggested ${item.suggested_label}; model: ${top}` }));
    }
    return parts;
  };
  const pairs = (view) => relabeling
    ? Object.entries(view.keys)
    : [["k", "keep"], ["x", "exclude"], ["n", "not a problem"], ["r", "relabel"], ["a", "accept suggestion"], ["s", "skip"], ["u", "undo"]];
  promptPage("/api/review", describe, pairs, (view, key, send) => {
    if (!view) return false;
    if (relabeling) {
      relabeling = false;
      if (key in view.keys) send("r", { label: view.keys[key] });
      else document.getElementById("message").textContent = "Relabel cancelled";
      return true;
    }
    if (key === "r" && !view.done) {
      relabeling = true;
      document.getElementById("message").textContent = "Relabel to: " + Object.entries(view.keys).map(([k, c]) => `${k} ${c}`).join("  ");
      return true;
    }
    if ("kxnasu".includes(key)) { send(key); return true; }
    return false;
  });
}

// ------------------------------------------------------------------------------------------
// Read-only pages

function tile(sha, lines, extraClass = "") {
  return el("div", { class: `tile ${extraClass}`, "data-sha256": sha },
    el("a", { href: imgURL(sha, "full"), target: "_blank" }, el("img", { src: imgURL(sha, "thumb"), alt: sha.slice(0, 12), loading: "lazy" })),
    ...lines.map((line) => el("div", { text: line })));
}

async function duplicatesPage() {
  const message = el("div", { class: "message", id: "message" });
  const list = el("div");
  main.append(el("p", { class: "muted", text: "Representative first. \"Not a duplicate\" moves an image out into a cluster of its own." }), message, list);
  function splitButton(sha) {
    if (config.readOnly) return el("span");
    return el("button", { type: "button", class: "split", onclick: async () => {
      try { show((await api("/api/duplicates/split", { sha256: sha })).clusters); message.textContent = `Split off ${sha.slice(0, 12)}.`; }
      catch (err) { message.textContent = `Not split: ${err.message}`; }
    } }, "Not a duplicate");
  }
  function show(clusters) {
    if (!clusters.length) { list.replaceChildren(el("p", { text: "No near-duplicate clusters." })); return; }
    list.replaceChildren(...clusters.map((cluster) => el("section", { class: "cluster", "data-cluster": cluster.id },
      el("h3", { text: `Cluster ${cluster.id}: ${cluster.members.length} images` }),
      el("div", { class: "grid" }, ...cluster.members.map((m) => {
        const node = tile(m.sha256, [
          m.representative ? "representative" : `${m.distance === null ? "distance unknown" : `distance ${m.distance} bits`}, ${m.reason}`,
          `${m.width}x${m.height}  ${m.sha256.slice(0, 10)}`,
        ], m.representative ? "rep" : "");
        if (!m.representative) node.append(splitButton(m.sha256));
        return node;
      })))));
  }
  show((await api("/api/duplicates")).clusters);
}

async function browsePage() {
  const filters = el("form", { class: "filters bar" });
  const grid = el("div", { class: "grid", id: "grid" });
  const count = el("p", { class: "muted" });
  main.append(filters, count, grid);
  const first = await api("/api/browse");
  const select = (nameAttr, options) => el("select", { name: nameAttr, onchange: load },
    el("option", { value: "", text: `any ${nameAttr}` }), ...options.map((o) => el("option", { value: o, text: o })));
  filters.append(select("label", [...first.classes, "excluded"]), select("split", ["train", "validation", "test"]),
    el("input", { name: "source", placeholder: "source contains", onchange: load }), select("finding", first.kinds));
  async function load() {
    const query = new URLSearchParams(new FormData(filters)).toString();
    show(await api(`/api/browse?${query}`));
  }
  function show(data) {
    count.textContent = `${data.total} images${data.total > data.images.length ? `, first ${data.images.length} shown` : ""}`;
    grid.replaceChildren(...data.images.map((i) => tile(i.sha256, [
      `${i.label || "unlabeled"}${i.split ? " / " + i.split : ""}`, i.findings.join(", ") || " "])));
  }
  show(first);
}

async function agreementPage() {
  const summary = el("p");
  const message = el("div", { class: "message", id: "message" });
  const grid = el("div", { class: "grid" });
  main.append(summary, message, grid);
  const judge = (data) => data.adjudicator === config.annotator && !config.readOnly;
  function show(data) {
    summary.textContent = `Policy: ${data.policy}${data.adjudicator ? `, adjudicator ${data.adjudicator}` : ""}. ` +
      `${data.images.length} image(s) where annotators disagree.` + (judge(data) ? " Your label decides." : "");
    grid.replaceChildren(...data.images.map((i) => {
      const node = tile(i.sha256, [
        ...Object.entries(i.votes).map(([who, label]) => `${who}: ${name(label)}`),
        `resolved: ${i.resolved === null ? "unresolved (tie)" : name(i.resolved)}`]);
      if (judge(data)) {
        for (const label of [...data.classes, "__excluded__"]) {
          node.append(el("button", { type: "button", onclick: async () => {
            try { show(await api("/api/agreement", { sha256: i.sha256, label })); }
            catch (err) { message.textContent = `Not saved: ${err.message}`; }
          } }, name(label)));
        }
      }
      return node;
    }));
  }
  show(await api("/api/agreement"));
}

function name(label) {
  if (label === null || label === undefined) return "(none)";
  return label === "__excluded__" ? "excluded" : label;
}

({ label: labelPage, review: reviewPage, duplicates: duplicatesPage, browse: browsePage, agreement: agreementPage })[config.page]();
