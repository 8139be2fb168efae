// `/echo`: every message back to its sender as {"type":"echo","n":N,"text":...}, where N counts the
// connection's messages. The count lives in the connection's meta (Set-Meta-n), so the component
// keeps nothing between requests. A Close is answered with the same Close.
import { WebSocketContext, WebSocketEvent, type IWebSocketEvent } from '@fanoutio/grip';

const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function echo(ctx: WebSocketContext, events: IWebSocketEvent[]): void {
  let n = Number.parseInt(ctx.meta['n'] ?? '0', 10) || 0;
  for (const event of events) {
    const content = asBytes(event.getContent());
    const type = event.getType();
    if (type === 'OPEN') {
      ctx.accept();
    } else if (type === 'TEXT') {
      let message: string;
      try {
        message = text.decode(content);
      } catch {
        ctx.outEvents.push(closeEvent(1002, 'malformed events'));
        break;
      }
      n += 1;
      ctx.send(JSON.stringify({ type: 'echo', n, text: message }));
    } else if (type === 'BINARY') {
      n += 1;
      ctx.sendBinary(content);
    } else if (type === 'CLOSE') {
      // The same code and reason back (WebSocketContext.close would send the code alone).
      ctx.outEvents.push(content.length >= 2 ? new WebSocketEvent('CLOSE', content) : closeEvent(1000, ''));
      break;
    } else if (type === 'DISCONNECT') {
      break;
    }
  }
  if (n > 0) ctx.meta['n'] = String(n);
}

export function asBytes(content: string | Uint8Array | null): Uint8Array {
  if (content == null) return new Uint8Array();
  return typeof content === 'string' ? new TextEncoder().encode(content) : content;
}

/** A CLOSE event: the code in two bytes, then the reason. */
export function closeEvent(code: number, reason: string): WebSocketEvent {
  const reasonBytes = new TextEncoder().encode(reason);
  const content = new Uint8Array(2 + reasonBytes.length);
  content.set([code >> 8, code & 0xff]);
  content.set(reasonBytes, 2);
  return new WebSocketEvent('CLOSE', content);
}
