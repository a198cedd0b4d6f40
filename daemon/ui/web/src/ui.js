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
