// One gateway and one browser per test, torn down in the right order (browser first, so the page does
// not log reconnect attempts into the next test), even when the test fails half-way.

import { launch, DESKTOP } from "./browser.mjs";
import { startGateway } from "./gateway.mjs";

/**
 * @param {import("node:test").TestContext} t
 * @param {{ name: string, browser?: object }} options
 */
export async function setup(t, { name, browser: browserOptions = DESKTOP }) {
  const gateways = [];
  let browser = null;
  t.after(async () => {
    if (browser) await browser.close();
    await Promise.all(gateways.map((g) => g.stop("SIGKILL")));
  });
  const start = async (listen, extraArgs = []) => {
    const gateway = await startGateway({ name, listen, extraArgs });
    gateways.push(gateway);
    return gateway;
  };
  const gateway = await start();
  browser = await launch(browserOptions);
  return { gateway, browser, page: browser.page, startGateway: start };
}
