// The outbox: messages typed by the user that the server has not
// acknowledged yet, persisted per user so they survive a reload, and the
// sending and resending of them (one in flight per conversation, in order).
// A photo, video, voice note or file is uploaded first, when its turn comes
// and the server is reachable (`media.js`), then sent like a text.
//
// Invariant: an item stays here until the server acknowledges it; resends
// use the same `client_msg_id`, so the server stores it once.

import { ApiError } from './api.js';
import * as store from './store.js';
import * as link from './link.js';
import { sendTextFrame, MEDIA_KINDS } from './protocol.js';
import * as media from './media.js';
import { api, currentSession, me } from './session.js';
import { ensureConv, addMessage } from './model.js';
import { errorText, byteLength, newClientMsgId } from './format.js';
import { scheduleRender } from './ui/refresh.js';
import { toast } from './ui/toast.js';

/** @typedef {import('./store.js').OutboxItem} OutboxItem */

/** Texts over this many bytes go over HTTP so they can never overflow a WS frame. */
const WS_TEXT_LIMIT_BYTES = 60 * 1024;
/** An attempt with no `sent` after this long is sent again. */
const ACK_TIMEOUT_MS = 10000;

/** @type {OutboxItem[]} */
let items = [];
/** client_msg_id -> time of the last attempt, -1 while an HTTP send is in flight (memory only) */
const attempts = /** @type {Map<string, number>} */ (new Map());
/** conversation -> no sends before this time (rate limited) */
const pausedUntil = /** @type {Map<string, number>} */ (new Map());
/** client_msg_id -> the upload of its file under way (memory only): how far, and how to stop it. */
const uploads = /** @type {Map<string, {progress: number, abort: () => void, cancelled: boolean}>} */ (new Map());

/** Load the signed-in user's outbox from storage. @param {string} userId */
export function load(userId) {
  items = store.loadOutbox(userId);
}

/** Forget everything (log out; the stored outbox stays for the next log-in). */
export function reset() {
  for (const up of uploads.values()) { up.cancelled = true; up.abort(); }
  uploads.clear();
  media.reset();
  items = [];
  attempts.clear();
  pausedUntil.clear();
}

/** All items, oldest first (read only). */
export function all() { return items; }

/** @param {string} convId */
export function itemsOf(convId) { return items.filter((o) => o.conversation_id === convId); }

/** @param {string} clientMsgId */
export function find(clientMsgId) { return items.find((o) => o.client_msg_id === clientMsgId) || null; }

/** @param {string} convId */
export function hasItemsFor(convId) { return items.some((o) => o.conversation_id === convId); }

/** How many items are still to be sent (failed ones are not). */
export function waitingCount() { return items.filter((o) => !o.failed).length; }

/** Per conversation, when its newest item was typed. */
export function pendingTimes() {
  const times = /** @type {Map<string, number>} */ (new Map());
  for (const o of items) times.set(o.conversation_id, Math.max(times.get(o.conversation_id) || 0, o.created_ms));
  return times;
}

function persist() {
  if (currentSession()) store.saveOutbox(me(), items);
}

/** The server has the message (or the user discarded it): drop it, send the next. @param {string} clientMsgId */
export function remove(clientMsgId) {
  const i = items.findIndex((o) => o.client_msg_id === clientMsgId);
  if (i < 0) return;
  const [item] = items.splice(i, 1);
  attempts.delete(clientMsgId);
  const up = uploads.get(clientMsgId);
  if (up) { up.cancelled = true; up.abort(); uploads.delete(clientMsgId); }
  if (isMedia(item)) media.forgetFile(clientMsgId);
  persist();
  // The next message of that conversation may go now.
  const next = items.find((o) => o.conversation_id === item.conversation_id && !o.failed);
  if (next && !attempts.has(next.client_msg_id)) trySend(next);
}

/**
 * Queue a text typed by the user (a reply to `replyToSeq` when given) and
 * send it when its turn comes.
 * @param {string} convId @param {string} text @param {number} [replyToSeq]
 */
export function sendText(convId, text, replyToSeq) {
  /** @type {OutboxItem} */
  const item = { client_msg_id: newClientMsgId(), conversation_id: convId, text, created_ms: Date.now() };
  if (replyToSeq) item.reply_to_seq = replyToSeq;
  enqueue(item);
}

/** Add a new item, and send it when its turn comes. @param {OutboxItem} item */
function enqueue(item) {
  items.push(item);
  persist();
  const c = ensureConv(item.conversation_id);
  c.activityMs = Math.max(c.activityMs, item.created_ms);
  trySend(item);
  if (link.state() !== 'open') link.reconnectNow();
  scheduleRender({ stickToBottom: true });
}

/** Whether an item is a photo, video, voice note or file. @param {OutboxItem} item */
export function isMedia(item) {
  return MEDIA_KINDS.includes(String(item.kind)) && !!item.media;
}

/**
 * Queue a file (a photo, video, voice note or any file) with an optional
 * caption; it is uploaded when its turn comes and the server is reachable.
 * @param {string} convId @param {Blob} file
 * @param {{caption?: string, replyToSeq?: number, filename?: string, kind?: 'image'|'video'|'audio'|'file', contentType?: string}} [opts]
 */
export function sendFile(convId, file, opts = {}) {
  const contentType = opts.contentType || media.declaredType(file);
  const kind = opts.kind || media.kindFor(contentType);
  const filename = opts.filename ?? (/** @type {File} */ (file).name || '');
  /** @type {OutboxItem} */
  const item = {
    client_msg_id: newClientMsgId(), conversation_id: convId, text: opts.caption || '', created_ms: Date.now(),
    kind, media: { content_type: contentType, size: file.size },
  };
  if (filename && item.media) item.media.filename = filename;
  if (opts.replyToSeq) item.reply_to_seq = opts.replyToSeq;
  // In memory at once (the upload may start now); in IndexedDB for a reload.
  media.keepFile(item.client_msg_id, file);
  enqueue(item);
}

