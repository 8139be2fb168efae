// Minimal client: shows whether the page's own /ws endpoint is reachable.
const status = document.getElementById("status");
const url = new URL("/ws", location.href);
url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(url);
ws.addEventListener("open", () => { status.textContent = "connected"; });
ws.addEventListener("close", (e) => { status.textContent = `closed (${e.code})`; });
