// Presence: who is online or when they were last seen, for the members of
// the open chat (the other member of a direct chat, or a group's members, up
// to the server's subscription limit), held as this socket's subscriptions.

import * as link from './link.js';
import { presenceSubscribeFrame, presenceUnsubscribeFrame } from './protocol.js';
import { api, me } from './session.js';
import { openConv, otherMember } from './model.js';
import { renderHeader } from './ui/refresh.js';

/** @typedef {{online: boolean, last_seen_ms?: number, viaWs?: boolean}} Presence */

/** The server refuses more than 256 subscriptions per socket; stay well below. */
export const MAX_PRESENCE_SUBSCRIPTIONS = 200;

/** @type {Map<string, Presence>} */
const presence = new Map();
/** The users whose presence this socket is subscribed to. */
const subscribed = /** @type {Set<string>} */ (new Set());

/** @param {string} userId @returns {Presence|undefined} */
export function presenceOf(userId) { return presence.get(userId); }

/** Forget what we know (disconnected: presence is only known while connected). */
export function clear() { presence.clear(); }

/** Forget everything (log out). */
export function reset() {
  presence.clear();
  subscribed.clear();
}

/** A new socket has no subscriptions. */
export function forgetSubscription() { subscribed.clear(); }

/** A `presence` frame. @param {{user_id: string, online: boolean, last_seen_ms?: number}} f */
export function applyPresenceFrame(f) {
  presence.set(f.user_id, { online: !!f.online, last_seen_ms: f.last_seen_ms, viaWs: true });
}

/** Whose presence the open chat shows. */
function wanted() {
  const c = openConv();
  if (!c) return [];
  if (c.kind === 'direct') {
    const other = otherMember(c);
    return other ? [other] : [];
  }
  if (c.left) return [];
  return c.memberIds.filter((id) => id !== me()).slice(0, MAX_PRESENCE_SUBSCRIPTIONS);
}

/** Subscribe to the presence of the open chat's other members only. */
export function syncSubscription() {
  const want = new Set(wanted());
  const drop = [...subscribed].filter((id) => !want.has(id));
  const add = [...want].filter((id) => !subscribed.has(id));
  if (drop.length && link.send(presenceUnsubscribeFrame(drop))) for (const id of drop) subscribed.delete(id);
  if (add.length && link.send(presenceSubscribeFrame(add))) for (const id of add) subscribed.add(id);
  const c = openConv();
  // A direct chat shows presence before the socket is up: ask over HTTP once.
  if (c && c.kind === 'direct') {
    for (const id of want) {
      if (presence.has(id)) continue;
      api.presence(id).then((p) => {
        if (p && !(presence.get(id) || {}).viaWs) {
          presence.set(id, { online: !!p.online, last_seen_ms: p.last_seen_ms });
          renderHeader();
        }
      }).catch(() => {});
    }
  }
}
