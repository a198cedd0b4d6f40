// Rendering: one screen at a time in <main>, rebuilt from a render function so a
// language switch or a live value (progress, coins, time left) just renders again.

/** Create an element: h("button", {class: "primary", onclick}, "text", child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A large touch button; `kind` is primary, secondary or danger. */
export function button(label, onclick, { kind = "primary", id, disabled } = {}) {
  return h("button", { class: `btn ${kind}`, type: "button", id, onclick, disabled }, label);
}

/** A progress bar with its value also in text (0..1). */
export function progress(fraction, label) {
  const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
  const bar = h("div", { class: "bar" });
  bar.style.width = `${pct}%`; // CSSOM, not a style attribute: the page's CSP forbids inline styles
  return h(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct, "aria-label": label },
    bar,
    h("span", { class: "pct" }, `${pct}%`),
  );
}

const SVG = "http://www.w3.org/2000/svg";

/** Create an SVG element (attributes only: the page's CSP forbids inline styles). */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  el.append(...children);
  return el;
}

const LINE = { fill: "none", stroke: "currentColor", "stroke-width": 6, "stroke-linecap": "round", "stroke-linejoin": "round" };
const SOLID = { fill: "currentColor" };
const PAPER = { fill: "#ffffff", stroke: "currentColor", "stroke-width": 5, "stroke-linejoin": "round" };

/** QR finder pattern at (x, y): a 24-unit square with a solid centre. */
const finder = (x, y) => [
  svg("rect", { x: x + 3, y: y + 3, width: 18, height: 18, ...LINE, "stroke-width": 5 }),
  svg("rect", { x: x + 8, y: y + 8, width: 8, height: 8, ...SOLID }),
];

/** The drawings, on a 160 x 120 grid. */
const DRAWINGS = {
  // A QR code under a scanner's beam.
  qr: () => [
    svg("rect", { x: 40, y: 14, width: 80, height: 80, rx: 6, ...PAPER }),
    ...finder(48, 22),
    ...finder(88, 22),
    ...finder(48, 62),
    ...[[76, 24], [76, 44], [56, 50], [92, 54], [100, 70], [80, 76], [100, 84], [72, 64]].map(([x, y]) =>
      svg("rect", { x, y, width: 8, height: 8, ...SOLID }),
    ),
    svg("line", { x1: 24, y1: 108, x2: 136, y2: 108, ...LINE, stroke: "#0d6b2f" }),
  ],
  // The ID card with its chip, going down into the reader.
  card: () => [
    svg("rect", { x: 28, y: 10, width: 104, height: 66, rx: 8, ...PAPER }),
    svg("rect", { x: 40, y: 28, width: 22, height: 18, rx: 3, fill: "#b07a00" }),
    svg("circle", { cx: 108, cy: 34, r: 9, ...SOLID }),
    svg("path", { d: "M94 62 q14 -18 28 0", ...LINE, "stroke-width": 5 }),
    svg("line", { x1: 40, y1: 60, x2: 76, y2: 60, ...LINE, "stroke-width": 4 }),
    svg("rect", { x: 14, y: 88, width: 132, height: 24, rx: 6, ...SOLID }),
    svg("rect", { x: 26, y: 97, width: 108, height: 6, rx: 3, fill: "#ffffff" }),
  ],
  // A sheet going down into the document slot.
  slot: () => [
    svg("path", { d: "M48 8 h48 l16 16 v64 h-64 z", ...PAPER }),
    svg("path", { d: "M96 8 v16 h16", ...LINE, "stroke-width": 4 }),
    ...[36, 50, 64].map((y) => svg("line", { x1: 60, y1: y, x2: 100, y2: y, ...LINE, "stroke-width": 4 })),
    svg("rect", { x: 14, y: 92, width: 132, height: 20, rx: 6, ...SOLID }),
    svg("rect", { x: 30, y: 99, width: 100, height: 6, rx: 3, fill: "#ffffff" }),
  ],
  // A compartment door with its number and handle.
  locker: (n) => [
    svg("rect", { x: 34, y: 6, width: 92, height: 108, rx: 6, ...PAPER }),
    ...[18, 28].map((y) => svg("line", { x1: 52, y1: y, x2: 108, y2: y, ...LINE, "stroke-width": 4 })),
    svg("line", { x1: 112, y1: 56, x2: 112, y2: 80, ...LINE }),
    svg("text", { x: 76, y: 90, "text-anchor": "middle", "font-size": 48, "font-weight": 700, fill: "currentColor" }, String(n ?? "")),
  ],
};

/** A simple drawing of what to do (`qr`, `card`, `slot`, `locker` with its number); decorative. */
export function pictogram(kind, n) {
  const drawing = svg("svg", { viewBox: "0 0 160 120", focusable: "false" }, ...DRAWINGS[kind](n));
  return h("div", { class: `pictogram ${kind}`, "aria-hidden": "true" }, drawing);
}

/**
 * A QR code from its module rows (strings of 0/1, 1 dark, as the daemon's
 * vietqrPayload gives them), drawn as one SVG path with the 4-module quiet zone.
 */
export function qrCode(rows, label) {
  const size = rows.length + 8;
  let d = "";
  rows.forEach((row, y) => {
    for (let x = 0; x < row.length; x += 1) if (row[x] === "1") d += `M${x + 4} ${y + 4}h1v1h-1z`;
  });
  const drawing = svg(
    "svg",
    { viewBox: `0 0 ${size} ${size}`, "shape-rendering": "crispEdges", role: "img", "aria-label": label },
    svg("rect", { width: size, height: size, fill: "#ffffff" }),
    svg("path", { d, fill: "#000000" }),
  );
  return h("div", { class: "qr-code" }, drawing);
}

/** An indeterminate spinner for waits without a measurable progress. */
export function spinner(label) {
  return h("div", { class: "spinner", role: "status", "aria-label": label });
}

export class Stage {
  constructor(main) {
    this.main = main;
    this.id = null;
    this.render = null;
  }

  /** Show a new screen: `render()` returns the screen's nodes; focus goes to its heading. */
  show(id, render) {
    this.id = id;
    this.render = render;
    this._draw(true);
  }

  /** Render the current screen again (live values, language). */
  refresh() {
    if (this.render) this._draw(false);
  }

  _draw(moveFocus) {
    const focusedId = document.activeElement?.id;
    const typed = new Map();
    for (const input of this.main.querySelectorAll("input[id]")) typed.set(input.id, input.value);
    this.main.replaceChildren(...[this.render()].flat().filter((n) => n !== null && n !== undefined && n !== false));
    this.main.dataset.screen = this.id;
    for (const [id, value] of typed) {
      const input = this.main.querySelector(`#${CSS.escape(id)}`);
      if (input && !moveFocus) input.value = value;
    }
    const again = focusedId && !moveFocus ? this.main.querySelector(`#${CSS.escape(focusedId)}`) : null;
    if (again) again.focus();
    else if (moveFocus) this.main.querySelector("h1")?.focus();
  }
}
