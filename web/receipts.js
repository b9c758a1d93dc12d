// Receipts both ways: the delivered/read receipts this device sends (batched,
// never twice for the same point), the members' cursors other devices report,
// my unread counts, and the tick each of my messages shows.

import * as link from './link.js';
import { deliveredReceiptFrame, readReceiptFrame } from './protocol.js';
import { me } from './session.js';
import { convs, otherMember } from './model.js';
import { isEvent } from './events.js';
import { scheduleRender } from './ui/refresh.js';

/** @typedef {import('./model.js').Conv} Conv */

/** conversation -> highest delivered receipt sent */
const deliveredSent = /** @type {Map<string, number>} */ (new Map());
/** conversation -> highest read receipt sent */
const readSent = /** @type {Map<string, number>} */ (new Map());
/** conversation -> delivered receipt waiting for the batch timer (or for the socket) */
const pendingDelivered = /** @type {Map<string, number>} */ (new Map());
let deliveredTimer = /** @type {any} */ (null);

/** Forget everything (log out). */
export function reset() {
  deliveredSent.clear();
  readSent.clear();
  pendingDelivered.clear();
}

/** Everything up to `seq` of `c` has arrived on this device. @param {Conv} c @param {number} seq */
export function queueDelivered(c, seq) {
  if (seq <= (deliveredSent.get(c.id) || 0)) return;
  const prev = pendingDelivered.get(c.id) || 0;
  if (seq > prev) pendingDelivered.set(c.id, seq);
  // Batch the receipts of a burst (or a replay) into one per conversation.
  if (!deliveredTimer) deliveredTimer = setTimeout(() => { deliveredTimer = null; flushDelivered(); }, 30);
}

/** Send the queued delivered receipts (those that cannot go yet stay queued). */
export function flushDelivered() {
  for (const [id, seq] of [...pendingDelivered]) {
    if (seq <= (deliveredSent.get(id) || 0)) { pendingDelivered.delete(id); continue; }
    if (link.send(deliveredReceiptFrame(id, seq))) {
      deliveredSent.set(id, seq);
      pendingDelivered.delete(id);
    }
  }
}

/**
 * The user can see `c` up to `maxVisible`: send a read receipt if that is new.
 * @param {Conv} c @param {number} maxVisible
 */
export function markRead(c, maxVisible) {
  const already = Math.max(c.readUpTo, readSent.get(c.id) || 0);
  if (maxVisible <= already) {
    if (c.unread && c.readUpTo >= c.lastSeq) { c.unread = 0; scheduleRender(); }
    return;
  }
  if (link.send(readReceiptFrame(c.id, maxVisible))) {
    readSent.set(c.id, maxVisible);
    deliveredSent.set(c.id, Math.max(deliveredSent.get(c.id) || 0, maxVisible));
    c.readUpTo = maxVisible;
    recountUnread(c);
    scheduleRender();
  }
}

/** @param {Conv} c */
function recountUnread(c) {
  if (c.readUpTo >= c.lastSeq) { c.unread = 0; return; }
  // Exact when every message above the read cursor is loaded.
  let complete = true;
  let n = 0;
  for (let s = c.readUpTo + 1; s <= c.lastSeq; s++) {
    const m = c.messages.get(s);
    if (!m) { complete = false; break; }
    if (m.sender_id !== me() && !isEvent(m)) n++;
  }
  if (complete) c.unread = n;
}

/** A member's `receipt` frame. @param {{conversation_id: string, user_id: string, status: string, up_to_seq: number}} f */
export function applyReceipt(f) {
  const c = convs.get(f.conversation_id);
  if (!c || !f.user_id) return;
  const seq = Number(f.up_to_seq) || 0;
  const cur = c.cursors.get(f.user_id) || { delivered: 0, read: 0 };
  cur.delivered = Math.max(cur.delivered, seq);
  if (f.status === 'read') cur.read = Math.max(cur.read, seq);
  c.cursors.set(f.user_id, cur);
  if (f.user_id === me() && f.status === 'read') {
    // Read on another of my devices.
    c.readUpTo = Math.max(c.readUpTo, seq);
    recountUnread(c);
  }
  scheduleRender();
}

/** A group's `receipt_summary` frame (everyone delivered/read up to). @param {any} f */
export function applySummary(f) {
  const c = convs.get(f.conversation_id);
  if (!c) return;
  c.deliveredAll = Math.max(c.deliveredAll, Number(f.delivered_all_up_to) || 0, Number(f.read_all_up_to) || 0);
  c.readAll = Math.max(c.readAll, Number(f.read_all_up_to) || 0);
  scheduleRender();
}

/** Tick state of one of my messages. @param {Conv} c @param {number} seq */
export function tickState(c, seq) {
  if (c.kind === 'group') {
    if (c.readAll >= seq) return 'Read';
    if (c.deliveredAll >= seq) return 'Delivered';
    return 'Sent';
  }
  const other = otherMember(c);
  const cur = other ? c.cursors.get(other) : null;
  if (cur && cur.read >= seq) return 'Read';
  if (cur && cur.delivered >= seq) return 'Delivered';
  return 'Sent';
}
