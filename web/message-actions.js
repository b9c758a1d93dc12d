// What the user does to a message that is already sent: edit it, delete it
// for everyone or only here ("for me", remembered in this browser), react to
// it, forward it to other chats. Events and forwards go over HTTP (each is
// idempotent by its `client_msg_id`); the answer is applied here at once,
// since the server does not push a device's own HTTP sends back to it.

import { ApiError } from './api.js';
import * as store from './store.js';
import { api, me } from './session.js';
import { ensureConv, addMessage } from './model.js';
import { errorText, newClientMsgId } from './format.js';
import { scheduleRender } from './ui/refresh.js';
import { toast } from './ui/toast.js';

/** @typedef {import('./api.js').Message} Message */
/** @typedef {import('./model.js').Conv} Conv */

/** Messages deleted for me, as `<conversation_id>:<seq>`. */
let hidden = /** @type {Set<string>} */ (new Set());

/** The signed-in user's hidden messages (session start). */
export function loadHidden() { hidden = new Set(store.loadHidden(me())); }

/** Forget them in memory (session end; storage keeps them). */
export function resetHidden() { hidden = new Set(); }

/** Whether the user deleted this message for themself. @param {string} convId @param {number} seq */
export function isHidden(convId, seq) { return hidden.has(`${convId}:${seq}`); }

/** "Delete for me": hide the message on this device. @param {Conv} c @param {number} seq */
export function hideMessage(c, seq) {
  hidden.add(`${c.id}:${seq}`);
  store.saveHidden(me(), [...hidden]);
  scheduleRender();
}

/**
 * Send an event and apply the server's answer; a refusal becomes a toast.
 * Resolves whether the server took it.
 * @param {Conv} c @param {'edit'|'delete'|'reaction'} kind @param {number} targetSeq
 * @param {{text?: string, emoji?: string}} [fields]
 */
async function sendEvent(c, kind, targetSeq, fields) {
  try {
    const res = await api.sendEvent(c.id, newClientMsgId(), kind, targetSeq, fields);
    const m = res && res.message;
    if (m) addMessage({ ...m, sender_id: m.sender_id || me() }, { live: true });
    scheduleRender();
    return true;
  } catch (e) {
    toast(errorText(e instanceof ApiError ? e.code : 'internal', { context: 'event' }));
    return false;
  }
}

/** Replace the text of my message. @param {Conv} c @param {number} seq @param {string} text */
export function editMessage(c, seq, text) { return sendEvent(c, 'edit', seq, { text }); }

/** Delete a message for everyone. @param {Conv} c @param {number} seq */
export function deleteForEveryone(c, seq) { return sendEvent(c, 'delete', seq); }

/** Set my reaction ('' removes it). @param {Conv} c @param {number} seq @param {string} emoji */
export function react(c, seq, emoji) { return sendEvent(c, 'reaction', seq, { emoji }); }

/**
 * Forward a message to each of `convIds` (flagged forwarded; media is
 * referenced again, not uploaded). Resolves how many chats took it.
 * @param {Message} m @param {string[]} convIds
 */
export async function forward(m, convIds) {
  let ok = 0;
  for (const id of convIds) {
    try {
      const res = await api.forwardMessage(id, newClientMsgId(), m);
      const copy = res && res.message;
      if (copy) addMessage({ ...copy, sender_id: copy.sender_id || me() });
      ensureConv(id).activityMs = Date.now();
      ok++;
    } catch (e) {
      toast(errorText(e instanceof ApiError ? e.code : 'internal', { context: 'send' }));
    }
  }
  scheduleRender();
  return ok;
}
