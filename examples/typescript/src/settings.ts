// The app's settings, read the Spin way: Spin variables (spin.toml's [variables], bound in
// [component.sidestream-typescript.variables]), through fermyon:spin/variables@2.0.0.
import { get } from 'fermyon:spin/variables@2.0.0';

export interface Settings {
  /** The keys a request's Grip-Sig may be signed with: grip_key, and grip_key_previous if set. */
  gripKeys: string[];
  publishUrl: string;
  publishToken: string;
}

/** A variable's value, or `fallback` when the host has none by that name. */
function variable(name: string, fallback?: string): string {
  try {
    return get(name);
  } catch (error) {
    if (fallback !== undefined) return fallback;
    const payload = (error as { payload?: { tag?: string; val?: string } }).payload;
    throw new Error(`the Spin variable ${name} cannot be read: ${payload?.tag ?? error} ${payload?.val ?? ''}`);
  }
}

export function settings(): Settings {
  const previous = variable('grip_key_previous', '');
  return {
    gripKeys: [variable('grip_key'), ...(previous ? [previous] : [])],
    publishUrl: variable('publish_url', 'http://127.0.0.1:9090/publish/'),
    publishToken: variable('publish_token', ''),
  };
}
