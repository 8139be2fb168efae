// `/room`: a chat room, as component/src/apps/room.rs. Every connection joins the room's channel
// (`room:NAME`, `?room=`, default lobby) from where it was (`?last=`); every message is published to
// it through the gateway's publish API, so everyone in the room, on every gateway, gets it in one
// order, with its position in the room's history as `id`. Objects are built with their keys in the
// order the Rust app writes them (sorted), so both answer byte for byte the same.
import { WebSocketContext, createWebSocketControlMessage, type IWebSocketEvent } from '@fanoutio/grip';
import { asBytes, closeEvent } from './echo.js';
import { param } from './query.js';

export const MAX_TEXT = 1000;
export const MAX_NAME = 32;

export interface RoomRequest {
  query: string;
  connectionId: string;
  nowMs: number;
}

/** What to publish, and what to tell the sender if the gateway does not take it. */
export interface Publish {
  body: string;
  ifFailed: string;
}

export type RoomOutcome = { refuse: string } | { publish: Publish | null };

// ignoreBOM: a leading U+FEFF is part of the text, as in Rust (TextDecoder drops it by default).
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// What Rust's str::trim takes away (Unicode White_Space); String.prototype.trim differs (U+0085, U+FEFF).
const EDGE_SPACE =
  /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;
const trim = (text: string) => text.replace(EDGE_SPACE, '');
const NOT_DELIVERED = 'your message was not delivered; send it again';

const channel = (room: string) => `room:${room}`;
const validRoom = (room: string) => /^[A-Za-z0-9_-]{1,32}$/.test(room);
const error = (text: string) => JSON.stringify({ text, type: 'error' });

/** A sender's name as given, trimmed; null when empty, too long or holding control characters. */
function validName(name: string): string | null {
  const trimmed = trim(name);
  const length = [...trimmed].length;
  return length > 0 && length <= MAX_NAME && !/\p{Cc}/u.test(trimmed) ? trimmed : null;
}

/** `guest-` and four hex digits of the connection id's FNV-1a hash: stable across requests. */
function guest(connectionId: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(connectionId)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return `guest-${(hash & 0xffff).toString(16).padStart(4, '0')}`;
}

export function room(ctx: WebSocketContext, events: IWebSocketEvent[], req: RoomRequest): RoomOutcome {
  const items: object[] = [];
  for (const event of events) {
    const type = event.getType();
    if (type === 'OPEN') {
      const room = param(req.query, 'room') ?? 'lobby';
      if (!validRoom(room)) return { refuse: 'a room name is 1 to 32 letters, digits, - or _\n' };
      const given = param(req.query, 'name');
      const name = given === null ? guest(req.connectionId) : validName(given);
      if (name === null) return { refuse: 'a name is 1 to 32 characters, none of them control characters\n' };
      ctx.accept();
      ctx.meta['room'] = room;
      ctx.meta['name'] = name;
      const last = param(req.query, 'last');
      const subscribe: Record<string, string> = { channel: channel(room) };
      if (last !== null) subscribe.since = [...last].slice(0, 64).join('');
      subscribe.gap = JSON.stringify({ room, type: 'gap' });
      ctx.sendControl(createWebSocketControlMessage('subscribe', subscribe));
      ctx.send(JSON.stringify({ at: req.nowMs, name, room, type: 'welcome' }));
    } else if (type === 'TEXT') {
      let text: string;
      try {
        text = trim(strict.decode(asBytes(event.getContent())));
      } catch {
        ctx.outEvents.push(closeEvent(1002, 'malformed events'));
        break;
      }
      if (text === '') continue;
      if ([...text].length > MAX_TEXT) {
        ctx.send(error(`a message holds at most ${MAX_TEXT} characters`));
        continue;
      }
      const { room, name } = ctx.meta;
      if (!room || !name) {
        ctx.outEvents.push(closeEvent(1011, 'the connection was not opened by this room'));
        break;
      }
      const sent = (Number.parseInt(ctx.meta['sent'] ?? '0', 10) || 0) + 1;
      const content = JSON.stringify({ at: req.nowMs, from: name, text, type: 'room' });
      items.push({
        channel: channel(room),
        formats: { 'ws-message': { content, 'id-key': 'id' } },
        id: `${req.connectionId}:${sent}`,
      });
      ctx.meta['sent'] = String(sent);
    } else if (type === 'BINARY') {
      ctx.send(error('the room takes text messages'));
    } else if (type === 'CLOSE') {
      const content = asBytes(event.getContent());
      ctx.outEvents.push(closeEvent(content.length >= 2 ? (content[0] << 8) | content[1] : 1000, ''));
      break;
    }
  }
  const publish = items.length > 0 ? { body: JSON.stringify({ items }), ifFailed: error(NOT_DELIVERED) } : null;
  return { publish };
}
