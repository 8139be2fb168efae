import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: paths in environment variables are relative to it. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** Screenshots and gateway logs land here (gitignored with the rest of target/). */
export const OUT_DIR = resolve(ROOT, process.env.SIDESTREAM_E2E_OUT ?? "target/e2e");
