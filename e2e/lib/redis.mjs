// A real redis-server (Debian's package; `make test-e2e` installs it through scripts/redis.sh) on a
// free port, in a temporary directory of its own, keeping nothing on disk: never a mock. The channel
// history two gateways share lives in it.

import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { OUT_DIR } from "./paths.mjs";

const BIN = process.env.REDIS_SERVER_BIN ?? "redis-server";
const START_TIMEOUT_MS = 20_000;
/** The line redis-server logs once it takes connections. */
const READY = /Ready to accept connections/;

/** A port nothing listens on at this moment. */
function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
      server.close(() => done(port));
    });
  });
}

/**
 * Starts redis-server on 127.0.0.1 and waits for its ready line.
 * @param {{ name?: string }} options
 * @returns {Promise<{ url: string, port: number, stop: () => Promise<void> }>}
 */
export async function startRedis({ name = "redis" } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "sidestream-e2e-redis-"));
  const port = await freePort();
  mkdirSync(join(OUT_DIR, "logs"), { recursive: true });
  const logPath = join(OUT_DIR, "logs", `${name}-${process.pid}-${port}.log`);
  const log = createWriteStream(logPath);
  const args = ["--bind", "127.0.0.1", "--port", String(port), "--dir", dir, "--save", "", "--appendonly", "no"];
  log.write(`$ ${BIN} ${args.join(" ")}\n`);
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((done) => child.once("exit", done));
  await new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`redis-server not ready within ${START_TIMEOUT_MS} ms; see ${logPath}`)), START_TIMEOUT_MS);
    child.once("error", (err) => {
      clearTimeout(timer);
      fail(new Error(`cannot start ${BIN}: ${err.message} (make redis installs it)`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`redis-server exited (code ${code}) before it was ready; see ${logPath}`));
    });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        log.write(`${line}\n`);
        if (READY.test(line)) {
          clearTimeout(timer);
          done(undefined);
        }
      });
    }
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
