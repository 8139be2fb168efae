// sidestream's WebSocket apps `/echo` and `/room` in a TypeScript Spin component. The gateway
// holds each WebSocket and sends its events here as WebSocket-over-HTTP requests (POST,
// application/websocket-events); @fanoutio/grip reads and writes them. Every request must carry
// the gateway's Grip-Sig; settings are Spin variables (settings.ts).
import {
  WebSocketContext,
  decodeWebSocketEvents,
  encodeWebSocketEvents,
  type IWebSocketEvent,
} from '@fanoutio/grip';
import { echo, closeEvent } from './echo.js';
import { room, type Publish } from './room.js';
import { settings, type Settings } from './settings.js';
import { verify } from './sig.js';

const APPS = ['/echo', '/room'];

const plain = (status: number, text: string) =>
  new Response(text, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });

/** A POST of application/websocket-events: what the gateway sends (grip's isWsOverHttp also wants
 * an Accept header, which a forged request may leave out: it must still meet the signature check). */
function isWebSocketEvents(request: Request): boolean {
  const media = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  return request.method === 'POST' && media === 'application/websocket-events';
}

async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (!APPS.includes(url.pathname)) return plain(404, 'not found\n');
  if (!isWebSocketEvents(request)) return plain(426, 'a WebSocket app: connect with a WebSocket client\n');
  const config = settings();
  // Before anything of the request is read: who sent it.
  const verdict = await verify(request.headers.get('grip-sig'), config.gripKeys);
  if (verdict === 'missing') return plain(401, 'a Grip-Sig is required\n');
  if (verdict === 'bad') return plain(403, 'the Grip-Sig is not valid\n');

  const meta: Record<string, string> = {};
  for (const [name, value] of request.headers) {
    if (name.toLowerCase().startsWith('meta-')) meta[name.toLowerCase().slice(5)] = fromByteString(value);
  }
  const connectionId = request.headers.get('connection-id') ?? '';
  let events: IWebSocketEvent[];
  const ctx = new WebSocketContext(connectionId, meta, []);
  try {
    events = decodeWebSocketEvents(new Uint8Array(await request.arrayBuffer()));
  } catch {
    events = [];
    ctx.outEvents.push(closeEvent(1002, 'malformed events'));
  }
  let publish: Publish | null = null;
  if (url.pathname === '/echo') {
    echo(ctx, events);
  } else {
    const outcome = room(ctx, events, { query: url.search.slice(1), connectionId, nowMs: Date.now() });
    if ('refuse' in outcome) return plain(400, outcome.refuse);
    publish = outcome.publish;
  }
  if (publish && !(await published(publish.body, config))) ctx.send(publish.ifFailed);
  const body = encodeWebSocketEvents(ctx.getOutgoingEvents()) as Uint8Array<ArrayBuffer>;
  const headers = Object.entries(ctx.toHeaders()).map(([name, value]): [string, string] => [name, toByteString(value)]);
  return new Response(body, { status: 200, headers });
}

// Header values are byte strings in JavaScript (one character per byte): a meta value such as a
// name in UTF-8 goes out as its bytes, as the Rust app sends it, and comes back the same way.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function toByteString(value: string): string {
  return String.fromCharCode(...new TextEncoder().encode(value));
}

function fromByteString(value: string): string {
  if (/[^\u0000-\u00ff]/.test(value)) return value;
  try {
    return utf8.decode(Uint8Array.from(value, (c) => c.charCodeAt(0)));
  } catch {
    return value;
  }
}

/** Posts a publish body to the gateway's publish API; whether it took it. */
async function published(body: string, config: Settings): Promise<boolean> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (config.publishToken) headers.authorization = `Bearer ${config.publishToken}`;
  try {
    const response = await fetch(config.publishUrl, { method: 'POST', headers, body });
    if (response.status === 200) return true;
    console.error(`the gateway did not take a publish: ${response.status}`);
  } catch (error) {
    console.error(`cannot reach the gateway to publish: ${error}`);
  }
  return false;
}

addEventListener('fetch', (event: FetchEvent) => event.respondWith(handle(event.request)));

interface FetchEvent extends Event {
  request: Request;
  respondWith(response: Promise<Response>): void;
}
declare function addEventListener(type: 'fetch', listener: (event: FetchEvent) => void): void;
