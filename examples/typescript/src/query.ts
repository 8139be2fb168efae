// One query parameter, decoded as browsers encode forms (`+` is a space, `%XX` a byte): the first
// `name=value` pair; null when absent or when the bytes are not UTF-8. A stray `%` is kept.
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

export function param(query: string, name: string): string | null {
  const pair = query.split('&').find((p) => p.startsWith(name + '='));
  if (pair === undefined) return null;
  const raw = encoder.encode(pair.slice(name.length + 1));
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const hex = String.fromCharCode(raw[i + 1] ?? 0, raw[i + 2] ?? 0);
    if (raw[i] === 0x2b) {
      bytes.push(0x20);
    } else if (raw[i] === 0x25 && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(raw[i]);
    }
  }
  try {
    return strict.decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}
