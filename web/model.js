// The conversations and their messages as this client knows them: the
// `Conv` records, which one is open, merging what the server says (list,
// details, messages) into them, and their order in the list.
//
// Invariant: messages of a conversation are keyed by `seq`; a message is
// stored once however many ways it arrives (HTTP history, replay, live push,
// `sent`). Events (edit, delete, reaction) are stored by their seq too (so
// gaps are noticed) and applied to the message they target when they are
// newer than the state the target was loaded with (`_asOf`).

import { ApiError } from './api.js';
import { api, me } from './session.js';
import { displayName, avatarOf } from './users.js';
import { isEvent, applyEvent } from './events.js';
import { scheduleRender } from './ui/refresh.js';

/** @typedef {import('./api.js').Message} Message */
/** @typedef {import('./api.js').ConversationSummary} ConversationSummary */
/** @typedef {import('./api.js').ConversationDetails} ConversationDetails */

/**
 * @typedef {object} Conv
 * @property {string} id
 * @property {'direct'|'group'} kind
 * @property {string} [name]
 * @property {string[]} memberIds
 * @property {Map<string, string>} roles               user_id -> role
 * @property {Map<string, {delivered: number, read: number}>} cursors  members' receipt cursors
 * @property {number} deliveredAll                      group: everyone delivered up to
 * @property {number} readAll                           group: everyone read up to
 * @property {number} lastSeq
 * @property {Message|null} lastMessage
 * @property {number} unread
 * @property {number} readUpTo                          my own read cursor
 * @property {number} activityMs
 * @property {Map<number, Message>} messages            loaded messages by seq
 * @property {boolean} historyLoaded
 * @property {boolean} hasMoreOlder
 * @property {boolean} loadingOlder
 * @property {boolean} [catchingUp]                     a gap fill is running
 * @property {boolean} left                             I am no longer a member
 * @property {boolean} detailsLoaded
 * @property {number} mutedUntilMs                      -1 forever, 0 not muted, else until then
 * @property {boolean} pinned
 * @property {boolean} archived
 * @property {string} avatarMediaId                    a group's photo ('' when none)
 */

/** @type {Map<string, Conv>} */
export const convs = new Map();

/** @type {string|null} */
let openId = null;
/** Whether the conversation list has been loaded once (an empty list means "no chats"). */
let listLoaded = false;

/** Called with the `client_msg_id` of each of my messages stored (the outbox drops it). */
let onOwnMessage = (/** @type {string} */ _clientMsgId) => {};

/** @param {(clientMsgId: string) => void} fn */
export function setOwnMessageListener(fn) { onOwnMessage = fn; }

/** The id of the open conversation, or null. */
export function openConvId() { return openId; }

/** @param {string|null} id */
export function setOpenConvId(id) { openId = id; }

/** The open conversation, or null. */
export function openConv() { return openId ? convs.get(openId) || null : null; }

export function isListLoaded() { return listLoaded; }

export function markListLoaded() { listLoaded = true; }

/** Forget everything (log out). */
export function reset() {
  convs.clear();
  openId = null;
  listLoaded = false;
}

/** @param {string} id @returns {Conv} */
export function ensureConv(id) {
  let c = convs.get(id);
  if (!c) {
    c = {
      id, kind: 'direct', name: undefined, memberIds: [], roles: new Map(), cursors: new Map(),
      deliveredAll: 0, readAll: 0, lastSeq: 0, lastMessage: null, unread: 0, readUpTo: 0,
      activityMs: 0, messages: new Map(), historyLoaded: false, hasMoreOlder: false,
      loadingOlder: false, left: false, detailsLoaded: false, mutedUntilMs: 0, pinned: false, archived: false,
      avatarMediaId: '',
    };
    convs.set(id, c);
  }
  return c;
}

/** @param {Conv} c */
export function otherMember(c) {
  return c.memberIds.find((id) => id !== me()) || null;
}

/** @param {Conv} c */
export function convTitle(c) {
  if (c.kind === 'group') return c.name || 'Group';
  const other = otherMember(c);
  return other ? displayName(other) : (c.name || 'Chat');
}

/** The photo of a chat: the group's, or the other member's profile photo ('' when none). @param {Conv} c */
export function convAvatar(c) {
  if (c.kind === 'group') return c.avatarMediaId;
  const other = otherMember(c);
  return other ? avatarOf(other) : '';
}

/** Whether notifications of `c` are muted now. @param {Conv} c */
export function isMuted(c) {
  return c.mutedUntilMs === -1 || c.mutedUntilMs > Date.now();
}

/**
 * Take my settings of a conversation (from the list, a
 * `conversation_settings` frame or a settings request's answer).
 * @param {string} id @param {{muted_until_ms?: number, pinned?: boolean, archived?: boolean}} s
 */
export function applySettings(id, s) {
  const c = convs.get(id);
  if (!c) return;
  if (typeof s.muted_until_ms === 'number') c.mutedUntilMs = s.muted_until_ms;
  if (typeof s.pinned === 'boolean') c.pinned = s.pinned;
  if (typeof s.archived === 'boolean') c.archived = s.archived;
  scheduleRender();
}

