// Whether a request comes from the gateway: its Grip-Sig, a JWT signed HS256 with one of the app's
// keys (as Pushpin signs), checked by @fanoutio/grip's validateSig (signature and expiry).
import { validateSig } from '@fanoutio/grip';

export type Verdict = 'signed' | 'missing' | 'bad';

const encoder = new TextEncoder();

/** The `alg` of a JWT's header, or null when it has none that can be read. */
function algOf(token: string): string | null {
  try {
    const part = token.split('.')[0].replace(/-/g, '+').replace(/_/g, '/');
    const header = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
    return typeof header.alg === 'string' ? header.alg : null;
  } catch {
    return null;
  }
}

export async function verify(token: string | null, keys: string[]): Promise<Verdict> {
  if (!token) return 'missing';
  // Only what the gateway signs with: `none` and other algorithms are refused whatever the key.
  if (algOf(token) !== 'HS256') return 'bad';
  for (const key of keys) {
    // The key as raw UTF-8 bytes, as Pushpin's sig_key (a string would be read as `base64:...`).
    if (key && (await validateSig(token, encoder.encode(key)))) return 'signed';
  }
  return 'bad';
}
