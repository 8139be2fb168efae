// Bun's WebSocket server (uWebSockets inside) as an echo peer for sidestream-bench.
// Run: node_modules/.bin/bun echo.ts [port]   (port 0 = any free port)
// Prints `listening addr=127.0.0.1:PORT` once bound, the same line the gateway logs.
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response("ok\n");
  },
  websocket: {
    message(ws, message) {
      ws.send(message);
    },
  },
});

console.log(`listening addr=127.0.0.1:${server.port}`);