/** How far the upload of an item's file is (0–1), or null when none is under way. @param {string} clientMsgId */
export function uploadProgress(clientMsgId) {
  const up = uploads.get(clientMsgId);
  return up ? up.progress : null;
}

/** "Cancel upload": stop it and drop the message; nothing is sent. @param {string} clientMsgId */
export function cancelUpload(clientMsgId) {
  remove(clientMsgId);
  scheduleRender();
}

/**
 * Upload the file of a media item, then send it. Only while connected: an
 * offline outbox waits, and `flush` on the next `ready` starts it.
 * @param {OutboxItem} item
 */
async function startUpload(item) {
  const id = item.client_msg_id;
  if (uploads.has(id) || link.state() !== 'open' || !item.media) return;
  const up = { progress: 0, abort: () => {}, cancelled: false };
  uploads.set(id, up);
  scheduleRender();
  const file = await media.keptFile(id);
  if (up.cancelled || !items.includes(item)) return;
  if (!file) {
    // Stored before its file reached IndexedDB, or the browser dropped it.
    uploads.delete(id);
    item.failed = 'file_lost';
    persist();
    toast(errorText('file_lost'));
    scheduleRender();
    return;
  }
  const task = media.upload(file, {
    filename: item.media.filename, contentType: item.media.content_type,
    onProgress: (f) => { up.progress = f; scheduleRender(); },
  });
  up.abort = task.abort;
  try {
    const view = await task.done;
    uploads.delete(id);
    if (up.cancelled || !items.includes(item)) return;
    item.media = { ...item.media, media_id: view.media_id, content_type: view.content_type, size: view.size };
    media.uploaded(id, view.media_id);
    if (view.width) item.media.width = view.width;
    if (view.height) item.media.height = view.height;
    persist();
    trySend(item);
  } catch (e) {
    uploads.delete(id);
    if (up.cancelled || e instanceof media.UploadAborted || !items.includes(item)) return;
    refused(item, e instanceof ApiError ? e.code : 'upload_failed', e instanceof ApiError ? e.retryAfterMs : undefined);
  }
  scheduleRender();
}

/**
 * Send an outbox item if it is the oldest pending one of its conversation:
 * one send in flight per conversation keeps the order the user typed in,
 * even when the server refuses one (rate limit) and it is retried.
 * @param {OutboxItem} item
 */
function trySend(item) {
  if (item.failed || !items.includes(item)) return;
  const head = items.find((o) => o.conversation_id === item.conversation_id && !o.failed);
  if (head !== item) return;
  if (Date.now() < (pausedUntil.get(item.conversation_id) || 0)) return;
  if (isMedia(item) && !(item.media && item.media.media_id)) {
    startUpload(item);
    return;
  }
  if (byteLength(item.text) > WS_TEXT_LIMIT_BYTES) {
    sendOverHttp(item);
    return;
  }
  const ok = link.send(sendTextFrame(item));
  if (ok) attempts.set(item.client_msg_id, Date.now());
}

/** @param {OutboxItem} item */
async function sendOverHttp(item) {
  if (attempts.get(item.client_msg_id) === -1) return; // in flight
  attempts.set(item.client_msg_id, -1);
  try {
    const res = await api.sendMessage(item.conversation_id, item.client_msg_id, item.text, item.reply_to_seq);
    const m = res && res.message ? res.message : res;
    addMessage({ ...m, sender_id: m.sender_id || me(), text: m.text ?? item.text, client_msg_id: item.client_msg_id });
    remove(item.client_msg_id);
  } catch (e) {
    attempts.set(item.client_msg_id, Date.now());
    if (e instanceof ApiError) refused(item, e.code, e.retryAfterMs);
  }
  scheduleRender();
}

/**
 * The server refused a send (WS `error` with ref, or HTTP error).
 * @param {OutboxItem} item @param {string} code @param {number|undefined} retryAfterMs
 */
export function refused(item, code, retryAfterMs) {
  switch (code) {
    case 'rate_limited': {
      const wait = Math.max(250, Number(retryAfterMs) || 1000);
      toast(errorText('rate_limited', { retryAfterMs: wait }), 'warn');
      pausedUntil.set(item.conversation_id, Date.now() + wait);
      attempts.delete(item.client_msg_id);
      setTimeout(() => trySend(item), wait + 10);
      return;
    }
    case 'network':
    case 'unavailable':
    case 'internal':
      pausedUntil.set(item.conversation_id, Date.now() + 3000);
      attempts.delete(item.client_msg_id);
      setTimeout(() => trySend(item), 3010);
      return;
    case 'unauthorized':
      return;
    default:
      item.failed = code;
      persist();
      toast(errorText(code, { context: sendContext(item) }));
      flush();
      scheduleRender();
  }
}

/** How a refusal of `item` is worded (`format.js`'s `errorText` context). @param {OutboxItem} item */
export function sendContext(item) { return isMedia(item) ? 'media' : 'send'; }

/** Try every item (after connecting): each conversation's oldest goes. */
export function flush() {
  for (const item of [...items]) trySend(item);
}

/** Resend anything not acknowledged in time (idempotent thanks to client_msg_id). */
export function checkAcks() {
  if (link.state() !== 'open') return;
  const now = Date.now();
  for (const item of items) {
    const t = attempts.get(item.client_msg_id);
    if (!item.failed && t !== -1 && !uploads.has(item.client_msg_id) && (t === undefined || now - t > ACK_TIMEOUT_MS)) trySend(item);
  }
}
