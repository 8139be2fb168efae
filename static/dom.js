// What both of the page's panels (app.js, room-panel.js) need of the document.

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
