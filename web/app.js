// Parley web client: state, protocol handling and rendering.
//
// Layout of the client (plain ES modules, no build step):
// - `api.js`        REST calls under /v1, errors as `ApiError` with the spec's codes
// - `connection.js` the WebSocket: auth, heartbeat, backoff + jitter, `reconnect` frames
// - `store.js`      localStorage: session, per-user cursor, per-user outbox, user cache
// - `format.js`     pure helpers: human error sentences, times, names
// - `app.js`        (this file) the state of chats and the DOM that shows it
//
// Invariants kept here:
// - Messages of a conversation are keyed by `seq`; a message is shown once
//   however many ways it arrives (HTTP history, replay, live push, `sent`).
// - A message typed by the user lives in the outbox (persisted) until the
//   server acknowledges it; resends use the same `client_msg_id`.
// - The stored cursor only moves forward, and only past events we processed.

import { Api, ApiError } from './api.js';
import { Connection } from './connection.js';
import * as store from './store.js';
import {
  errorText, clockTime, listTime, dayLabel, dayKey, presenceText, initials, hueFor,
  parseUsernames, normalizeUsername, byteLength, newClientMsgId,
} from './format.js';

/** @typedef {import('./api.js').Message} Message */
/** @typedef {import('./api.js').ConversationSummary} ConversationSummary */
/** @typedef {import('./api.js').ConversationDetails} ConversationDetails */
/** @typedef {import('./store.js').OutboxItem} OutboxItem */

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
 * @property {boolean} left                             I am no longer a member
 * @property {boolean} detailsLoaded
 */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** Texts over this many bytes go over HTTP so they can never overflow a WS frame. */
const WS_TEXT_LIMIT_BYTES = 60 * 1024;
const PAGE_SIZE = 50;
const TYPING_RESEND_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_EXPIRE_MS = 6000;
const ACK_TIMEOUT_MS = 10000;

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

const state = {
  /** @type {import('./store.js').StoredSession|null} */
  session: null,
  /** @type {Map<string, Conv>} */
  convs: new Map(),
  /** @type {Map<string, {user_id: string, username: string, display_name?: string}>} */
  users: new Map(),
  /** @type {Map<string, Promise<void>>} */
  userFetches: new Map(),
  /** @type {string|null} */
  openId: null,
  /** @type {Connection|null} */
  conn: null,
  /** @type {import('./connection.js').ConnState} */
  connState: 'connecting',
  everConnected: false,
  /** head cursor from the last `ready` frame */
  readyCursor: /** @type {number|null} */ (null),
  /** @type {OutboxItem[]} */
  outbox: [],
  /** client_msg_id -> time of the last attempt (memory only) */
  attempts: /** @type {Map<string, number>} */ (new Map()),
  /** conversation -> no sends before this time (rate limited) */
  pausedUntil: /** @type {Map<string, number>} */ (new Map()),
  /** @type {Map<string, {online: boolean, last_seen_ms?: number, viaWs?: boolean}>} */
  presence: new Map(),
  /** conversation -> user -> expiry timer */
  typing: /** @type {Map<string, Map<string, ReturnType<typeof setTimeout>>>} */ (new Map()),
  /** @type {string|null} */
  presenceSub: null,
  deliveredSent: /** @type {Map<string, number>} */ (new Map()),
  readSent: /** @type {Map<string, number>} */ (new Map()),
  pendingDelivered: /** @type {Map<string, number>} */ (new Map()),
  drafts: /** @type {Map<string, string>} */ (new Map()),
  myTyping: { convId: /** @type {string|null} */ (null), lastSentMs: 0, idleTimer: /** @type {any} */ (null) },
  groupPanelOpen: false,
  listLoaded: false,
  timers: /** @type {any[]} */ ([]),
};

const api = new Api(() => state.session && state.session.token, () => onUnauthorized());

function me() { return state.session ? state.session.user_id : ''; }

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/** Users from the localStorage cache: shown at once, re-checked once per page load. */
const staleUsers = /** @type {Set<string>} */ (new Set());

function loadCachedUsers() {
  for (const u of Object.values(store.loadUserCache())) {
    if (u && u.user_id && u.username) {
      state.users.set(u.user_id, u);
      staleUsers.add(u.user_id);
    }
  }
}

/** @param {{user_id: string, username: string, display_name?: string}} u */
function rememberUser(u) {
  if (!u || !u.user_id) return;
  staleUsers.delete(u.user_id);
  state.users.set(u.user_id, { user_id: u.user_id, username: u.username, display_name: u.display_name });
  store.saveUserCache(Object.fromEntries(state.users));
}

/** Username for display; fetches (once) and re-renders when unknown. @param {string} id */
function username(id) {
  const u = state.users.get(id);
  if (u && staleUsers.has(id) && state.session) {
    staleUsers.delete(id);
    fetchUser(id);
  }
  if (u) return u.username;
  fetchUser(id);
  return '…';
}

/** @param {string} id */
function fetchUser(id) {
  if (!id || state.userFetches.has(id)) return state.userFetches.get(id);
  const p = api.user(id).then((u) => { rememberUser(u); scheduleRender(); })
    .catch(() => { setTimeout(() => state.userFetches.delete(id), 5000); });
  state.userFetches.set(id, p);
  return p;
}

/** @param {string} name @returns {Promise<{user_id: string, username: string}>} */
async function lookupUsername(name) {
  for (const u of state.users.values()) if (u.username === name && !staleUsers.has(u.user_id)) return u;
  const u = await api.userByName(name);
  rememberUser(u);
  return u;
}

// ---------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------

/** @param {string} id @returns {Conv} */
function ensureConv(id) {
  let c = state.convs.get(id);
  if (!c) {
    c = {
      id, kind: 'direct', name: undefined, memberIds: [], roles: new Map(), cursors: new Map(),
      deliveredAll: 0, readAll: 0, lastSeq: 0, lastMessage: null, unread: 0, readUpTo: 0,
      activityMs: 0, messages: new Map(), historyLoaded: false, hasMoreOlder: false,
      loadingOlder: false, left: false, detailsLoaded: false,
    };
    state.convs.set(id, c);
  }
  return c;
}

/** @param {Conv} c */
function otherMember(c) {
  return c.memberIds.find((id) => id !== me()) || null;
}

/** @param {Conv} c */
function convTitle(c) {
  if (c.kind === 'group') return c.name || 'Group';
  const other = otherMember(c);
  return other ? username(other) : (c.name || 'Chat');
}

/** @param {Conv} c */
function isAdmin(c) { return c.roles.get(me()) === 'admin'; }

/** Merge one item of `GET /v1/conversations`. @param {ConversationSummary} s */
function mergeSummary(s) {
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
  if (c.kind === 'direct') for (const id of c.memberIds) if (id !== me()) username(id);
}

