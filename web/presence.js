// Presence: who is online or when they were last seen, for the other member
// of the open direct chat only (the one subscription this client holds).

import * as link from './link.js';
import { presenceSubscribeFrame, presenceUnsubscribeFrame } from './protocol.js';
import { api } from './session.js';
import { openConv, otherMember } from './model.js';
import { renderHeader } from './ui/refresh.js';

/** @typedef {{online: boolean, last_seen_ms?: number, viaWs?: boolean}} Presence */

/** @type {Map<string, Presence>} */
const presence = new Map();
/** The user whose presence this socket is subscribed to. @type {string|null} */
let subscribed = null;

/** @param {string} userId @returns {Presence|undefined} */
export function presenceOf(userId) { return presence.get(userId); }

/** Forget what we know (disconnected: presence is only known while connected). */
export function clear() { presence.clear(); }

/** Forget everything (log out). */
export function reset() {
  presence.clear();
  subscribed = null;
}

/** A new socket has no subscriptions. */
export function forgetSubscription() { subscribed = null; }

/** A `presence` frame. @param {{user_id: string, online: boolean, last_seen_ms?: number}} f */
export function applyPresenceFrame(f) {
  presence.set(f.user_id, { online: !!f.online, last_seen_ms: f.last_seen_ms, viaWs: true });
}

/** Subscribe to presence of the open direct chat's other member only. */
export function syncSubscription() {
  const c = openConv();
  const want = c && c.kind === 'direct' ? otherMember(c) : null;
  if (want === subscribed) return;
  if (subscribed) link.send(presenceUnsubscribeFrame([subscribed]));
  subscribed = null;
  if (want) {
    if (link.send(presenceSubscribeFrame([want]))) subscribed = want;
    if (!presence.has(want)) {
      api.presence(want).then((p) => {
        if (p && !(presence.get(want) || {}).viaWs) {
          presence.set(want, { online: !!p.online, last_seen_ms: p.last_seen_ms });
          renderHeader();
        }
      }).catch(() => {});
    }
  }
}
