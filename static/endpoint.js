// Where the page opens its WebSocket: its own origin's /ws (or the path of the app `?app=` chose, see
// apps.js), or a `?ws=` override on that same origin.
//
// Same origin only, like the CSP's `connect-src 'self'`: whoever can put a link in front of the user
// chooses the query string, and a socket on another host would receive everything the user types.
// The two guards overlap on purpose; this one also tells the user, in the log, that the link was odd.

/**
 * The WebSocket URL for a page at `pageHref`, honouring `override` when it names the same origin.
 * @param {string | null} override `?ws=`: a path (`/ws?push=off`) or an absolute ws(s):/http(s): URL
 * @param {string} pageHref the page's own URL (`location.href`)
 * @param {string} path where the socket is without an override (the app's path)
 * @returns {{ url: string, ignored: boolean }} `ignored` when an override was given but not taken
 */
export function socketUrl(override, pageHref, path = "/ws") {
  const page = new URL(pageHref);
  // The scheme a same-origin socket has: ws: under http:, wss: under https: (never a downgrade).
  const scheme = page.protocol === "https:" ? "wss:" : "ws:";
  const fallback = new URL(path, page);
  fallback.protocol = scheme;
  if (override === null || override === "") return { url: fallback.href, ignored: false };
  let u;
  try {
    u = new URL(override, page);
  } catch {
    return { url: fallback.href, ignored: true };
  }
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  // `host` carries the port with default ports normalised away, so ws://h:80 is http://h's origin.
  if (u.protocol !== scheme || u.host !== page.host) {
    return { url: fallback.href, ignored: true };
  }
  // A fragment makes the WebSocket constructor throw; it means nothing to a socket anyway.
  u.hash = "";
  return { url: u.href, ignored: false };
}