/** Merge `GET /v1/conversations/{id}` (receipt snapshot). @param {ConversationDetails} d */
function mergeDetails(d) {
  const c = ensureConv(d.conversation_id);
  c.kind = d.kind === 'group' ? 'group' : 'direct';
  if (d.name !== undefined && d.name !== null) c.name = d.name;
  if (Array.isArray(d.members)) {
    c.memberIds = d.members.map((m) => m.user_id);
    c.roles = new Map(d.members.map((m) => [m.user_id, m.role]));
    for (const m of d.members) {
      const cur = c.cursors.get(m.user_id) || { delivered: 0, read: 0 };
      cur.read = Math.max(cur.read, Number(m.read_up_to) || 0);
      cur.delivered = Math.max(cur.delivered, Number(m.delivered_up_to) || 0, cur.read);
      c.cursors.set(m.user_id, cur);
      if (m.user_id !== me()) username(m.user_id);
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

/** @param {Conv} c */
async function fetchDetails(c) {
  try {
    mergeDetails(await api.conversation(c.id));
  } catch (e) {
    if (e instanceof ApiError && (e.code === 'forbidden' || e.code === 'not_found')) {
      if (c.kind === 'group') c.left = true;
    }
  }
  scheduleRender();
}

let listLoading = /** @type {Promise<void>|null} */ (null);

/** Reload the conversation list (and the open chat) over HTTP. */
function refreshConversations() {
  if (listLoading) return listLoading;
  listLoading = (async () => {
    try {
      const known = new Set(state.convs.keys());
      const res = await api.conversations();
      const seen = new Set();
      for (const s of res.conversations || []) {
        mergeSummary(s);
        seen.add(s.conversation_id);
      }
      // Drop chats the server no longer lists (unless open, still pending, or
      // learnt about while the request was in flight).
      for (const id of [...state.convs.keys()]) {
        if (known.has(id) && !seen.has(id) && id !== state.openId && !state.outbox.some((o) => o.conversation_id === id)) {
          const c = state.convs.get(id);
          if (c && c.lastSeq > 0) state.convs.delete(id);
        }
      }
      state.listLoaded = true;
      // Anything we can see in the list has arrived on this device.
      let detailFetches = 0;
      for (const c of sortedConvs()) {
        if (c.lastMessage && c.lastMessage.sender_id !== me() && c.lastSeq > c.readUpTo) queueDelivered(c, c.lastSeq);
        // The ticks of my last message in the list come from member cursors.
        if (c.lastMessage && c.lastMessage.sender_id === me() && c.lastMessage.kind !== 'system'
            && tickState(c, c.lastMessage.seq) !== 'Read' && detailFetches < 30) {
          detailFetches++;
          fetchDetails(c);
        }
      }
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'network')) console.warn('conversations', e);
    } finally {
      listLoading = null;
      scheduleRender();
    }
  })();
  return listLoading;
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/** @param {Conv} c */
function maxLoadedSeq(c) {
  let max = 0;
  for (const s of c.messages.keys()) if (s > max) max = s;
  return max;
}

/** @param {Conv} c */
function minLoadedSeq(c) {
  let min = Infinity;
  for (const s of c.messages.keys()) if (s < min) min = s;
  return min === Infinity ? 0 : min;
}

/**
 * Insert a message into its conversation (deduplicated by seq and, for own
 * messages, by client_msg_id against the outbox). Returns true if it was new.
 * @param {Message} m
 * @param {{live?: boolean}} [opts]
 */
function addMessage(m, opts = {}) {
  if (!m || !m.conversation_id || typeof m.seq !== 'number') return false;
  const c = ensureConv(m.conversation_id);
  const mine = m.sender_id === me();
  if (mine && m.client_msg_id) removeFromOutbox(m.client_msg_id);
  if (c.messages.has(m.seq)) return false;
  const wasNewest = m.seq > c.lastSeq;
  c.messages.set(m.seq, m);
  if (m.seq >= c.lastSeq) {
    c.lastSeq = m.seq;
    c.lastMessage = m;
  }
  c.activityMs = Math.max(c.activityMs, m.sent_at_ms || 0);
  if (mine) {
    // A member's own sends advance its own cursors.
    c.readUpTo = Math.max(c.readUpTo, m.seq);
    const cur = c.cursors.get(me()) || { delivered: 0, read: 0 };
    cur.delivered = Math.max(cur.delivered, m.seq);
    cur.read = Math.max(cur.read, m.seq);
    c.cursors.set(me(), cur);
  } else if (opts.live && wasNewest && m.seq > c.readUpTo) {
    c.unread += 1;
  }
  if (m.kind === 'system') onSystemMessage(c, m, !!opts.live);
  return true;
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

/** @param {Conv} c */
async function loadHistory(c, { reset = false } = {}) {
  try {
    const res = await api.messages(c.id, { limit: PAGE_SIZE });
    if (reset) c.messages.clear();
    for (const m of res.messages || []) addMessage(m);
    c.hasMoreOlder = !!res.has_more;
    c.historyLoaded = true;
  } catch (e) {
    if (e instanceof ApiError && (e.code === 'forbidden' || e.code === 'not_found')) {
      c.historyLoaded = true;
      if (c.kind === 'group') c.left = true;
    } else if (!(e instanceof ApiError && e.code === 'network')) {
      toast(errorText(e instanceof ApiError ? e.code : 'internal'));
    }
  }
  scheduleRender({ stickToBottom: true });
}

/** Scroll-back: the page before the oldest loaded message. @param {Conv} c */
async function loadOlder(c) {
  if (c.loadingOlder || !c.hasMoreOlder) return;
  const before = minLoadedSeq(c);
  if (!before) return;
  c.loadingOlder = true;
  renderHistoryStatus(c);
  try {
    const res = await api.messages(c.id, { before_seq: before, limit: PAGE_SIZE });
    const el = $('messages');
    const fromBottom = el.scrollHeight - el.scrollTop;
    for (const m of res.messages || []) addMessage(m);
    c.hasMoreOlder = !!res.has_more && (res.messages || []).length > 0;
    if (state.openId === c.id) {
      renderMessages({ keepScroll: true });
      el.scrollTop = el.scrollHeight - fromBottom;
    }
  } catch (e) {
    if (e instanceof ApiError && e.code !== 'network') toast(errorText(e.code));
  } finally {
    c.loadingOlder = false;
    renderHistoryStatus(c);
  }
}

/** Fetch everything after the newest loaded message (gap filling). @param {Conv} c */
async function catchUp(c) {
  if (!c.historyLoaded || c.catchingUp) return;
  c.catchingUp = true;
  try {
    for (let i = 0; i < 50; i++) {
      const after = maxLoadedSeq(c);
      const res = await api.messages(c.id, { after_seq: after, limit: 100 });
      for (const m of res.messages || []) addMessage(m);
      if (!res.has_more || !(res.messages || []).length) break;
    }
  } catch { /* retried on the next reconnect */ }
  c.catchingUp = false;
  scheduleRender();
}

// ---------------------------------------------------------------------------
// Outbox
// ---------------------------------------------------------------------------

function persistOutbox() {
  if (state.session) store.saveOutbox(me(), state.outbox);
}

/** @param {string} clientMsgId */
function removeFromOutbox(clientMsgId) {
  const i = state.outbox.findIndex((o) => o.client_msg_id === clientMsgId);
  if (i < 0) return;
  const [item] = state.outbox.splice(i, 1);
  state.attempts.delete(clientMsgId);
  persistOutbox();
  // The next message of that conversation may go now.
  const next = state.outbox.find((o) => o.conversation_id === item.conversation_id && !o.failed);
  if (next && !state.attempts.has(next.client_msg_id)) trySend(next);
}

/** @param {string} convId @param {string} text */
function sendText(convId, text) {
  /** @type {OutboxItem} */
  const item = { client_msg_id: newClientMsgId(), conversation_id: convId, text, created_ms: Date.now() };
  state.outbox.push(item);
  persistOutbox();
  const c = ensureConv(convId);
  c.activityMs = Math.max(c.activityMs, item.created_ms);
  trySend(item);
  if (state.conn && state.connState !== 'open') state.conn.reconnectNow();
  scheduleRender({ stickToBottom: true });
}

/**
 * Send an outbox item if it is the oldest pending one of its conversation:
 * one send in flight per conversation keeps the order the user typed in,
 * even when the server refuses one (rate limit) and it is retried.
 * @param {OutboxItem} item
 */
function trySend(item) {
  if (item.failed || !state.outbox.includes(item)) return;
  const head = state.outbox.find((o) => o.conversation_id === item.conversation_id && !o.failed);
  if (head !== item) return;
  if (Date.now() < (state.pausedUntil.get(item.conversation_id) || 0)) return;
  if (byteLength(item.text) > WS_TEXT_LIMIT_BYTES) {
    sendOverHttp(item);
    return;
  }
  const ok = state.conn && state.conn.send({
    type: 'send', client_msg_id: item.client_msg_id, conversation_id: item.conversation_id,
    kind: 'text', text: item.text,
  });
  if (ok) state.attempts.set(item.client_msg_id, Date.now());
}

/** @param {OutboxItem} item */
async function sendOverHttp(item) {
  if (state.attempts.get(item.client_msg_id) === -1) return; // in flight
  state.attempts.set(item.client_msg_id, -1);
  try {
    const res = await api.sendMessage(item.conversation_id, item.client_msg_id, item.text);
    const m = res && res.message ? res.message : res;
    addMessage({ ...m, sender_id: m.sender_id || me(), text: m.text ?? item.text, client_msg_id: item.client_msg_id });
    removeFromOutbox(item.client_msg_id);
  } catch (e) {
    state.attempts.set(item.client_msg_id, Date.now());
    if (e instanceof ApiError) sendRefused(item, e.code, e.retryAfterMs);
  }
  scheduleRender();
}

/** The server refused a send (WS `error` with ref, or HTTP error). */
function sendRefused(/** @type {OutboxItem} */ item, /** @type {string} */ code, /** @type {number|undefined} */ retryAfterMs) {
  switch (code) {
    case 'rate_limited': {
      const wait = Math.max(250, Number(retryAfterMs) || 1000);
      toast(errorText('rate_limited', { retryAfterMs: wait }), 'warn');
      state.pausedUntil.set(item.conversation_id, Date.now() + wait);
      state.attempts.delete(item.client_msg_id);
      setTimeout(() => trySend(item), wait + 10);
      return;
    }
    case 'network':
    case 'unavailable':
    case 'internal':
      state.pausedUntil.set(item.conversation_id, Date.now() + 3000);
      state.attempts.delete(item.client_msg_id);
      setTimeout(() => trySend(item), 3010);
      return;
    case 'unauthorized':
      return;
    default:
      item.failed = code;
      persistOutbox();
      toast(errorText(code, { context: 'send' }));
      flushOutbox();
      scheduleRender();
  }
}

function flushOutbox() {
  for (const item of [...state.outbox]) trySend(item);
}

/** Resend anything not acknowledged in time (idempotent thanks to client_msg_id). */
function checkAcks() {
  if (state.connState !== 'open') return;
  const now = Date.now();
  for (const item of state.outbox) {
    const t = state.attempts.get(item.client_msg_id);
    if (!item.failed && t !== -1 && (t === undefined || now - t > ACK_TIMEOUT_MS)) trySend(item);
  }
}

// ---------------------------------------------------------------------------
// Receipts
// ---------------------------------------------------------------------------

/** @param {Conv} c @param {number} seq */
function queueDelivered(c, seq) {
  if (seq <= (state.deliveredSent.get(c.id) || 0)) return;
  const prev = state.pendingDelivered.get(c.id) || 0;
  if (seq > prev) state.pendingDelivered.set(c.id, seq);
  // Batch the receipts of a burst (or a replay) into one per conversation.
  if (!deliveredTimer) deliveredTimer = setTimeout(() => { deliveredTimer = null; flushDelivered(); }, 30);
}
let deliveredTimer = /** @type {any} */ (null);

function flushDelivered() {
  for (const [id, seq] of [...state.pendingDelivered]) {
    if (seq <= (state.deliveredSent.get(id) || 0)) { state.pendingDelivered.delete(id); continue; }
    if (state.conn && state.conn.send({ type: 'receipt', conversation_id: id, status: 'delivered', up_to_seq: seq })) {
      state.deliveredSent.set(id, seq);
      state.pendingDelivered.delete(id);
    }
  }
}

/** Tab visible and focused: the user can actually see the chat. */
function userIsLooking() {
  return document.visibilityState === 'visible' && document.hasFocus();
}

/** Send a read receipt for the newest message visible in the open chat. */
function checkRead() {
  const c = state.openId ? state.convs.get(state.openId) : null;
  if (!c || !c.historyLoaded || !userIsLooking() || state.connState !== 'open') return;
  const box = $('messages');
  const bottom = box.getBoundingClientRect().bottom;
  const top = box.getBoundingClientRect().top;
  let maxVisible = 0;
  const items = $('message-items').children;
  for (let i = items.length - 1; i >= 0; i--) {
    const el = /** @type {HTMLElement} */ (items[i]);
    const seq = Number(el.dataset.seq || 0);
    if (!seq) continue;
    const r = el.getBoundingClientRect();
    if (r.top < bottom - 4 && r.bottom > top + 4) { maxVisible = seq; break; }
    if (r.bottom <= top) break;
  }
  if (!maxVisible) return;
  const already = Math.max(c.readUpTo, state.readSent.get(c.id) || 0);
  if (maxVisible <= already) {
    if (c.unread && c.readUpTo >= c.lastSeq) { c.unread = 0; scheduleRender(); }
    return;
  }
  if (state.conn && state.conn.send({ type: 'receipt', conversation_id: c.id, status: 'read', up_to_seq: maxVisible })) {
    state.readSent.set(c.id, maxVisible);
    state.deliveredSent.set(c.id, Math.max(state.deliveredSent.get(c.id) || 0, maxVisible));
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
    if (m.sender_id !== me()) n++;
  }
  if (complete) c.unread = n;
}

/** Tick state of one of my messages. @param {Conv} c @param {number} seq */
function tickState(c, seq) {
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

// ---------------------------------------------------------------------------
// Typing and presence
// ---------------------------------------------------------------------------

/** @param {string|null} convId */
function sendTyping(convId, active) {
  if (!convId || !state.conn) return;
  state.conn.send({ type: 'typing', conversation_id: convId, active });
}

function onComposerInput() {
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  autoGrow(input);
  const id = state.openId;
  if (!id) return;
  state.drafts.set(id, input.value);
  const t = state.myTyping;
  if (!input.value.trim()) { stopTyping(); return; }
  const now = Date.now();
  if (t.convId !== id || now - t.lastSentMs > TYPING_RESEND_MS) {
    if (t.convId && t.convId !== id) sendTyping(t.convId, false);
    sendTyping(id, true);
    t.convId = id;
    t.lastSentMs = now;
  }
  clearTimeout(t.idleTimer);
  t.idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  const t = state.myTyping;
  clearTimeout(t.idleTimer);
  if (t.convId) sendTyping(t.convId, false);
  t.convId = null;
  t.lastSentMs = 0;
}

/** @param {{conversation_id: string, user_id: string, active: boolean}} f */
function onTypingFrame(f) {
  if (!f.conversation_id || !f.user_id || f.user_id === me()) return;
  let m = state.typing.get(f.conversation_id);
  if (!m) { m = new Map(); state.typing.set(f.conversation_id, m); }
  clearTimeout(m.get(f.user_id));
  if (f.active) {
    const map = m;
    map.set(f.user_id, setTimeout(() => { map.delete(f.user_id); renderHeader(); }, TYPING_EXPIRE_MS));
  } else {
    m.delete(f.user_id);
  }
  renderHeader();
}

/** @param {string} convId @param {string} userId */
function clearTypingOf(convId, userId) {
  const m = state.typing.get(convId);
  if (m && m.has(userId)) { clearTimeout(m.get(userId)); m.delete(userId); }
}

/** Subscribe to presence of the open direct chat's other member only. */
function syncPresenceSubscription() {
  const c = state.openId ? state.convs.get(state.openId) : null;
  const want = c && c.kind === 'direct' ? otherMember(c) : null;
  if (want === state.presenceSub) return;
  if (state.presenceSub && state.conn) state.conn.send({ type: 'presence_unsubscribe', user_ids: [state.presenceSub] });
  state.presenceSub = null;
  if (want) {
    if (state.conn && state.conn.send({ type: 'presence_subscribe', user_ids: [want] })) state.presenceSub = want;
    if (!state.presence.has(want)) {
      fetch(`/v1/users/${encodeURIComponent(want)}/presence`, {
        headers: { Authorization: `Bearer ${state.session && state.session.token}` },
      }).then((r) => (r.ok ? r.json() : null)).then((p) => {
        if (p && !(state.presence.get(want) || {}).viaWs) {
          state.presence.set(want, { online: !!p.online, last_seen_ms: p.last_seen_ms });
          renderHeader();
        }
      }).catch(() => {});
    }
  }
}

// ---------------------------------------------------------------------------
// WebSocket frames
// ---------------------------------------------------------------------------

/** @param {any} f */
function onFrame(f) {
  switch (f.type) {
    case 'ready': onReady(f); break;
    case 'synced':
      if (typeof f.cursor === 'number') advanceCursor(f.cursor);
      break;
    case 'message': onMessageFrame(f); break;
    case 'sent': onSentFrame(f); break;
    case 'receipt': onReceiptFrame(f); break;
    case 'receipt_summary': {
      const c = state.convs.get(f.conversation_id);
      if (!c) break;
      c.deliveredAll = Math.max(c.deliveredAll, Number(f.delivered_all_up_to) || 0, Number(f.read_all_up_to) || 0);
      c.readAll = Math.max(c.readAll, Number(f.read_all_up_to) || 0);
      scheduleRender();
      break;
    }
    case 'typing': onTypingFrame(f); break;
    case 'presence':
      if (f.user_id) {
        state.presence.set(f.user_id, { online: !!f.online, last_seen_ms: f.last_seen_ms, viaWs: true });
        if (!f.online) for (const id of state.typing.keys()) clearTypingOf(id, f.user_id);
        renderHeader();
      }
      break;
    case 'error': onErrorFrame(f); break;
    default: break; // unknown frames from a newer server are ignored
  }
}

/** @param {number} cursor */
function advanceCursor(cursor) {
  if (!state.session) return;
  const cur = store.loadCursor(me());
  if (cur === null || cursor > cur) store.saveCursor(me(), cursor);
}

/** @param {{cursor: number, user_id: string}} f */
function onReady(f) {
  state.readyCursor = typeof f.cursor === 'number' ? f.cursor : null;
  // With no stored cursor there is no replay: we start from the head and
  // read the state over HTTP below.
  if (store.loadCursor(me()) === null && state.readyCursor !== null) store.saveCursor(me(), state.readyCursor);
  state.presenceSub = null;
  syncPresenceSubscription();
  flushOutbox();
  flushDelivered();
  refreshAfterConnect();
}

async function refreshAfterConnect({ resync = false } = {}) {
  await refreshConversations();
  const c = state.openId ? state.convs.get(state.openId) : null;
  if (c) {
    fetchDetails(c);
    if (resync || !c.historyLoaded) await loadHistory(c, { reset: resync });
    else await catchUp(c);
  }
  if (resync) {
    // Other chats reload their history when opened.
    for (const other of state.convs.values()) if (other !== c) { other.messages.clear(); other.historyLoaded = false; }
  }
  scheduleRender();
}

/** @param {Message & {cursor?: number}} f */
function onMessageFrame(f) {
  const { type, cursor, ...m } = /** @type {any} */ (f);
  const known = state.convs.has(m.conversation_id);
  const c = ensureConv(m.conversation_id);
  const before = maxLoadedSeq(c);
  const isNew = addMessage(m, { live: true });
  if (typeof cursor === 'number') advanceCursor(cursor);
  if (!known) fetchDetails(c);
  if (m.sender_id !== me()) {
    clearTypingOf(c.id, m.sender_id);
    queueDelivered(c, m.seq);
  }
  if (isNew && c.historyLoaded && before && m.seq > before + 1) catchUp(c);
  scheduleRender();
}

/** @param {{client_msg_id: string, conversation_id: string, seq: number, message_id: string, sent_at_ms: number}} f */
function onSentFrame(f) {
  const item = state.outbox.find((o) => o.client_msg_id === f.client_msg_id);
  if (!item) return;
  addMessage({
    conversation_id: f.conversation_id || item.conversation_id, seq: f.seq, message_id: f.message_id,
    sender_id: me(), client_msg_id: f.client_msg_id, sent_at_ms: f.sent_at_ms || Date.now(),
    kind: 'text', text: item.text,
  });
  removeFromOutbox(f.client_msg_id);
  scheduleRender();
}

/** @param {{conversation_id: string, user_id: string, status: string, up_to_seq: number}} f */
function onReceiptFrame(f) {
  const c = state.convs.get(f.conversation_id);
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

/** @param {{code: string, message?: string, ref?: string, retry_after_ms?: number}} f */
function onErrorFrame(f) {
  const item = f.ref ? state.outbox.find((o) => o.client_msg_id === f.ref) : null;
  if (item) {
    sendRefused(item, f.code, f.retry_after_ms);
    return;
  }
  if (f.code === 'resync_required') {
    toast(errorText('resync_required'), 'info');
    store.saveCursor(me(), state.readyCursor);
    refreshAfterConnect({ resync: true });
    return;
  }
  if (['typing', 'receipt', 'ping', 'presence_subscribe', 'presence_unsubscribe'].includes(String(f.ref))) {
    console.warn('server refused', f.ref, f.code, f.message);
    return;
  }
  toast(errorText(f.code, { retryAfterMs: f.retry_after_ms }));
}

/** @param {import('./connection.js').ConnState} s @param {{retryInMs?: number}} [detail] */
function onConnState(s, detail) {
  const wasOpen = state.connState === 'open';
  state.connState = s;
  if (s === 'open') state.everConnected = true;
  if (wasOpen && s !== 'open') {
    // Presence and typing are only known while connected.
    state.presence.clear();
    for (const m of state.typing.values()) for (const t of m.values()) clearTimeout(t);
    state.typing.clear();
    renderHeader();
  }
  renderBanner(detail);
  if (s === 'open') setTimeout(checkRead, 50);
}

// ---------------------------------------------------------------------------
// Session lifecycle
// ---------------------------------------------------------------------------

/** @param {import('./store.js').StoredSession} session */
function enterApp(session) {
  state.session = session;
  store.saveSession(session);
  state.outbox = store.loadOutbox(session.user_id);
  rememberUser({ user_id: session.user_id, username: session.username });
  $('auth-view').hidden = true;
  $('app-view').hidden = false;
  $('me-name').textContent = session.username;
  paintAvatar($('me-avatar'), session.username);
  state.conn = new Connection({
    token: session.token,
    getSince: () => store.loadCursor(session.user_id),
    onFrame,
    onState: onConnState,
    onUnauthorized: () => onUnauthorized(),
  });
  state.conn.start();
  refreshConversations();
  state.timers.push(setInterval(checkAcks, 3000));
  state.timers.push(setInterval(() => renderHeader(), 30000));
  state.timers.push(setInterval(() => { if (state.connState === 'offline') renderBanner(); }, 1000));
  // Make sure the stored token still works (a reload after a revoke).
  api.me().then((u) => { if (u && u.username) rememberUser(u); }).catch(() => {});
  scheduleRender();
  if (matchMedia('(min-width: 761px)').matches) /** @type {HTMLElement} */ ($('new-chat-button')).focus({ preventScroll: true });
}

function resetState() {
  if (state.conn) state.conn.stop();
  state.conn = null;
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  stopTyping();
  state.session = null;
  state.convs.clear();
  state.openId = null;
  state.outbox = [];
  state.attempts.clear();
  state.pausedUntil.clear();
  state.presence.clear();
  state.typing.clear();
  state.presenceSub = null;
  state.deliveredSent.clear();
  state.readSent.clear();
  state.pendingDelivered.clear();
  state.drafts.clear();
  state.listLoaded = false;
  state.everConnected = false;
  listEls.clear();
  msgEls.clear();
  $('conversation-list').replaceChildren();
  $('message-items').replaceChildren();
  closeGroupPanel();
  closeChat();
}

function showAuth(message = '') {
  $('app-view').hidden = true;
  $('auth-view').hidden = false;
  $('auth-error').textContent = message;
  /** @type {HTMLInputElement} */ ($('auth-password')).value = '';
  /** @type {HTMLInputElement} */ ($('auth-username')).focus();
}

function onUnauthorized() {
  if (!state.session) return;
  store.saveSession(null);
  resetState();
  showAuth(errorText('unauthorized'));
}

async function logout() {
  try { await api.logout(); } catch { /* the local session ends anyway */ }
  store.saveSession(null);
  resetState();
  showAuth('');
}

// ---------------------------------------------------------------------------
// Auth form
// ---------------------------------------------------------------------------

function setupAuthForm() {
  const form = /** @type {HTMLFormElement} */ ($('auth-form'));
  const userEl = /** @type {HTMLInputElement} */ ($('auth-username'));
  const passEl = /** @type {HTMLInputElement} */ ($('auth-password'));
  const errEl = $('auth-error');
  const buttons = [/** @type {HTMLButtonElement} */ ($('login-button')), /** @type {HTMLButtonElement} */ ($('register-button'))];

  /** @param {boolean} register */
  async function submit(register) {
    const name = normalizeUsername(userEl.value);
    const password = passEl.value;
    errEl.textContent = '';
    if (!name) { errEl.textContent = 'Enter your username.'; userEl.focus(); return; }
    if (!password) { errEl.textContent = 'Enter your password.'; passEl.focus(); return; }
    if (register) {
      if (!/^[a-z0-9_.]{3,32}$/.test(name)) {
        errEl.textContent = 'Usernames are 3–32 characters: lowercase letters, digits, “_” or “.”.';
        userEl.focus();
        return;
      }
      if ([...password].length < 8) {
        errEl.textContent = 'Passwords need at least 8 characters.';
        passEl.focus();
        return;
      }
    }
    buttons.forEach((b) => { b.disabled = true; });
    form.setAttribute('aria-busy', 'true');
    try {
      if (register) {
        try {
          await api.register(name, password);
        } catch (e) {
          errEl.textContent = errorText(e instanceof ApiError ? e.code : 'internal', { context: 'register' });
          return;
        }
      }
      let s;
      try {
        s = await api.login(name, password);
      } catch (e) {
        errEl.textContent = errorText(e instanceof ApiError ? e.code : 'internal', { context: 'login' });
        return;
      }
      passEl.value = '';
      enterApp({ token: s.token, user_id: s.user_id, device_id: s.device_id, username: name });
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      form.removeAttribute('aria-busy');
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); submit(false); });
  $('register-button').addEventListener('click', () => submit(true));
}

// ---------------------------------------------------------------------------
// Sidebar forms: new chat, new group
// ---------------------------------------------------------------------------

function setupSidebarForms() {
  const chatForm = /** @type {HTMLFormElement} */ ($('new-chat-form'));
  const groupForm = /** @type {HTMLFormElement} */ ($('new-group-form'));

  $('new-chat-button').addEventListener('click', () => {
    groupForm.hidden = true;
    chatForm.hidden = false;
    $('new-chat-error').textContent = '';
    showSidebar();
    /** @type {HTMLInputElement} */ ($('new-chat-username')).focus();
  });
  $('new-group-button').addEventListener('click', () => {
    chatForm.hidden = true;
    groupForm.hidden = false;
    $('new-group-error').textContent = '';
    showSidebar();
    /** @type {HTMLInputElement} */ ($('new-group-name')).focus();
  });
  for (const form of [chatForm, groupForm]) {
    form.querySelector('[data-cancel]')?.addEventListener('click', () => { form.hidden = true; });
    form.addEventListener('keydown', (e) => { if (e.key === 'Escape') { form.hidden = true; } });
  }

  chatForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($('new-chat-username'));
    const err = $('new-chat-error');
    const name = normalizeUsername(input.value);
    err.textContent = '';
    if (!name) { err.textContent = 'Type a username.'; return; }
    if (state.session && name === state.session.username) { err.textContent = 'That’s you! Pick someone else.'; return; }
    busy(chatForm, true);
    try {
      let user;
      try {
        user = await lookupUsername(name);
      } catch (ex) {
        err.textContent = errorText(ex instanceof ApiError ? ex.code : 'internal', { context: 'user', subject: name });
        return;
      }
      try {
        const res = await api.startDirect(user.user_id);
        const c = ensureConv(res.conversation_id);
        c.kind = 'direct';
        c.memberIds = (res.members || []).map((/** @type {any} */ m) => (typeof m === 'string' ? m : m.user_id));
        if (!c.memberIds.length) c.memberIds = [me(), user.user_id];
        if (!c.activityMs) c.activityMs = Date.now();
        input.value = '';
        chatForm.hidden = true;
        openConversation(c.id);
      } catch (ex) {
        err.textContent = errorText(ex instanceof ApiError ? ex.code : 'internal');
      }
    } finally {
      busy(chatForm, false);
    }
  });

  groupForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const nameEl = /** @type {HTMLInputElement} */ ($('new-group-name'));
    const membersEl = /** @type {HTMLInputElement} */ ($('new-group-members'));
    const err = $('new-group-error');
    err.textContent = '';
    const name = nameEl.value.trim();
    if (!name) { err.textContent = 'Give the group a name.'; nameEl.focus(); return; }
    const names = parseUsernames(membersEl.value).filter((n) => !state.session || n !== state.session.username);
    busy(groupForm, true);
    try {
      const ids = await resolveUsernames(names, err);
      if (!ids) return;
      try {
        const res = await api.createGroup(name, ids);
        const c = ensureConv(res.conversation_id);
        c.kind = 'group';
        c.name = res.name || name;
        c.memberIds = (res.members || []).map((/** @type {any} */ m) => m.user_id);
        c.roles = new Map((res.members || []).map((/** @type {any} */ m) => [m.user_id, m.role]));
        if (!c.activityMs) c.activityMs = Date.now();
        nameEl.value = '';
        membersEl.value = '';
        groupForm.hidden = true;
        openConversation(c.id);
      } catch (ex) {
        err.textContent = errorText(ex instanceof ApiError ? ex.code : 'internal', { context: 'group' });
      }
    } finally {
      busy(groupForm, false);
    }
  });
}

