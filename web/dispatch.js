// The server-frame dispatcher: the one place every frame that arrives on the
// socket is handled, handing each to the module that owns its state. It also
// owns the inbox cursor (where a reconnect resumes the replay).
//
// Invariant: the stored cursor only moves forward, and only past events we
// processed.

import * as store from './store.js';
import { isControlFrameRef, isEventKind } from './protocol.js';
import { currentSession, me } from './session.js';
import { convs, ensureConv, addMessage, fetchDetails, maxLoadedSeq, applySettings, convTitle, isMuted } from './model.js';
import { alertNewMessage } from './notify.js';
import { profile } from './profile.js';
import * as limits from './server-limits.js';
import * as outbox from './outbox.js';
import * as receipts from './receipts.js';
import * as typing from './typing.js';
import * as presence from './presence.js';
import { refreshAfterConnect, catchUp, rememberConversations } from './history.js';
import { errorText } from './format.js';
import { scheduleRender, renderHeader } from './ui/refresh.js';
import { toast } from './ui/toast.js';

/** @typedef {import('./api.js').Message} Message */

/** Head cursor from the last `ready` frame. */
let readyCursor = /** @type {number|null} */ (null);

/** The cursor to authenticate a new socket with (null: none stored, start at the head). */
export function storedCursor() {
  return store.loadCursor(me());
}

/** @param {number} cursor */
function advanceCursor(cursor) {
  if (!currentSession()) return;
  const cur = store.loadCursor(me());
  if (cur === null || cursor > cur) store.saveCursor(me(), cursor);
}

/** Handle one server frame (the connection has already dealt with `pong` and a revoked token). @param {any} f */
export function onFrame(f) {
  switch (f.type) {
    case 'ready': onReady(f); break;
    case 'synced':
      if (typeof f.cursor === 'number') advanceCursor(f.cursor);
      break;
    case 'message': onMessageFrame(f); break;
    case 'sent': onSentFrame(f); break;
    case 'receipt': receipts.applyReceipt(f); break;
    case 'receipt_summary': receipts.applySummary(f); break;
    case 'typing': typing.applyTypingFrame(f); break;
    case 'presence':
      if (f.user_id) {
        presence.applyPresenceFrame(f);
        if (!f.online) typing.clearUserEverywhere(f.user_id);
        renderHeader();
        scheduleRender();
      }
      break;
    case 'conversation_settings':
      // Mute, pin or archive changed on one of my devices (this one included).
      if (f.conversation_id) applySettings(f.conversation_id, f);
      break;
    case 'error': onErrorFrame(f); break;
    default: break; // unknown frames from a newer server are ignored
  }
}

/** @param {{cursor: number, user_id: string}} f */
function onReady(f) {
  readyCursor = typeof f.cursor === 'number' ? f.cursor : null;
  limits.applyReady(f);
  // With no stored cursor there is no replay: we start from the head and
  // read the state over HTTP below.
  if (store.loadCursor(me()) === null && readyCursor !== null) store.saveCursor(me(), readyCursor);
  presence.forgetSubscription();
  presence.syncSubscription();
  outbox.flush();
  receipts.flushDelivered();
  refreshAfterConnect();
}

/** @param {Message & {cursor?: number}} f */
function onMessageFrame(f) {
  const { type, cursor, ...m } = /** @type {any} */ (f);
  const known = convs.has(m.conversation_id);
  const c = ensureConv(m.conversation_id);
  const before = maxLoadedSeq(c);
  const isNew = addMessage(m, { live: true });
  if (typeof cursor === 'number') advanceCursor(cursor);
  if (!known) fetchDetails(c).then(rememberConversations);
  rememberConversations();
  if (m.sender_id !== me()) {
    typing.clearTypingOf(c.id, m.sender_id);
    receipts.queueDelivered(c, m.seq);
    const mine = profile();
    // Edits, reactions and system lines are not news worth a sound.
    if (isNew && !isEventKind(m.kind) && m.kind !== 'system') alertNewMessage(m, convTitle(c), isMuted(c), !!(mine && mine.push_previews));
  }
  if (isNew && c.historyLoaded && before && m.seq > before + 1) catchUp(c);
  scheduleRender();
}

/** @param {{client_msg_id: string, conversation_id: string, seq: number, message_id: string, sent_at_ms: number}} f */
function onSentFrame(f) {
  const item = outbox.find(f.client_msg_id);
  if (!item) return;
  addMessage({
    conversation_id: f.conversation_id || item.conversation_id, seq: f.seq, message_id: f.message_id,
    sender_id: me(), client_msg_id: f.client_msg_id, sent_at_ms: f.sent_at_ms || Date.now(),
    kind: item.media && item.media.media_id ? String(item.kind) : 'text', text: item.text, reply_to_seq: item.reply_to_seq ?? null,
    ...(item.media && item.media.media_id ? { media: [/** @type {any} */ (item.media)] } : {}),
  });
  outbox.remove(f.client_msg_id);
  scheduleRender();
}

/** @param {{code: string, message?: string, ref?: string, retry_after_ms?: number}} f */
function onErrorFrame(f) {
  const item = f.ref ? outbox.find(f.ref) : null;
  if (item) {
    outbox.refused(item, f.code, f.retry_after_ms);
    return;
  }
  if (f.code === 'resync_required') {
    toast(errorText('resync_required'), 'info');
    store.saveCursor(me(), readyCursor);
    refreshAfterConnect({ resync: true });
    return;
  }
  if (isControlFrameRef(f.ref)) {
    console.warn('server refused', f.ref, f.code, f.message);
    return;
  }
  toast(errorText(f.code, { retryAfterMs: f.retry_after_ms }));
}
