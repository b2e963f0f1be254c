// The dashboard page: draws what /state.json says, live (a poll a second) or at the
// slider's time.  Drawing is cytoscape.js's, layout its fcose extension's (vendor/, see VENDORED.md):
// fcose's spectral start lays 500 peers out in about a second, where cytoscape's own cose took 20.
// Nothing is computed here that the server counts: this file only draws.
"use strict";

const POLL_MS = 1000;          // a look at the log while following it live
const PLAY_STEP_MS = 250;      // a replay frame
const MESSAGES_LISTED = 300;   // newest messages offered in the picker
const RELAYOUT_GROWTH = 1.5;   // a full layout again once the overlay has grown by half since the last
// Peers up to which fcose refines its layout by forces; above, its spectral draft alone (1 s for 500
// peers on the 2-core VM, against 8-16 s refined) and newcomers are placed beside their neighbours.
const REFINED_LIMIT = 150;

const $ = (id) => document.getElementById(id);
const view = {
  follow: true, playing: false, t: 0, end: 0, message: "", generation: null,
  busy: false, again: false, laidOut: 0, last: null, peers: new Map(), renders: 0,
};

cytoscape.use(cytoscapeFcose);
const cy = cytoscape({
  container: $("graph"),
  wheelSensitivity: 0.3,
  minZoom: 0.05,
  maxZoom: 6,
  style: [
    { selector: "node.peer", style: {
      "width": "data(size)", "height": "data(size)", "background-color": "#1f77b4",
      "border-width": 1, "border-color": "#fff", "label": "", "font-size": 9 } },
    { selector: "node.peer.hub", style: { "background-color": "#ff7f0e", "label": "data(label)" } },
    { selector: "node.peer.stopped", style: { "opacity": 0.75 } },
    { selector: "node.peer.got", style: { "background-color": "#2ca02c" } },
    { selector: "node.peer.origin", style: { "background-color": "#ffbf00", "border-color": "#7a5c00", "border-width": 2 } },
    { selector: "node.peer.missed", style: { "background-color": "#9e9e9e", "label": "data(label)" } },
    { selector: "node.peer.reported", style: {
      "background-color": "#d62728", "shape": "diamond", "label": "data(label)", "color": "#d62728" } },
    { selector: "node.seed", style: {
      "shape": "round-rectangle", "width": 22, "height": 16, "background-color": "#5b5b5b",
      "label": "data(label)", "font-size": 9, "text-valign": "center", "text-halign": "right", "text-margin-x": 4 } },
    { selector: "edge", style: { "width": 1, "line-color": "#8c9aa8", "opacity": 0.6, "curve-style": "haystack" } },
    { selector: "edge.lost", style: { "line-color": "#d62728", "line-style": "dashed", "opacity": 0.9,
      "curve-style": "straight" } },
    { selector: "node:selected", style: { "border-color": "#000", "border-width": 3 } },
  ],
  layout: { name: "preset" },
});

// --- Fetching --------------------------------------------------------------------------------

function stateUrl() {
  const query = new URLSearchParams();
  if (!view.follow) query.set("t", view.t.toFixed(6));  // the log's resolution: a report and a removal may be 1 ms apart
  if (view.message) query.set("msg", view.message);
  const text = query.toString();
  return "/state.json" + (text ? "?" + text : "");
}

async function refresh() {
  if (view.busy) { view.again = true; return; }
  view.busy = true;
  try {
    do {
      view.again = false;
      const answer = await fetch(stateUrl(), { cache: "no-store" });
      const data = await answer.json();
      if (!answer.ok) {
        if (answer.status === 404 && view.message) { view.message = ""; $("message").value = ""; view.again = true; continue; }
        throw new Error(data.error || answer.statusText);
      }
      render(data);
    } while (view.again);
  } catch (error) {
    $("status").textContent = "cannot reach the dashboard: " + error.message;
    $("status").className = "error";
  } finally {
    view.busy = false;
  }
}

