// What both of the page's panels (stream-panel.js, room-panel.js) need of the document: the elements,
// the log's cap, a text-only <span>, and the one clock that ticks for both (page/tests/status.test.mjs).

/** A log keeps this many entries; older ones are dropped so a long-open tab stays small. */
export const LOG_LIMIT = 500;

/**
 * The element with this id, of this type: a page whose HTML and script disagree fails at load, loudly.
 * @template {Element} T
 * @param {string} id
 * @param {{ new (): T, prototype: T, name: string }} type
 * @returns {T}
 */
export function $(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`#${id} is missing or not a ${type.name}`);
  return node;
}

/**
 * A `<span>` of this class holding `text`, as text: what people typed never becomes HTML.
 * @param {string} className
 * @param {string} text
 */
export function span(className, text) {
  const s = document.createElement("span");
  s.className = className;
  s.textContent = text;
  return s;
}

/**
 * Where a ticker learns that the tab was hidden or shown: the document, or a stand-in in a test.
 * @typedef {{ visibilityState: DocumentVisibilityState } & Pick<EventTarget, "addEventListener">} Visibility
 */

/**
 * Calls `tick` every `ms` while the page is visible, and not at all while its tab is hidden: nobody
 * sees a hidden tab's counters or countdowns, and its timer would only cost battery. Shown again, it
 * ticks at once, then every `ms`.
 * @param {() => void} tick
 * @param {number} ms
 * @param {{ doc?: Visibility, timers?: { setInterval: (fn: () => void, ms: number) => unknown, clearInterval: (handle: any) => void } }} [env]
 */
export function startTicker(tick, ms, { doc = document, timers = globalThis } = {}) {
  /** @type {unknown} */
  let handle = null;
  const follow = () => {
    const visible = doc.visibilityState === "visible";
    if (visible && handle === null) {
      tick();
      handle = timers.setInterval(tick, ms);
    } else if (!visible && handle !== null) {
      timers.clearInterval(handle);
      handle = null;
    }
  };
  doc.addEventListener("visibilitychange", follow);
  follow();
}

/**
 * Keeps the custom property `name` on the root element at `element`'s laid-out height, for styles that
 * must leave room for it (the sticky header: what is scrolled into view stops below it).
 * @param {Element} element
 * @param {string} name e.g. "--topbar-height"
 */
export function followHeight(element, name) {
  const root = document.documentElement;
  const observer = new ResizeObserver(() => {
    root.style.setProperty(name, `${element.getBoundingClientRect().height}px`);
  });
  observer.observe(element, { box: "border-box" });
}