/**
 * Look usernames up; on failure, explain which one in `errEl` and return null.
 * @param {string[]} names @param {HTMLElement} errEl
 */
async function resolveUsernames(names, errEl) {
  const results = await Promise.allSettled(names.map((n) => lookupUsername(n)));
  const missing = [];
  const ids = [];
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    if (r.status === 'fulfilled') ids.push(r.value.user_id);
    else if (r.reason instanceof ApiError && r.reason.code === 'not_found') missing.push(names[i]);
    else { errEl.textContent = errorText(r.reason instanceof ApiError ? r.reason.code : 'internal'); return null; }
  }
  if (missing.length) {
    errEl.textContent = missing.length === 1
      ? errorText('not_found', { context: 'user', subject: missing[0] })
      : `These users don’t exist: ${missing.join(', ')}.`;
    return null;
  }
  return ids;
}

/** @param {HTMLFormElement} form @param {boolean} on */
function busy(form, on) {
  form.querySelectorAll('button').forEach((b) => { b.disabled = on; });
  if (on) form.setAttribute('aria-busy', 'true'); else form.removeAttribute('aria-busy');
}

// ---------------------------------------------------------------------------
// Chat view
// ---------------------------------------------------------------------------

/** @param {string} id */
function openConversation(id) {
  const c = ensureConv(id);
  if (state.openId !== id) {
    stopTyping();
    const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
    if (state.openId) state.drafts.set(state.openId, input.value);
    state.openId = id;
    msgEls.clear();
    $('message-items').replaceChildren();
    input.value = state.drafts.get(id) || '';
    autoGrow(input);
    closeGroupPanel();
  }
  $('chat-placeholder').hidden = true;
  $('chat-pane').hidden = false;
  $('app-view').classList.add('chat-open');
  if (!c.historyLoaded) loadHistory(c);
  fetchDetails(c);
  syncPresenceSubscription();
  renderAll({ stickToBottom: true });
  /** @type {HTMLTextAreaElement} */ ($('composer-input')).focus({ preventScroll: true });
}

