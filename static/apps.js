// The two WebSocket apps the page can talk to, and how the page's URL picks one.
//
// `?app=echo` opens the component's /echo, anything else (or nothing) the gateway's built-in /ws, so a
// link opens the app it was copied from. `?ws=` still replaces the socket's URL (same origin only, see
// endpoint.js) for whichever app `?app=` chose: it is a test's way to aim one app at a variant of its
// socket (`?ws=/ws?push=off`). Switching apps on the page drops `?ws=`: an override meant for one app
// says nothing about the other.

import { socketUrl } from "./endpoint.js";

/** @typedef {"ws" | "echo"} AppId */

/**
 * @typedef {object} App
 * @property {AppId} id its value of `?app=`
 * @property {string} path where its socket is on the page's origin
 * @property {string} label the switch's name for it
 * @property {boolean} pushes whether it sends anything unasked (the chart has nothing to wait for if not)
 */

/** @type {Readonly<Record<AppId, App>>} */
export const APPS = Object.freeze({
  ws: { id: "ws", path: "/ws", label: "Built-in /ws", pushes: true },
  echo: { id: "echo", path: "/echo", label: "Component /echo", pushes: false },
});

/** Without `?app=` the page shows the gateway's stream, as it always has. */
export const DEFAULT_APP = APPS.ws;

/**
 * The app `?app=` names.
 * @param {string | null} value
 * @returns {{ app: App, ignored: boolean }} `ignored` when a value was given that names no app
 */
export function appFromParam(value) {
  if (value === null || value === "") return { app: DEFAULT_APP, ignored: false };
  if (value === "ws" || value === "echo") return { app: APPS[value], ignored: false };
  return { app: DEFAULT_APP, ignored: true };
}

/**
 * The app and socket URL a page at `pageHref` starts with.
 * @param {string} pageHref the page's own URL (`location.href`)
 * @returns {{ app: App, url: string, ignoredApp: boolean, ignoredWs: boolean }}
 */
export function startingPoint(pageHref) {
  const params = new URL(pageHref).searchParams;
  const { app, ignored: ignoredApp } = appFromParam(params.get("app"));
  const { url, ignored: ignoredWs } = socketUrl(params.get("ws"), pageHref, app.path);
  return { app, url, ignoredApp, ignoredWs };
}

/**
 * The page's URL once the user switched to `app`: `?app=` names it (absent for the default, so the
 * plain link stays plain), `?ws=` is gone, every other parameter (the test knobs) and the fragment stay.
 * @param {App} app
 * @param {string} pageHref
 */
export function hrefForApp(app, pageHref) {
  const u = new URL(pageHref);
  if (app.id === DEFAULT_APP.id) u.searchParams.delete("app");
  else u.searchParams.set("app", app.id);
  u.searchParams.delete("ws");
  return u.href;
}
