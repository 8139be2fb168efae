// Starts the real gateway binary with the embedded component, as a person would run it, and reads the
// addresses it bound (public and admin) from its one stable start-up log line.

import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { ROOT, OUT_DIR } from "./paths.mjs";

const BIN = resolve(ROOT, process.env.SIDESTREAM_GATEWAY_BIN ?? "target/release/sidestream-gateway");
const COMPONENT = resolve(
  ROOT,
  process.env.SIDESTREAM_COMPONENT ?? "target/wasm32-wasip2/release/sidestream_component.wasm",
);
/** Compiling the component at start-up takes a few seconds on a busy 2-core machine. */
const START_TIMEOUT_MS = 60_000;
const LISTENING = /listening addr=(\S+)(?: admin=(\S+))?/;
// tracing may colour its fields; the address must still be found.
const ANSI = /\x1b\[[0-9;]*m/g;

let started = 0;

export class Gateway {
  /**
   * @param {import("node:child_process").ChildProcess} child
   * @param {string} addr
   * @param {string | undefined} admin the admin listener's address (/metrics)
   * @param {string} logPath
   */
  constructor(child, addr, admin, logPath) {
    this.child = child;
    this.addr = addr;
    this.admin = admin;
    this.logPath = logPath;
    /** @type {Promise<{ code: number | null, signal: string | null }>} */
    this.exited = new Promise((done) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        done({ code: child.exitCode, signal: child.signalCode });
      } else {
        child.once("exit", (code, signal) => done({ code, signal }));
      }
    });
  }

  /** http://addr/ plus an optional path and query. */
  url(path = "/") {
    return `http://${this.addr}${path}`;
  }

  /**
   * The gateway's own count of WebSocket closes, by who closed and with which code, from the admin
   * port's /metrics: what the server saw, not what the page says.
   * @returns {Promise<Record<string, number>>} e.g. { "client 1000": 1, "server 1001": 2 }
   */
  async closes() {
    if (!this.admin) throw new Error(`no admin address in the start-up line; see ${this.logPath}`);
    const text = await (await fetch(`http://${this.admin}/metrics`)).text();
    const closes = {};
    for (const m of text.matchAll(/^sidestream_ws_closes_total\{by="(\w+)",code="(\w+)"\} (\d+)$/gm)) {
      closes[`${m[1]} ${m[2]}`] = Number(m[3]);
    }
    return closes;
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends a signal and waits for the process to exit (SIGKILL after `timeoutMs`). */
  async stop(signal = "SIGKILL", timeoutMs = 30_000) {
    if (!this.running) return this.exited;
    this.child.kill(signal);
    let timer;
    const timeout = new Promise((done) => {
      timer = setTimeout(() => {
        this.child.kill("SIGKILL");
        done(null);
      }, timeoutMs);
    });
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (result === null) throw new Error(`gateway ignored ${signal} for ${timeoutMs} ms; see ${this.logPath}`);
    return result;
  }
}

/**
 * Starts `sidestream-gateway --component <wasm>` on `listen` (port 0 by default) with fast pushes.
 * @param {{ listen?: string, name?: string, extraArgs?: string[] }} options
 */
export async function startGateway({ listen = "127.0.0.1:0", name = "gateway", extraArgs = [] } = {}) {
  const logDir = join(OUT_DIR, "logs");
  mkdirSync(logDir, { recursive: true });
  const logPath = join(logDir, `${name}-${process.pid}-${++started}.log`);
  const log = createWriteStream(logPath);
  const args = [
    "--listen", listen,
    // Several gateways run at once: each takes a free admin port.
    "--admin-listen", "127.0.0.1:0",
    "--component", COMPONENT,
    // Fast pushes keep the tests short: two pushes arrive within a second.
    "--push-min", "100ms",
    "--push-max", "400ms",
    ...extraArgs,
  ];
  log.write(`$ ${BIN} ${args.join(" ")}\n`);
  const child = spawn(BIN, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: process.env.RUST_LOG ?? "info" },
  });

  let onError;
  let onExit;
  const [addr, admin] = await new Promise((done, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`no "listening addr=" line within ${START_TIMEOUT_MS} ms; see ${logPath}`));
    }, START_TIMEOUT_MS);
    onError = (err) => {
      clearTimeout(timer);
      fail(new Error(`cannot start ${BIN}: ${err.message} (build it first: make gateway-release)`));
    };
    onExit = (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`gateway exited (code ${code}, signal ${signal}) before listening; see ${logPath}`));
    };
    child.once("error", onError);
    child.once("exit", onExit);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        log.write(`${line}\n`);
        const found = LISTENING.exec(line.replace(ANSI, ""));
        if (found) {
          clearTimeout(timer);
          done([found[1], found[2]]);
        }
      });
    }
  });
  child.off("error", onError);
  child.off("exit", onExit);
  return new Gateway(child, addr, admin, logPath);
}