function closeChat() {
  stopTyping();
  state.openId = null;
  syncPresenceSubscription();
  $('chat-pane').hidden = true;
  $('chat-placeholder').hidden = false;
  $('app-view').classList.remove('chat-open');
  scheduleRender();
}

/** On phones, go back from the chat to the list. */
function showSidebar() {
  $('app-view').classList.remove('chat-open');
}

function setupChat() {
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  const form = /** @type {HTMLFormElement} */ ($('composer'));
  input.addEventListener('input', onComposerInput);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener('blur', () => { if (!input.value.trim()) stopTyping(); });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const c = state.openId ? state.convs.get(state.openId) : null;
    const text = input.value.replace(/^\s*\n/, '').replace(/\s+$/, '');
    if (!c || !text.trim()) return;
    if (c.left) { toast('You’re no longer a member of this group.'); return; }
    stopTyping();
    input.value = '';
    state.drafts.delete(c.id);
    autoGrow(input);
    sendText(c.id, text);
    input.focus();
  });
  $('back-button').addEventListener('click', () => {
    showSidebar();
    const li = state.openId ? listEls.get(state.openId) : null;
    if (li) li.focus();
  });
  const box = $('messages');
  box.addEventListener('scroll', () => {
    const c = state.openId ? state.convs.get(state.openId) : null;
    if (c && box.scrollTop < 120) loadOlder(c);
    throttledCheckRead();
    renderJumpButton();
  }, { passive: true });
  window.addEventListener('focus', () => checkRead());
  document.addEventListener('visibilitychange', () => {
    // Back from the background (phone unlocked…): don't wait out the backoff.
    if (document.visibilityState === 'visible' && state.conn && state.connState === 'offline') state.conn.reconnectNow();
    checkRead();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (state.groupPanelOpen) { closeGroupPanel(); return; }
    if ($('app-view').classList.contains('chat-open') && matchMedia('(max-width: 760px)').matches) showSidebar();
  });
  $('logout-button').addEventListener('click', () => logout());
  $('jump-button').addEventListener('click', () => {
    box.scrollTo({ top: box.scrollHeight, behavior: 'smooth' });
    /** @type {HTMLElement} */ ($('composer-input')).focus({ preventScroll: true });
  });
  $('message-items').addEventListener('click', (e) => {
    const btn = /** @type {HTMLElement} */ (e.target).closest('[data-discard]');
    if (!btn) return;
    removeFromOutbox(/** @type {HTMLElement} */ (btn).dataset.discard || '');
    scheduleRender();
  });
  setupGroupPanel();
}