/** @param {Conv} c */
export function isAdmin(c) { return c.roles.get(me()) === 'admin'; }

/**
 * Conversations, pinned first, then by latest activity, newest first.
 * `pendingMs` gives, per conversation, when its newest unsent message was
 * typed (it counts as activity).
 * @param {Map<string, number>} pendingMs
 */
export function sortedConvs(pendingMs) {
  return [...convs.values()]
    .map((c) => ({ c, t: Math.max(c.activityMs, pendingMs.get(c.id) || 0) }))
    .sort((a, b) => Number(b.c.pinned) - Number(a.c.pinned) || b.t - a.t || b.c.lastSeq - a.c.lastSeq)
    .map((x) => x.c);
}

/** Merge one item of `GET /v1/conversations`. @param {ConversationSummary} s */
export function mergeSummary(s) {
  const c = ensureConv(s.conversation_id);
  c.kind = s.kind === 'group' ? 'group' : 'direct';
  if (s.name !== undefined && s.name !== null) c.name = s.name;
  if (Array.isArray(s.members)) c.memberIds = s.members.map((m) => (typeof m === 'string' ? m : m.user_id));
  const serverSeq = Number(s.last_seq) || 0;
  if (serverSeq >= c.lastSeq) {
    c.lastSeq = serverSeq;
    if (s.last_message) c.lastMessage = s.last_message;
    c.unread = Number(s.unread_count) || 0;
  }
  c.readUpTo = Math.max(c.readUpTo, Number(s.read_up_to) || 0);
  const anySummary = /** @type {any} */ (s);
  c.left = !!anySummary.left;
  c.avatarMediaId = typeof anySummary.avatar_media_id === 'string' ? anySummary.avatar_media_id : '';
  c.mutedUntilMs = Number(anySummary.muted_until_ms) || 0;
  c.pinned = !!anySummary.pinned;
  c.archived = !!anySummary.archived;
  // Extension some servers add: the minimum cursors over all members. A safe
  // lower bound for the ticks of my messages until details are fetched.
  const anyS = /** @type {any} */ (s);
  if (typeof anyS.delivered_all_up_to === 'number' || typeof anyS.read_all_up_to === 'number') {
    const rd = Number(anyS.read_all_up_to) || 0;
    const dl = Math.max(Number(anyS.delivered_all_up_to) || 0, rd);
    if (c.kind === 'group') {
      c.deliveredAll = Math.max(c.deliveredAll, dl);
      c.readAll = Math.max(c.readAll, rd);
    } else {
      const other = otherMember(c);
      if (other) {
        const cur = c.cursors.get(other) || { delivered: 0, read: 0 };
        cur.delivered = Math.max(cur.delivered, dl);
        cur.read = Math.max(cur.read, rd);
        c.cursors.set(other, cur);
      }
    }
  }
  if (c.lastMessage) c.activityMs = Math.max(c.activityMs, c.lastMessage.sent_at_ms || 0);
  if (c.kind === 'direct') for (const id of c.memberIds) if (id !== me()) displayName(id);
}

/** Merge `GET /v1/conversations/{id}` (receipt snapshot). @param {ConversationDetails} d */
export function mergeDetails(d) {
  const c = ensureConv(d.conversation_id);
  c.kind = d.kind === 'group' ? 'group' : 'direct';
  if (d.name !== undefined && d.name !== null) c.name = d.name;
  const anyD = /** @type {any} */ (d);
  if (c.kind === 'group') c.avatarMediaId = typeof anyD.avatar_media_id === 'string' ? anyD.avatar_media_id : '';
  if (Array.isArray(d.members)) {
    c.memberIds = d.members.map((m) => m.user_id);
    c.roles = new Map(d.members.map((m) => [m.user_id, m.role]));
    for (const m of d.members) {
      const cur = c.cursors.get(m.user_id) || { delivered: 0, read: 0 };
      cur.read = Math.max(cur.read, Number(m.read_up_to) || 0);
      cur.delivered = Math.max(cur.delivered, Number(m.delivered_up_to) || 0, cur.read);
      c.cursors.set(m.user_id, cur);
      if (m.user_id !== me()) displayName(m.user_id);
    }
    const mine = d.members.find((m) => m.user_id === me());
    if (mine) {
      c.readUpTo = Math.max(c.readUpTo, Number(mine.read_up_to) || 0);
      c.left = false;
    } else if (c.kind === 'group') {
      c.left = true;
    }
    if (c.kind === 'group') {
      const others = d.members.filter((m) => m.user_id !== me());
      if (others.length) {
        c.deliveredAll = Math.max(c.deliveredAll, Math.min(...others.map((m) => Math.max(Number(m.delivered_up_to) || 0, Number(m.read_up_to) || 0))));
        c.readAll = Math.max(c.readAll, Math.min(...others.map((m) => Number(m.read_up_to) || 0)));
      }
    }
  }
  if (typeof d.last_seq === 'number' && d.last_seq > c.lastSeq) c.lastSeq = d.last_seq;
  c.detailsLoaded = true;
  return c;
}

