// Typing indicators both ways: telling the others while the user types (sent
// again now and then, stopped when idle), and who is typing where, each
// entry expiring on its own if the stop never arrives.
//
// Typing frames go through a token bucket well inside the server's limit
// (`typing_rate_per_sec`, 5/s per socket, burst 10): several quick messages
// never trip it. A send needs no "stopped" frame: the message itself ends
// the indicator on the other side.

import * as link from './link.js';
import { typingFrame } from './protocol.js';
import { me } from './session.js';
import { renderHeader } from './ui/refresh.js';

const TYPING_RESEND_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_EXPIRE_MS = 6000;

/** conversation -> user -> expiry timer */
const typing = /** @type {Map<string, Map<string, ReturnType<typeof setTimeout>>>} */ (new Map());
/** Where I am typing, when I last said so, and the timer that says I stopped. */
const myTyping = { convId: /** @type {string|null} */ (null), lastSentMs: 0, idleTimer: /** @type {any} */ (null) };

/** Our budget: 1 frame per second sustained, bursts of 4 (the server allows 5/s, burst 10). */
export const TYPING_BUCKET = { ratePerSec: 1, burst: 4 };
const bucket = { tokens: TYPING_BUCKET.burst, atMs: 0 };

/** Take a token if there is one. @param {number} now */
function takeToken(now) {
  if (bucket.atMs) bucket.tokens = Math.min(TYPING_BUCKET.burst, bucket.tokens + ((now - bucket.atMs) / 1000) * TYPING_BUCKET.ratePerSec);
  bucket.atMs = now;
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

/** @param {string|null} convId @param {boolean} active @returns {boolean} whether it went out */
function sendTyping(convId, active) {
  if (!convId) return false;
  if (!takeToken(Date.now())) return false;
  return link.send(typingFrame(convId, active));
}

/**
 * The composer of `convId` now holds `text`: start, keep up or stop my
 * typing indicator.
 * @param {string} convId @param {string} text
 */
export function composerChanged(convId, text) {
  const t = myTyping;
  if (!text.trim()) { stopTyping(); return; }
  const now = Date.now();
  if (t.convId !== convId || now - t.lastSentMs > TYPING_RESEND_MS) {
    if (t.convId && t.convId !== convId) sendTyping(t.convId, false);
    // Over budget: skip this one; the next keystroke tries again.
    if (sendTyping(convId, true)) {
      t.convId = convId;
      t.lastSentMs = now;
    }
  }
  clearTimeout(t.idleTimer);
  t.idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

/**
 * Tell the others I stopped typing (left the chat, went idle). After a send
 * (`sent`), no frame goes: the message ends the indicator on the other
 * side, and the next keystroke within the resend period needs no new
 * "typing" either (the others saw the message, and it keeps the budget for
 * a burst of quick messages).
 * @param {{sent?: boolean}} [opts]
 */
export function stopTyping(opts = {}) {
  const t = myTyping;
  clearTimeout(t.idleTimer);
  if (opts.sent) {
    // Keep convId/lastSentMs: typing again soon counts as still typing,
    // and the idle timer below still says "stopped" if nothing follows.
    if (t.convId) t.idleTimer = setTimeout(() => { t.convId = null; t.lastSentMs = 0; }, TYPING_IDLE_MS);
    return;
  }
  if (t.convId) sendTyping(t.convId, false);
  t.convId = null;
  t.lastSentMs = 0;
}

/** A member's `typing` frame. @param {{conversation_id: string, user_id: string, active: boolean}} f */
export function applyTypingFrame(f) {
  if (!f.conversation_id || !f.user_id || f.user_id === me()) return;
  let m = typing.get(f.conversation_id);
  if (!m) { m = new Map(); typing.set(f.conversation_id, m); }
  clearTimeout(m.get(f.user_id));
  if (f.active) {
    const map = m;
    map.set(f.user_id, setTimeout(() => { map.delete(f.user_id); renderHeader(); }, TYPING_EXPIRE_MS));
  } else {
    m.delete(f.user_id);
  }
  renderHeader();
}

/** `userId` is no longer typing in `convId` (their message arrived). @param {string} convId @param {string} userId */
export function clearTypingOf(convId, userId) {
  const m = typing.get(convId);
  if (m && m.has(userId)) { clearTimeout(m.get(userId)); m.delete(userId); }
}

/** `userId` went offline: they type nowhere. @param {string} userId */
export function clearUserEverywhere(userId) {
  for (const id of typing.keys()) clearTypingOf(id, userId);
}

/** Forget who is typing (disconnected: only known while connected). */
export function clearAll() {
  for (const m of typing.values()) for (const t of m.values()) clearTimeout(t);
  typing.clear();
}

/** Who is typing in `convId`. @param {string} convId */
export function typersIn(convId) {
  return [...(typing.get(convId) || new Map()).keys()];
}
