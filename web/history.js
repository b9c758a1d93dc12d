// Loading what the server has over HTTP: the conversation list, a chat's
// latest page, scroll-back to older pages, filling a gap after the newest
// loaded message, and the reload after (re)connecting or a resync.

import { ApiError } from './api.js';
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from './protocol.js';
import { api, me } from './session.js';
import * as store from './store.js';
import {
  convs, openConv, openConvId, markListLoaded, mergeSummary, fetchDetails, sortedConvs, addMessage,
  maxLoadedSeq, minLoadedSeq,
} from './model.js';
import * as outbox from './outbox.js';
import { queueDelivered, tickState } from './receipts.js';
import { errorText } from './format.js';
import { scheduleRender } from './ui/refresh.js';
import { toast } from './ui/toast.js';

/** @typedef {import('./model.js').Conv} Conv */

let listLoading = /** @type {Promise<void>|null} */ (null);

/** Pages of HISTORY_MAX_LIMIT loaded on open to reach the first unread message. */
const UNREAD_PAGES_MAX = 20;

/** Reload the conversation list over HTTP (one request at a time). */
export function refreshConversations() {
  if (listLoading) return listLoading;
  listLoading = (async () => {
    try {
      const known = new Set(convs.keys());
      const res = await api.conversations();
      const seen = new Set();
      for (const s of res.conversations || []) {
        mergeSummary(s);
        seen.add(s.conversation_id);
      }
      // Drop chats the server no longer lists (unless open, still pending, or
      // learnt about while the request was in flight).
      for (const id of [...convs.keys()]) {
        if (known.has(id) && !seen.has(id) && id !== openConvId() && !outbox.hasItemsFor(id)) {
          const c = convs.get(id);
          if (c && c.lastSeq > 0) convs.delete(id);
        }
      }
      markListLoaded();
      rememberConversations();
      // Anything we can see in the list has arrived on this device.
      let detailFetches = 0;
      for (const c of sortedConvs(outbox.pendingTimes())) {
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

/** @type {ReturnType<typeof setTimeout>|null} */
let saveTimer = null;

/**
 * Keep the conversation list in localStorage (at most once a second) so a
 * reload without a server still shows it: after the list loads and as live
 * messages and details change it.
 */
export function rememberConversations() {
  if (saveTimer) return;
  saveTimer = setTimeout(() => {
    saveTimer = null;
    if (!me()) return;
    store.saveConvList(me(), sortedConvs(outbox.pendingTimes()).map((c) => ({
      conversation_id: c.id, kind: c.kind, name: c.name, members: c.memberIds, last_seq: c.lastSeq,
      last_message: c.lastMessage, unread_count: c.unread, read_up_to: c.readUpTo,
      left: c.left, muted_until_ms: c.mutedUntilMs, pinned: c.pinned, archived: c.archived,
    })));
  }, 1000);
}

/**
 * Show the list this device saw last (boot, before the server answers): a
 * reload while the server is down still shows the chats.
 */
export function loadCachedConversations() {
  const items = store.loadConvList(me());
  for (const s of items) mergeSummary(s);
  if (items.length) markListLoaded();
  scheduleRender();
}

/**
 * After the socket is ready: reload the list and bring the open chat up to
 * date. With `resync` (the server lost our place) the open chat's history is
 * reloaded and the other chats' loaded messages are dropped.
 */
export async function refreshAfterConnect({ resync = false } = {}) {
  await refreshConversations();
  const c = openConv();
  if (c) {
    fetchDetails(c);
    if (resync || !c.historyLoaded) await loadHistory(c, { reset: resync });
    else await catchUp(c);
  }
  if (resync) {
    // Other chats reload their history when opened.
    for (const other of convs.values()) if (other !== c) { other.messages.clear(); other.historyLoaded = false; }
  }
  scheduleRender();
}

/** The latest page of a chat. @param {Conv} c */
export async function loadHistory(c, { reset = false } = {}) {
  try {
    const res = await api.messages(c.id, { limit: HISTORY_DEFAULT_LIMIT });
    if (reset) c.messages.clear();
    mergePage(res.messages);
    c.hasMoreOlder = !!res.has_more;
    // The chat opens at its first unread message: load back to it (a few
    // pages at most; beyond that the view starts at the oldest loaded one).
    for (let i = 0; i < UNREAD_PAGES_MAX && c.unread > 0 && c.hasMoreOlder && minLoadedSeq(c) > c.readUpTo + 1; i++) {
      const older = await api.messages(c.id, { before_seq: minLoadedSeq(c), limit: HISTORY_MAX_LIMIT });
      mergePage(older.messages);
      c.hasMoreOlder = !!older.has_more && (older.messages || []).length > 0;
    }
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

/**
 * Scroll-back: the page before the oldest loaded message. The view shows the
 * loading state through `statusChanged`, and `keepScroll` merges the page
 * while keeping what the user looks at in place.
 * @param {Conv} c
 * @param {{statusChanged: (c: Conv) => void, keepScroll: (c: Conv, merge: () => void) => void}} view
 */
export async function loadOlder(c, view) {
  if (c.loadingOlder || !c.hasMoreOlder) return;
  const before = minLoadedSeq(c);
  if (!before) return;
  c.loadingOlder = true;
  view.statusChanged(c);
  try {
    const res = await api.messages(c.id, { before_seq: before, limit: HISTORY_MAX_LIMIT });
    view.keepScroll(c, () => {
      mergePage(res.messages);
      c.hasMoreOlder = !!res.has_more && (res.messages || []).length > 0;
    });
  } catch (e) {
    if (e instanceof ApiError && e.code !== 'network') toast(errorText(e.code));
  } finally {
    c.loadingOlder = false;
    view.statusChanged(c);
  }
}

/**
 * Merge a page of history. Each message shows its state as of when the page
 * was read, which was at least its newest seq (events up to there are in it).
 * @param {import('./api.js').Message[]|undefined} messages
 */
function mergePage(messages) {
  const list = messages || [];
  const asOf = list.reduce((max, m) => Math.max(max, Number(m.seq) || 0), 0);
  for (const m of list) addMessage(m, { asOf });
}

/** Pages loaded at most to reach a message far back (a quote or a search result). */
const JUMP_PAGES_MAX = 100;

/**
 * Load history back to `seq` (older pages, so what is loaded stays one run
 * without holes). Resolves whether `seq` is loaded.
 * @param {Conv} c @param {number} seq
 */
export async function loadBackTo(c, seq) {
  if (!c.historyLoaded) await loadHistory(c);
  try {
    for (let i = 0; i < JUMP_PAGES_MAX && !c.messages.has(seq) && c.hasMoreOlder && minLoadedSeq(c) > seq; i++) {
      const res = await api.messages(c.id, { before_seq: minLoadedSeq(c), limit: HISTORY_MAX_LIMIT });
      mergePage(res.messages);
      c.hasMoreOlder = !!res.has_more && (res.messages || []).length > 0;
    }
  } catch (e) {
    if (e instanceof ApiError && e.code !== 'network') toast(errorText(e.code));
  }
  return c.messages.has(seq);
}

/** Fetch everything after the newest loaded message (gap filling). @param {Conv} c */
export async function catchUp(c) {
  if (!c.historyLoaded || c.catchingUp) return;
  c.catchingUp = true;
  try {
    for (let i = 0; i < 50; i++) {
      const after = maxLoadedSeq(c);
      const res = await api.messages(c.id, { after_seq: after, limit: HISTORY_MAX_LIMIT });
      mergePage(res.messages);
      if (!res.has_more || !(res.messages || []).length) break;
    }
  } catch { /* retried on the next reconnect */ }
  c.catchingUp = false;
  scheduleRender();
}