async function refreshMessages() {
  const query = new URLSearchParams({ limit: String(MESSAGES_LISTED) });
  if (!view.follow) query.set("t", view.t.toFixed(3));
  try {
    const answer = await fetch("/messages.json?" + query, { cache: "no-store" });
    if (!answer.ok) return;
    const data = await answer.json();
    const picker = $("message");
    const chosen = picker.value;
    picker.replaceChildren(new Option("the latest (follow)", ""));
    for (const message of data.messages) {
      picker.add(new Option(`#${message.number} from ${message.origin} at ${message.created.toFixed(2)} s ` +
                            `(${message.received} receipts)`, message.id));
    }
    picker.value = [...picker.options].some((option) => option.value === chosen) ? chosen : "";
  } catch (error) { /* the next refresh reports an unreachable server */ }
}

// --- Drawing ---------------------------------------------------------------------------------

function render(data) {
  const began = performance.now();
  if (data.log.generation !== view.generation) {   // a new log: start over
    view.generation = data.log.generation;
    cy.elements().remove();
    view.laidOut = 0;
    refreshMessages();
  }
  view.last = data;
  view.end = data.time.end;
  if (view.follow) view.t = data.time.t;
  renderStatus(data);
  renderGraph(data);
  renderCounters(data);
  renderMessage(data);
  renderHistogram(data.degrees);
  renderDeaths(data);
  view.renders += 1;
  view.renderMs = performance.now() - began;  // how long a frame takes to draw: the page's smoothness
}

function seconds(value, digits = 3) {
  return value === null || value === undefined ? "n/a" : `${value.toFixed(digits)} s`;
}

function renderStatus(data) {
  const log = data.log;
  $("log-name").textContent = "— " + log.path;
  document.title = `Gossip network — ${log.path}`;
  const parts = [];
  if (log.error) parts.push(log.error);
  if (log.reading) parts.push(`reading the log: ${Math.floor(100 * log.read / Math.max(log.size, 1))}%`);
  parts.push(view.follow ? "live: following the log" : (view.playing ? "replaying" : "paused"));
  $("status").textContent = parts.join(" · ");
  $("status").className = log.error ? "error" : "";
  const slider = $("slider");
  slider.max = String(data.time.end);
  if (view.follow || view.playing) slider.value = String(data.time.t);
  $("clock").textContent = `t = ${data.time.t.toFixed(2)} s / ${data.time.end.toFixed(2)} s`;
}

function peerSize(degree, top, count) {
  const scale = count > REFINED_LIMIT ? 0.5 : 1;  // a big overlay needs room between its peers
  return scale * (10 + 34 * Math.sqrt(degree / Math.max(top, 1)));
}

function renderGraph(data) {
  const shown = data.peers.filter((peer) => peer.state !== "removed");
  const top = Math.max(1, ...shown.map((peer) => peer.degree));
  const ranked = [...shown].sort((a, b) => b.degree - a.degree);
  const median = ranked.length ? ranked[Math.floor(ranked.length / 2)].degree : 0;
  const hubs = new Set(ranked.slice(0, 5).filter((peer) => peer.degree > median).map((peer) => peer.id));
  const message = data.message;
  const got = new Map(message ? message.received.map(([peer, delay, hops]) => [peer, [delay, hops]]) : []);
  view.peers = new Map(data.peers.map((peer) => [peer.id, peer]));
  const wanted = new Set(shown.map((peer) => peer.id));
  data.seeds.forEach((seed) => wanted.add("seed " + seed.id));
  const edges = new Map(data.links.filter(([a, b]) => wanted.has(a) && wanted.has(b))
    .map(([a, b, kind]) => [a + " " + b, [a, b, kind]]));
  const added = [];
  cy.batch(() => {
    cy.elements().forEach((element) => {
      if (element.isNode() ? !wanted.has(element.id()) : !edges.has(element.id())) element.remove();
    });
    for (const peer of shown) {
      let node = cy.getElementById(peer.id);
      if (node.empty()) {
        node = cy.add({ group: "nodes", data: { id: peer.id }, classes: "peer" });
        added.push(node);
      }
      const reached = got.get(peer.id);
      node.data({ size: peerSize(peer.degree, top, shown.length), label: labelOf(peer, reached) });
      node.classes(["peer", peer.state, hubs.has(peer.id) ? "hub" : "",
                    reached ? "got" : "", message && message.origin === peer.id ? "origin" : ""].join(" "));
    }
    for (const seed of data.seeds) {
      const id = "seed " + seed.id;
      if (cy.getElementById(id).empty()) cy.add({ group: "nodes", data: { id }, classes: "seed" });
      cy.getElementById(id).data("label", `${seed.id} (PL ${seed.peer_list})`);
    }
    for (const [id, [a, b, kind]] of edges) {
      let edge = cy.getElementById(id);
      if (edge.empty()) edge = cy.add({ group: "edges", data: { id, source: a, target: b } });
      edge.classes(kind);
    }
  });
  layOut(added);
}