/** Fetch and merge a conversation's details (members, roles, receipt cursors). @param {Conv} c */
export async function fetchDetails(c) {
  try {
    mergeDetails(await api.conversation(c.id));
  } catch (e) {
    if (e instanceof ApiError && (e.code === 'forbidden' || e.code === 'not_found')) {
      if (c.kind === 'group') c.left = true;
    }
  }
  scheduleRender();
}

/** @param {Conv} c */
export function maxLoadedSeq(c) {
  let max = 0;
  for (const s of c.messages.keys()) if (s > max) max = s;
  return max;
}

/** @param {Conv} c */
export function minLoadedSeq(c) {
  let min = Infinity;
  for (const s of c.messages.keys()) if (s < min) min = s;
  return min === Infinity ? 0 : min;
}

/**
 * Insert a message into its conversation (deduplicated by seq and, for own
 * messages, by client_msg_id against the outbox). Returns true if it was new.
 * `asOf`: the message comes from history read when the conversation was at
 * least at that seq, so it already shows every event up to there (a copy
 * with a newer state replaces the stored one).
 * @param {Message} m
 * @param {{live?: boolean, asOf?: number}} [opts]
 */
export function addMessage(m, opts = {}) {
  if (!m || !m.conversation_id || typeof m.seq !== 'number') return false;
  const c = ensureConv(m.conversation_id);
  const mine = m.sender_id === me();
  if (mine && m.client_msg_id) onOwnMessage(m.client_msg_id);
  const asOf = Math.max(m.seq, opts.asOf || 0);
  const known = /** @type {any} */ (c.messages.get(m.seq));
  if (known) {
    if (asOf > (known._asOf || 0) && !isEvent(m)) {
      c.messages.set(m.seq, Object.assign(m, { _asOf: asOf }));
      if (c.lastMessage && c.lastMessage.seq === m.seq) c.lastMessage = m;
    }
    return false;
  }
  /** @type {any} */ (m)._asOf = asOf;
  const wasNewest = m.seq > c.lastSeq;
  c.messages.set(m.seq, m);
  if (isEvent(m)) {
    if (m.seq > c.lastSeq) c.lastSeq = m.seq;
    applyToTarget(c, m);
    if (mine) advanceOwnCursors(c, m.seq);
    return true;
  }
  if (m.seq >= c.lastSeq) {
    c.lastSeq = m.seq;
    c.lastMessage = m;
  }
  c.activityMs = Math.max(c.activityMs, m.sent_at_ms || 0);
  if (mine) {
    advanceOwnCursors(c, m.seq);
  } else if (opts.live && wasNewest && m.seq > c.readUpTo) {
    c.unread += 1;
  }
  if (m.kind === 'system') onSystemMessage(c, m, !!opts.live);
  return true;
}

/** A member's own sends (events included) advance its own cursors. @param {Conv} c @param {number} seq */
function advanceOwnCursors(c, seq) {
  c.readUpTo = Math.max(c.readUpTo, seq);
  const cur = c.cursors.get(me()) || { delivered: 0, read: 0 };
  cur.delivered = Math.max(cur.delivered, seq);
  cur.read = Math.max(cur.read, seq);
  c.cursors.set(me(), cur);
}

/**
 * Apply an event to its target when the target's state is older than the
 * event (the list's last message too, which may be a copy).
 * @param {Conv} c @param {Message} e
 */
function applyToTarget(c, e) {
  const seq = Number(/** @type {any} */ (e).target_seq) || 0;
  const t = /** @type {any} */ (c.messages.get(seq));
  if (t && e.seq > (t._asOf || 0)) {
    applyEvent(t, e);
    t._asOf = e.seq;
  }
  const last = /** @type {any} */ (c.lastMessage);
  if (last && last !== t && last.seq === seq && e.seq > (last._asOf || 0)) {
    applyEvent(last, e);
    last._asOf = e.seq;
  }
}

/** Membership changes: update what we know; refetch details. @param {Conv} c @param {Message} m @param {boolean} live */
function onSystemMessage(c, m, live) {
  c.kind = 'group';
  const ids = Array.isArray(m.user_ids) ? m.user_ids : [];
  const isLatest = m.seq >= c.lastSeq;
  if (m.event === 'renamed' && isLatest) {
    const newName = m.name || m.text;
    if (newName) c.name = newName;
  }
  if (isLatest && ids.includes(me())) {
    if (m.event === 'member_removed' || m.event === 'member_left') c.left = true;
    if (m.event === 'member_added' || m.event === 'created') c.left = false;
  }
  if (isLatest && (m.event === 'member_removed' || m.event === 'member_left')) {
    c.memberIds = c.memberIds.filter((id) => !ids.includes(id));
  }
  if (isLatest && m.event === 'member_added') {
    for (const id of ids) if (!c.memberIds.includes(id)) c.memberIds.push(id);
  }
  if (live && !c.left) fetchDetails(c);
}