let readTimer = /** @type {any} */ (null);
function throttledCheckRead() {
  if (readTimer) return;
  readTimer = setTimeout(() => { readTimer = null; checkRead(); }, 150);
}

/** @param {HTMLTextAreaElement} el */
function autoGrow(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight, 160)}px`;
}

// ---------------------------------------------------------------------------
// Group panel
// ---------------------------------------------------------------------------

function setupGroupPanel() {
  $('group-info-button').addEventListener('click', () => {
    if (state.groupPanelOpen) closeGroupPanel(); else openGroupPanel();
  });
  $('group-panel-close').addEventListener('click', () => closeGroupPanel());

  const renameForm = /** @type {HTMLFormElement} */ ($('rename-form'));
  renameForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const c = openConv();
    const input = /** @type {HTMLInputElement} */ ($('rename-input'));
    const name = input.value.trim();
    if (!c || !name) return;
    await groupAction(renameForm, async () => {
      await api.renameGroup(c.id, name);
      c.name = name;
      input.value = '';
    });
  });

  const addForm = /** @type {HTMLFormElement} */ ($('add-members-form'));
  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const c = openConv();
    const input = /** @type {HTMLInputElement} */ ($('add-members-input'));
    const names = parseUsernames(input.value);
    if (!c || !names.length) return;
    await groupAction(addForm, async () => {
      const ids = await resolveUsernames(names, $('group-panel-error'));
      if (!ids) return;
      await api.addMembers(c.id, ids);
      input.value = '';
      await fetchDetails(c);
    });
  });

  $('member-rows').addEventListener('click', async (e) => {
    const c = openConv();
    const roleBtn = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (e.target).closest('[data-role]'));
    if (roleBtn && c) {
      const uid = roleBtn.dataset.user || '';
      const role = roleBtn.dataset.role === 'admin' ? 'admin' : 'member';
      await groupAction(null, async () => {
        await api.setRole(c.id, uid, role);
        c.roles.set(uid, role);
        await fetchDetails(c);
      });
      return;
    }
    const btn = /** @type {HTMLElement} */ (e.target).closest('[data-remove]');
    if (!btn || !c) return;
    const uid = /** @type {HTMLElement} */ (btn).dataset.remove || '';
    await groupAction(null, async () => {
      await api.removeMember(c.id, uid);
      c.memberIds = c.memberIds.filter((x) => x !== uid);
      c.roles.delete(uid);
      await fetchDetails(c);
    });
  });

  $('leave-group-button').addEventListener('click', async () => {
    const c = openConv();
    if (!c) return;
    await groupAction(null, async () => {
      await api.removeMember(c.id, me());
      c.left = true;
      closeGroupPanel();
    });
  });
}

/** @param {HTMLFormElement|null} form @param {() => Promise<void>} fn */
async function groupAction(form, fn) {
  const err = $('group-panel-error');
  err.textContent = '';
  if (form) busy(form, true);
  try {
    await fn();
  } catch (ex) {
    err.textContent = errorText(ex instanceof ApiError ? ex.code : 'internal', { context: 'group' });
  } finally {
    if (form) busy(form, false);
    // The system message of our own action is not pushed to this device
    // (the server skips the acting device): fetch it.
    const c = openConv();
    if (c && c.historyLoaded) catchUp(c);
    scheduleRender();
  }
}

function openConv() { return state.openId ? state.convs.get(state.openId) || null : null; }

function openGroupPanel() {
  state.groupPanelOpen = true;
  $('group-panel').hidden = false;
  $('group-info-button').setAttribute('aria-expanded', 'true');
  $('group-panel-error').textContent = '';
  const c = openConv();
  if (c) fetchDetails(c);
  renderGroupPanel();
}

function closeGroupPanel() {
  state.groupPanelOpen = false;
  $('group-panel').hidden = true;
  $('group-info-button').setAttribute('aria-expanded', 'false');
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

let renderQueued = false;
let stickRequested = false;

/** Batch renders into one per frame (with a timer fallback for hidden tabs). */
function scheduleRender(opts = {}) {
  if (opts.stickToBottom) stickRequested = true;
  if (renderQueued) return;
  renderQueued = true;
  const run = () => {
    if (!renderQueued) return;
    renderQueued = false;
    const stick = stickRequested;
    stickRequested = false;
    renderAll({ stickToBottom: stick });
  };
  requestAnimationFrame(run);
  setTimeout(run, 100);
}

function renderAll(opts = {}) {
  if (!state.session) return;
  renderList();
  renderTitle();
  renderHeader();
  renderMessages(opts);
  renderComposer();
  if (state.groupPanelOpen) renderGroupPanel();
}

/** @param {HTMLElement} el @param {string} name */
function paintAvatar(el, name, group = false) {
  el.textContent = initials(name);
  el.style.setProperty('--hue', String(hueFor(name)));
  el.classList.toggle('group', group);
}

/** @param {string} tag @param {string} [cls] @param {string} [text] */
function h(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

const TICK_SVG = {
  Sending: '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6.2" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M8 4.5V8l2.4 1.6" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round"/></svg>',
  Sent: '<svg viewBox="0 0 18 16" aria-hidden="true"><path d="M3.5 8.5l3 3 7-7.5" fill="none" stroke="currentColor" stroke-width="1.7" stroke-linecap="round" stroke-linejoin="round"/></svg>',
  Delivered: '<svg viewBox="0 0 18 16" aria-hidden="true"><path d="M1.5 8.5l3 3 7-7.5M7.8 11.2l.3.3 7-7.5" fill="none" stroke="currentColor" stroke-width="1.7" stroke-linecap="round" stroke-linejoin="round"/></svg>',
  Failed: '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6.5" fill="currentColor"/><path d="M8 4.5v4.2" stroke="#fff" stroke-width="1.6" stroke-linecap="round"/><circle cx="8" cy="11.2" r="1" fill="#fff"/></svg>',
};

/** @param {'Sending'|'Sent'|'Delivered'|'Read'|'Failed'} s */
function tickEl(s) {
  const el = h('span', `tick tick-${s.toLowerCase()}`);
  el.setAttribute('role', 'img');
  const label = s === 'Failed' ? 'Failed to send' : s;
  el.setAttribute('aria-label', label);
  el.title = label;
  el.innerHTML = TICK_SVG[s === 'Read' ? 'Delivered' : s];
  return el;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"]+[^\s<>".,:;'!?)\]]/g;

/** Message text as DOM: plain text nodes, web links made clickable. @param {string} text */
function richText(text) {
  const el = h('div', 'text');
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    const i = match.index || 0;
    if (i > last) el.append(document.createTextNode(text.slice(last, i)));
    const a = /** @type {HTMLAnchorElement} */ (h('a', '', match[0]));
    a.href = match[0];
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    el.append(a);
    last = i + match[0].length;
  }
  if (last < text.length) el.append(document.createTextNode(text.slice(last)));
  return el;
}

/** Text describing a system message. @param {Conv} c @param {Message} m */
function systemText(c, m) {
  const who = (/** @type {string} */ id) => (id === me() ? 'You' : username(id));
  const whom = (/** @type {string[]} */ ids) => {
    const names = ids.map((id) => (id === me() ? 'you' : username(id)));
    return names.length <= 1 ? (names[0] || 'someone')
      : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  };
  const actor = who(m.sender_id);
  const ids = Array.isArray(m.user_ids) ? m.user_ids : [];
  switch (m.event) {
    case 'created': return `${actor} created the group${m.name ? ` “${m.name}”` : ''}`;
    case 'member_added': return `${actor} added ${whom(ids)}`;
    case 'member_removed': return `${actor} removed ${whom(ids)}`;
    case 'member_left': return `${ids.length ? who(ids[0]) : actor} left`;
    case 'renamed': {
      const n = m.name || m.text;
      return n ? `${actor} renamed the group to “${n}”` : `${actor} renamed the group`;
    }
    case 'role_changed': {
      const role = /** @type {any} */ (m).role;
      return role ? `${actor} made ${whom(ids)} ${role === 'admin' ? 'an admin' : 'a member'}` : `${actor} changed ${whom(ids)}’s role`;
    }
    default: return m.text || 'Group updated';
  }
}

/** Preview line for the list. @param {Conv} c */
function previewOf(c) {
  const pending = state.outbox.filter((o) => o.conversation_id === c.id);
  if (pending.length) {
    const last = pending[pending.length - 1];
    return { text: last.text, status: last.failed ? 'Failed' : 'Sending', prefix: '' };
  }
  const m = c.lastMessage;
  if (!m) return { text: c.kind === 'group' ? 'Group created' : 'No messages yet', status: null, prefix: '' };
  if (m.kind === 'system') return { text: systemText(c, m), status: null, prefix: '' };
  const text = m.kind === 'text' ? (m.text || '') : `[${m.kind}]`;
  if (m.sender_id === me()) return { text, status: tickState(c, m.seq), prefix: '' };
  return { text, status: null, prefix: c.kind === 'group' ? `${username(m.sender_id)}: ` : '' };
}

const listEls = /** @type {Map<string, HTMLLIElement>} */ (new Map());
let listElSerial = 0;

function sortedConvs() {
  const outboxTime = new Map();
  for (const o of state.outbox) outboxTime.set(o.conversation_id, Math.max(outboxTime.get(o.conversation_id) || 0, o.created_ms));
  return [...state.convs.values()]
    .map((c) => ({ c, t: Math.max(c.activityMs, outboxTime.get(c.id) || 0) }))
    .sort((a, b) => b.t - a.t || b.c.lastSeq - a.c.lastSeq)
    .map((x) => x.c);
}

function renderList() {
  const ul = $('conversation-list');
  const convs = sortedConvs();
  const keep = new Set(convs.map((c) => c.id));
  for (const [id, li] of listEls) if (!keep.has(id)) { li.remove(); listEls.delete(id); }
  convs.forEach((c, i) => {
    let li = listEls.get(c.id);
    if (!li) {
      li = /** @type {HTMLLIElement} */ (h('li', 'conv'));
      li.tabIndex = 0;
      li.dataset.id = c.id;
      li.innerHTML = '<span class="avatar" aria-hidden="true"></span><div class="conv-main"><div class="conv-top"><span class="conv-title"></span><time class="conv-time"></time></div><div class="conv-bottom"><span class="conv-preview"></span><span class="badge"></span></div></div>';
      const id = c.id;
      // Name = the title (the contract); the preview, time and unread count describe it.
      const n = ++listElSerial;
      /** @type {HTMLElement} */ (li.querySelector('.conv-preview')).id = `conv-prev-${n}`;
      /** @type {HTMLElement} */ (li.querySelector('.conv-time')).id = `conv-time-${n}`;
      /** @type {HTMLElement} */ (li.querySelector('.badge')).id = `conv-badge-${n}`;
      li.setAttribute('aria-describedby', `conv-prev-${n} conv-time-${n} conv-badge-${n}`);
      li.addEventListener('click', () => openConversation(id));
      li.addEventListener('keydown', (e) => onListKey(e, id));
      listEls.set(c.id, li);
    }
    const title = convTitle(c);
    if (li.getAttribute('aria-label') !== title) li.setAttribute('aria-label', title);
    li.classList.toggle('active', c.id === state.openId);
    if (c.id === state.openId) li.setAttribute('aria-current', 'true'); else li.removeAttribute('aria-current');
    paintAvatar(/** @type {HTMLElement} */ (li.querySelector('.avatar')), title, c.kind === 'group');
    /** @type {HTMLElement} */ (li.querySelector('.conv-title')).textContent = title;
    const t = Math.max(c.activityMs, ...state.outbox.filter((o) => o.conversation_id === c.id).map((o) => o.created_ms));
    const timeEl = /** @type {HTMLElement} */ (li.querySelector('.conv-time'));
    timeEl.textContent = c.lastMessage || t ? listTime(t) : '';
    const p = previewOf(c);
    const prev = /** @type {HTMLElement} */ (li.querySelector('.conv-preview'));
    prev.replaceChildren();
    if (p.status) {
      const tk = tickEl(/** @type {any} */ (p.status));
      tk.removeAttribute('role');
      tk.removeAttribute('aria-label');
      tk.removeAttribute('title');
      tk.setAttribute('aria-hidden', 'true');
      prev.append(tk);
    }
    if (p.prefix) prev.append(h('span', 'sender-prefix', p.prefix));
    prev.append(h('span', 'preview-text', p.text.replace(/\s+/g, ' ')));
    const badge = /** @type {HTMLElement} */ (li.querySelector('.badge'));
    const unread = c.unread;
    badge.textContent = unread > 0 ? (unread > 99 ? '99+' : String(unread)) : '';
    badge.hidden = !(unread > 0);
    li.classList.toggle('unread', unread > 0);
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
  });
  $('conversation-empty').hidden = !state.listLoaded || convs.length > 0;
}

/** Unread chats in the tab title: "(2) Parley". */
function renderTitle() {
  let n = 0;
  for (const c of state.convs.values()) if (c.unread > 0) n++;
  const t = n ? `(${n}) Parley` : 'Parley';
  if (document.title !== t) document.title = t;
}

/** Arrow keys move through the list; Enter opens. @param {KeyboardEvent} e @param {string} id */
function onListKey(e, id) {
  const li = /** @type {HTMLElement} */ (e.currentTarget);
  if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openConversation(id); }
  else if (e.key === 'ArrowDown') { e.preventDefault(); /** @type {HTMLElement|null} */ (li.nextElementSibling)?.focus(); }
  else if (e.key === 'ArrowUp') { e.preventDefault(); /** @type {HTMLElement|null} */ (li.previousElementSibling)?.focus(); }
}

function renderHeader() {
  const c = openConv();
  if (!c) return;
  const title = convTitle(c);
  $('chat-title').textContent = title;
  paintAvatar($('chat-avatar'), title, c.kind === 'group');
  $('group-info-button').hidden = c.kind !== 'group';
  const presenceEl = $('chat-presence');
  const typingEl = $('chat-typing');
  const typers = [...(state.typing.get(c.id) || new Map()).keys()];
  if (c.kind === 'direct') {
    const other = otherMember(c);
    presenceEl.textContent = other ? presenceText(state.presence.get(other)) : '';
    typingEl.textContent = typers.length ? 'typing…' : '';
  } else {
    presenceEl.textContent = c.left ? 'You’re not a member' : `${c.memberIds.length} member${c.memberIds.length === 1 ? '' : 's'}`;
    typingEl.textContent = typers.length === 0 ? ''
      : typers.length === 1 ? `${username(typers[0])} is typing…` : `${typers.length} people are typing…`;
  }
  typingEl.hidden = !typingEl.textContent;
  presenceEl.hidden = !presenceEl.textContent;
  presenceEl.classList.toggle('is-online', presenceEl.textContent === 'online');
}

function renderBanner(detail) {
  const el = $('connection-banner');
  const s = state.connState;
  if (!state.session || s === 'open' || s === 'stopped') { el.hidden = true; el.replaceChildren(); return; }
  if (s === 'connecting' && !state.everConnected) {
    el.hidden = false;
    el.className = 'connection-banner connecting';
    el.textContent = 'Connecting…';
    return;
  }
  if (detail && typeof detail.retryInMs === 'number') bannerRetryAt = Date.now() + detail.retryInMs;
  el.hidden = false;
  el.className = 'connection-banner offline';
  const secs = Math.max(0, Math.ceil((bannerRetryAt - Date.now()) / 1000));
  const text = s === 'connecting' ? 'Reconnecting…' : `No connection. Retrying${secs ? ` in ${secs} s` : ''}…`;
  const pending = state.outbox.filter((o) => !o.failed).length;
  el.replaceChildren(h('span', '', pending ? `${text} ${pending} message${pending === 1 ? '' : 's'} waiting.` : text));
  if (s === 'offline') {
    const btn = h('button', 'link-btn', 'Retry now');
    btn.type = 'button';
    btn.addEventListener('click', () => state.conn && state.conn.reconnectNow());
    el.append(btn);
  }
}
let bannerRetryAt = 0;

const msgEls = /** @type {Map<string, HTMLElement>} */ (new Map());

/** @param {{stickToBottom?: boolean, keepScroll?: boolean}} [opts] */
function renderMessages(opts = {}) {
  const c = openConv();
  if (!c) return;
  const box = $('messages');
  const container = $('message-items');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;

  /** @type {{key: string, kind: 'day'|'msg'|'pending', ms: number, m?: Message, o?: OutboxItem}[]} */
  const items = [];
  let lastDay = '';
  const push = (/** @type {any} */ it) => {
    const dk = dayKey(it.ms);
    if (dk !== lastDay) { items.push({ key: `d:${dk}`, kind: 'day', ms: it.ms }); lastDay = dk; }
    items.push(it);
  };
  const seqs = [...c.messages.keys()].sort((a, b) => a - b);
  for (const s of seqs) {
    const m = /** @type {Message} */ (c.messages.get(s));
    push({ key: `s:${s}`, kind: 'msg', ms: m.sent_at_ms || 0, m });
  }
  for (const o of state.outbox) {
    if (o.conversation_id === c.id) push({ key: `p:${o.client_msg_id}`, kind: 'pending', ms: o.created_ms, o });
  }

  const keep = new Set(items.map((i) => i.key));
  for (const [k, el] of msgEls) if (!keep.has(k)) { el.remove(); msgEls.delete(k); }
  let prevSender = '';
  let prevMs = 0;
  items.forEach((it, i) => {
    let el = msgEls.get(it.key);
    if (it.kind === 'day') {
      if (!el) { el = h('div', 'day-sep'); el.append(h('span', '', '')); msgEls.set(it.key, el); }
      /** @type {HTMLElement} */ (el.firstChild).textContent = dayLabel(it.ms);
      prevSender = '';
    } else if (it.kind === 'msg' && it.m && it.m.kind === 'system') {
      if (!el) { el = h('div', 'msg system'); el.dataset.seq = String(it.m.seq); el.append(h('span')); msgEls.set(it.key, el); }
      /** @type {HTMLElement} */ (el.firstChild).textContent = systemText(c, it.m);
      prevSender = '';
    } else {
      const m = it.m;
      const o = it.o;
      const sender = m ? m.sender_id : me();
      const own = sender === me();
      if (!el) {
        el = h('div', `msg ${own ? 'own' : 'other'}`);
        const bubble = h('div', 'bubble');
        if (!own && c.kind === 'group') bubble.append(h('div', 'sender'));
        bubble.append(richText(m ? (m.kind === 'text' ? (m.text || '') : `[${m.kind}]`) : (o ? o.text : '')));
        const meta = h('div', 'meta');
        meta.append(h('time'));
        bubble.append(meta);
        el.append(bubble);
        if (m) el.dataset.seq = String(m.seq);
        msgEls.set(it.key, el);
      }
      const cont = prevSender === sender && it.ms - prevMs < 5 * 60000;
      el.classList.toggle('cont', cont);
      const senderEl = /** @type {HTMLElement|null} */ (el.querySelector('.sender'));
      if (senderEl) {
        const n = username(sender);
        senderEl.textContent = n;
        senderEl.style.setProperty('--hue', String(hueFor(n)));
        senderEl.hidden = cont;
      }
      const meta = /** @type {HTMLElement} */ (el.querySelector('.meta'));
      const time = /** @type {HTMLElement} */ (meta.querySelector('time'));
      time.textContent = clockTime(it.ms);
      time.setAttribute('datetime', new Date(it.ms).toISOString());
      if (own) {
        const status = o ? (o.failed ? 'Failed' : 'Sending') : tickState(c, /** @type {Message} */ (m).seq);
        const old = /** @type {HTMLElement|null} */ (meta.querySelector('.tick'));
        if (!old || old.dataset.state !== status) {
          const t = tickEl(/** @type {any} */ (status));
          t.dataset.state = status;
          if (old) old.replaceWith(t); else meta.append(t);
        }
        let note = /** @type {HTMLElement|null} */ (el.querySelector('.failed-note'));
        if (o && o.failed) {
          if (!note) {
            note = h('div', 'failed-note');
            note.append(h('span'));
            const btn = h('button', 'link-btn', 'Discard');
            btn.type = 'button';
            btn.dataset.discard = o.client_msg_id;
            note.append(btn);
            el.append(note);
          }
          /** @type {HTMLElement} */ (note.firstChild).textContent = `Not delivered: ${errorText(o.failed, { context: 'send' })} `;
        } else if (note) {
          note.remove();
        }
      }
      prevSender = sender;
      prevMs = it.ms;
    }
    if (container.children[i] !== el) container.insertBefore(el, container.children[i] || null);
  });
  renderHistoryStatus(c);
  if (!opts.keepScroll && (opts.stickToBottom || atBottom)) box.scrollTop = box.scrollHeight;
  renderJumpButton();
  // A short first page that doesn't fill the screen: fetch more right away.
  if (c.hasMoreOlder && !c.loadingOlder && box.scrollHeight <= box.clientHeight + 10) loadOlder(c);
  throttledCheckRead();
}

/** "Jump to latest" shows when scrolled away from the bottom; it counts new messages. */
function renderJumpButton() {
  const box = $('messages');
  const btn = $('jump-button');
  const c = openConv();
  const away = box.scrollHeight - box.scrollTop - box.clientHeight > 160;
  btn.hidden = !away;
  const n = c && away ? c.unread : 0;
  $('jump-count').textContent = n > 0 ? String(n) : '';
  $('jump-count').hidden = !(n > 0);
}

/** @param {Conv} c */
function renderHistoryStatus(c) {
  if (state.openId !== c.id) return;
  const el = $('history-status');
  el.textContent = !c.historyLoaded ? 'Loading messages…'
    : c.loadingOlder ? 'Loading earlier messages…'
      : c.hasMoreOlder ? '' : (c.messages.size ? 'This is the beginning of the chat.' : 'No messages yet. Say hello!');
}

function renderComposer() {
  const c = openConv();
  if (!c) return;
  const notice = $('composer-notice');
  const form = $('composer');
  if (c.left) {
    notice.hidden = false;
    notice.textContent = 'You can’t send messages to this group because you’re no longer a member.';
    form.hidden = true;
  } else {
    notice.hidden = true;
    form.hidden = false;
  }
}

function renderGroupPanel() {
  const c = openConv();
  if (!c || c.kind !== 'group') { closeGroupPanel(); return; }
  const admin = isAdmin(c) && !c.left;
  for (const el of document.querySelectorAll('#group-panel .admin-only')) /** @type {HTMLElement} */ (el).hidden = !admin;
  $('leave-group-button').hidden = c.left;
  const ids = [...c.memberIds].sort((a, b) => (a === me() ? -1 : b === me() ? 1 : username(a).localeCompare(username(b))));
  $('member-count').textContent = `${ids.length} member${ids.length === 1 ? '' : 's'}`;
  const rows = $('member-rows');
  rows.replaceChildren();
  for (const id of ids) {
    const row = h('div', 'member-row');
    const name = username(id);
    const av = h('span', 'avatar small');
    av.setAttribute('aria-hidden', 'true');
    paintAvatar(av, name);
    const info = h('div', 'member-info');
    info.append(h('span', 'member-name', id === me() ? `${name} (you)` : name));
    const isAdminMember = c.roles.get(id) === 'admin';
    if (isAdminMember) info.append(h('span', 'role-badge', 'admin'));
    row.append(av, info);
    if (admin && id !== me()) {
      const actions = h('div', 'member-actions');
      const roleBtn = h('button', 'btn ghost small', isAdminMember ? 'Dismiss as admin' : 'Make admin');
      roleBtn.type = 'button';
      roleBtn.dataset.role = isAdminMember ? 'member' : 'admin';
      roleBtn.dataset.user = id;
      roleBtn.setAttribute('aria-label', isAdminMember ? `Dismiss ${name} as admin` : `Make ${name} an admin`);
      const btn = h('button', 'btn ghost small danger-text', 'Remove');
      btn.type = 'button';
      btn.dataset.remove = id;
      btn.setAttribute('aria-label', `Remove ${name}`);
      actions.append(roleBtn, btn);
      row.append(actions);
    }
    rows.append(row);
  }
}

// ---------------------------------------------------------------------------
// Toasts
// ---------------------------------------------------------------------------

/** @param {string} text @param {'error'|'warn'|'info'} [kind] */
function toast(text, kind = 'error') {
  const box = $('toasts');
  for (const el of box.children) if (el.textContent === text) return;
  const el = h('div', `toast ${kind}`, text);
  el.setAttribute('role', kind === 'info' ? 'status' : 'alert');
  box.append(el);
  setTimeout(() => { el.classList.add('leaving'); setTimeout(() => el.remove(), 300); }, 6000);
}

// ---------------------------------------------------------------------------
// Boot
// ---------------------------------------------------------------------------

function boot() {
  loadCachedUsers();
  setupAuthForm();
  setupSidebarForms();
  setupChat();
  const session = store.loadSession();
  if (session) enterApp(session); else showAuth();
}

boot();