function labelOf(peer, reached) {
  if (reached && reached[1] !== null && view.message) return `${peer.id.split(":")[1]} h${reached[1]}`;
  return `${peer.id.split(":")[1]} k=${peer.degree}`;
}

function layOut(added) {
  const peers = cy.nodes(".peer");
  if (!peers.length) return;
  if (!view.laidOut || peers.length >= view.laidOut * RELAYOUT_GROWTH) {
    runLayout(peers, !view.laidOut);
  } else if (added.length) {
    // Only the newcomers move: every peer already drawn stays where it is.
    placeNear(added);
    if (peers.length <= REFINED_LIMIT) {
      const fixed = peers.difference(cy.collection(added))
        .map((node) => ({ nodeId: node.id(), position: { ...node.position() } }));
      runFcose(peers, { randomize: false, fixedNodeConstraint: fixed });
    }
  }
  placeSeeds();
}

function runFcose(peers, options) {
  peers.union(peers.edgesWith(peers)).layout({
    name: "fcose", animate: false, fit: false, nodeRepulsion: () => 6000,
    idealEdgeLength: () => 50, nodeSeparation: 60, packComponents: true, ...options,
  }).run();
}

function runLayout(peers, fresh) {
  view.laidOut = peers.length;
  if (peers.length > REFINED_LIMIT) {
    runFcose(peers, { randomize: true, quality: "draft" });
  } else {
    // Not fresh: from where the peers are, so that the picture changes rather than jumps.
    runFcose(peers, { randomize: fresh, quality: "default" });
  }
  placeSeeds();
  cy.fit(cy.nodes(), 30);
}

function placeNear(added) {
  const box = cy.nodes(".peer").boundingBox();
  for (const node of added) {
    const placed = node.neighborhood("node.peer").filter((other) => !added.includes(other));
    let x = (box.x1 + box.x2) / 2, y = (box.y1 + box.y2) / 2;
    if (placed.length) {
      x = placed.reduce((sum, other) => sum + other.position("x"), 0) / placed.length;
      y = placed.reduce((sum, other) => sum + other.position("y"), 0) / placed.length;
    }
    const angle = Math.random() * 2 * Math.PI;
    node.position({ x: x + 40 * Math.cos(angle), y: y + 40 * Math.sin(angle) });
  }
}

function placeSeeds() {
  const peers = cy.nodes(".peer");
  const seeds = cy.nodes(".seed");
  if (!seeds.length) return;
  const box = peers.length ? peers.boundingBox() : { x1: 0, y1: 0, y2: 200 };
  const gap = Math.max(30, (box.y2 - box.y1) / Math.max(seeds.length, 1));
  seeds.forEach((seed, index) => seed.position({ x: box.x1 - 160, y: box.y1 + gap * (index + 0.5) }));
}

function renderCounters(data) {
  const c = data.counters;
  $("c-peers").textContent = `${c.peers} (${c.live} live)`;
  $("c-links").textContent = `${c.links} opened, ${data.links.filter((link) => link[2] === "up").length} up`;
  $("c-degree").textContent = `${c.degree_min} / ${c.degree_median} / ${c.degree_max}`;
  $("c-messages").textContent = `${c.messages} (${c.complete} at every live peer)`;
  $("c-delivery").textContent = `${(100 * c.delivery).toFixed(1)}% (${c.delivered} of ${c.expected})`;
  $("c-dissemination").textContent = `${seconds(c.dissemination_median)} / ${seconds(c.dissemination_p99)}`;
  $("c-dead").textContent = `${c.reported} / ${c.removed}`;
  $("c-false").textContent = String(c.false_reports);
  $("c-log").textContent = `${data.log.lines} lines, ${data.log.malformed} malformed`;
}

