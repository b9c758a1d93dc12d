// My settings of a chat (§11): mute, pin and archive, synced to my other
// devices by the server, and the users I block. Blocking is per user; it
// shows in the direct chat with that user.

import { ApiError } from './api.js';
import { api } from './session.js';
import { applySettings } from './model.js';
import { errorText } from './format.js';
import { scheduleRender } from './ui/refresh.js';
import { toast } from './ui/toast.js';

/** @typedef {import('./model.js').Conv} Conv */

/** Users I block. */
let blocked = /** @type {Set<string>} */ (new Set());

/** Read my block list (session start). */
export async function loadBlocks() {
  try {
    const res = await api.blocks();
    blocked = new Set(res.user_ids || []);
    scheduleRender();
  } catch { /* read again on the next session start */ }
}

/** Forget it (log out). */
export function resetBlocks() { blocked = new Set(); }

/** @param {string} userId */
export function isBlocked(userId) { return blocked.has(userId); }

/** Block or unblock a user. @param {string} userId @param {boolean} on */
export async function setBlocked(userId, on) {
  try {
    await api.setBlocked(userId, on);
    if (on) blocked.add(userId); else blocked.delete(userId);
  } catch (e) {
    toast(errorText(e instanceof ApiError ? e.code : 'internal'));
  }
  scheduleRender();
}

/**
 * Change my settings of `c` (absent fields keep their value). The answer is
 * applied at once; my other devices hear it from the server.
 * @param {Conv} c @param {{muted_until_ms?: number, pinned?: boolean, archived?: boolean}} change
 */
export async function updateChatSettings(c, change) {
  try {
    applySettings(c.id, await api.conversationSettings(c.id, change));
  } catch (e) {
    toast(errorText(e instanceof ApiError ? e.code : 'internal'));
  }
}