function renderMessage(data) {
  const message = data.message;
  if (!message) { $("message-info").textContent = "no message yet"; return; }
  const hops = message.received.map((entry) => entry[2]).filter((hop) => hop !== null);
  $("message-info").textContent =
    `${message.text} from ${message.origin}, made ${message.age.toFixed(2)} s ago: ` +
    `${message.received.length} receipts (${message.expected} live peers expect it)` +
    (hops.length ? `, up to ${Math.max(...hops)} hops` : "");
}

function renderHistogram(degrees) {
  const svg = $("histogram");
  const rows = degrees.histogram;
  const width = 320, height = 170, left = 26, bottom = 20, top = 8;
  const highest = Math.max(1, ...rows.map(([, live, dead]) => live + dead),
                           ...(degrees.fit ? degrees.fit.curve.map(([, n]) => n) : []));
  const step = (width - left - 6) / Math.max(rows.length, 1);
  const y = (count) => height - bottom - (height - bottom - top) * count / highest;
  const parts = [`<line class="axis" x1="${left}" y1="${height - bottom}" x2="${width - 4}" y2="${height - bottom}"/>`,
                 `<text x="2" y="${top + 8}">${Math.round(highest)}</text>`, `<text x="2" y="${height - bottom}">0</text>`];
  rows.forEach(([k, live, dead], index) => {
    const x = left + index * step;
    parts.push(`<rect class="bar-live" x="${x + 0.5}" y="${y(live)}" width="${Math.max(step - 1, 0.5)}" height="${y(0) - y(live)}"/>`);
    if (dead) parts.push(`<rect class="bar-dead" x="${x + 0.5}" y="${y(live + dead)}" width="${Math.max(step - 1, 0.5)}" height="${y(0) - y(dead)}"/>`);
    if (rows.length <= 25 || k % Math.ceil(rows.length / 12) === 0) {
      parts.push(`<text x="${x + step / 2 - 3}" y="${height - 6}">${k}</text>`);
    }
  });
  if (degrees.fit) {
    const points = degrees.fit.curve.map(([k, n]) => `${left + (k + 0.5) * step},${y(n)}`).join(" ");
    parts.push(`<polyline class="fit" points="${points}"/>`);
  }
  svg.innerHTML = parts.join("");
  $("fit-info").textContent = degrees.fit
    ? `power law, ML fit: α = ${degrees.fit.alpha.toFixed(2)} for k ≥ ${degrees.fit.k_min} (${degrees.fit.tail} peers); ` +
      `vs exponential: ${degrees.fit.verdict}`
    : `no power-law fit: ${degrees.fit_problem}`;
}

function renderDeaths(data) {
  const list = $("deaths");
  const dying = data.peers.filter((peer) => ["missed", "reported", "removed"].includes(peer.state));
  if (!dying.length) { list.innerHTML = '<li class="none">none</li>'; return; }
  list.replaceChildren(...dying.map((peer) => {
    const item = document.createElement("li");
    item.dataset.peer = peer.id;
    item.dataset.state = peer.state;
    const state = document.createElement("span");
    state.className = "state-" + peer.state;
    state.textContent = peer.state;
    item.append(`${peer.id}: `, state, " — " + deathLine(peer));
    item.title = (peer.decisions || []).map(([seed, decision, reason, t]) =>
      `${t.toFixed(2)} s seed ${seed} ${decision}: ${reason}`).join("\n");
    return item;
  }));
}

function deathLine(peer) {
  const parts = [];
  if (peer.missed_by && peer.missed_by.length) parts.push(`missed by ${peer.missed_by.length}`);
  if (peer.reported_by && peer.reported_by.length) {
    parts.push(`reported at ${peer.reported_by[0][1].toFixed(2)} s by ${peer.reported_by.length}`);
  }
  const removals = (peer.decisions || []).filter(([, decision]) => decision.startsWith("removed it"));
  if (removals.length) parts.push(`removed by ${removals.length} seeds at ${removals[removals.length - 1][3].toFixed(2)} s`);
  return parts.join(", ") || "—";
}

// --- Hover ------------------------------------------------------------------------------------

function describe(peer) {
  const lines = [`<b>${peer.id}</b>`, `state: ${peer.state}; degree ${peer.degree}; up at ${peer.started.toFixed(2)} s`];
  const message = view.last && view.last.message;
  if (message) {
    const got = message.received.find((entry) => entry[0] === peer.id);
    lines.push(peer.id === message.origin ? "origin of the message shown"
      : got ? `has the message: after ${got[1].toFixed(3)} s, ${got[2] === null ? "?" : got[2]} hops` : "has not got the message");
  }
  if (peer.missed_by && peer.missed_by.length) {
    lines.push("pings missed: " + peer.missed_by.map(([by, misses]) => `${by} ×${misses}`).join(", "));
  }
  if (peer.reported_by && peer.reported_by.length) {
    lines.push("reported dead by: " + peer.reported_by.map(([by, t]) => `${by} at ${t.toFixed(2)} s`).join(", "));
  }
  if (peer.decisions && peer.decisions.length) {
    lines.push("seeds decided:<ul>" + peer.decisions.map(([seed, decision, reason, t]) =>
      `<li>${t.toFixed(2)} s ${seed} ${escapeHtml(decision)}: ${escapeHtml(reason)}</li>`).join("") + "</ul>");
  }
  return lines.join("<br>");
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

cy.on("mouseover", "node.peer", (event) => {
  const peer = view.peers.get(event.target.id());
  if (!peer) return;
  const tip = $("tooltip");
  tip.innerHTML = describe(peer);
  const at = event.renderedPosition;
  tip.style.left = `${at.x + 14}px`;
  tip.style.top = `${at.y + 14}px`;
  tip.hidden = false;
});
cy.on("mouseout", "node", () => { $("tooltip").hidden = true; });

// --- Controls ---------------------------------------------------------------------------------

function setFollow(follow) {
  view.follow = follow;
  $("live").classList.toggle("on", follow);
  if (follow) setPlaying(false);
  if (view.last) renderStatus(view.last);
}

function setPlaying(playing) {
  view.playing = playing;
  $("play").textContent = playing ? "❚❚ pause" : "▶ play";
  if (view.last) renderStatus(view.last);
}

$("slider").addEventListener("input", () => {
  setFollow(false);
  setPlaying(false);
  view.t = Number($("slider").value);
  refresh();
});
$("live").addEventListener("click", () => { setFollow(true); refresh(); });
$("play").addEventListener("click", () => {
  if (view.playing) { setPlaying(false); return; }
  if (view.follow || view.t >= view.end) view.t = 0;
  setFollow(false);
  setPlaying(true);
});
$("message").addEventListener("change", () => { view.message = $("message").value; refresh(); });
$("message").addEventListener("focus", refreshMessages);
$("relayout").addEventListener("click", () => runLayout(cy.nodes(".peer"), true));
$("fit").addEventListener("click", () => cy.fit(cy.nodes(), 30));

setInterval(() => { if (view.follow) refresh(); }, POLL_MS);
setInterval(() => { if (view.follow) refreshMessages(); }, 10 * POLL_MS);
setInterval(() => {
  if (!view.playing) return;
  view.t = Math.min(view.end, view.t + Number($("speed").value) * PLAY_STEP_MS / 1000);
  if (view.t >= view.end) setPlaying(false);
  refresh();
}, PLAY_STEP_MS);

// For scripts and tests: what the page shows, in its own words.
window.dashboard = {
  view,
  cy,
  shownPeers: () => cy.nodes(".peer").map((node) => node.id()).sort(),
  shownLinks: () => cy.edges().map((edge) => [edge.source().id(), edge.target().id(), edge.classes().join(" ")]),
  peerState: (id) => { const node = cy.getElementById(id); return node.empty() ? "absent" : view.peers.get(id).state; },
  setTime: (t) => { setFollow(false); setPlaying(false); view.t = t; $("slider").value = String(t); return refresh(); },
  follow: () => { setFollow(true); return refresh(); },
};
refresh();
