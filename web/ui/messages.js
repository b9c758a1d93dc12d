// The open chat's message list: bubbles (kept per message and updated in
// place), day separators, the "N unread messages" separator, pending and
// failed sends, the history status line, the "Jump to latest" and "Jump to
// first unread" buttons, scroll-back, and noticing what the user has read.
//
// Only a window of at most WINDOW_MAX messages is in the DOM, however many
// are loaded: scrolling near either edge slides the window (keeping what the
// user looks at in place), and scroll-back past the oldest loaded message
// loads an older page. A 10,000-message chat costs no more DOM than a short one.

import { me } from '../session.js';
import * as link from '../link.js';
import { openConv, openConvId, maxLoadedSeq } from '../model.js';
import * as outbox from '../outbox.js';
import { loadOlder, loadBackTo } from '../history.js';
import { markRead, tickState } from '../receipts.js';
import { displayName } from '../users.js';
import { errorText, clockTime, dayLabel, dayKey, hueFor } from '../format.js';
import { $, h } from './dom.js';
import { tickEl, systemText } from './message-parts.js';
import { bodyKey, fillBody, fillReactions } from './bubble.js';
import { paintUpload } from './media-view.js';
import { isEvent } from '../events.js';
import { isHidden } from '../message-actions.js';
import { scheduleRender, cancelStickToBottom } from './refresh.js';
import { toast } from './toast.js';
import { openMessageMenu, attachMenuGestures } from './message-menu.js';
import { react } from '../message-actions.js';
import { reactionOf } from '../events.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../store.js').OutboxItem} OutboxItem */
/** @typedef {import('../model.js').Conv} Conv */

/** Rendered elements by key: `d:<day>`, `s:<seq>`, `p:<client_msg_id>`, `u:` (unread separator). */
const msgEls = /** @type {Map<string, HTMLElement>} */ (new Map());

/** Most messages in the DOM at once. */
export const WINDOW_MAX = 150;
/** How far the window slides at a time. */
const WINDOW_STEP = 50;
/** Closer than this to an edge of the rendered window, it slides (or an older page loads). */
const EDGE_PX = 600;

/**
 * The rendered window: the newest WINDOW_MAX messages (`latest`), or
 * WINDOW_MAX messages from seq `lo` on.
 */
const win = { latest: true, lo: 0 };
/** Where the open chat's unread messages began when it was opened (the separator). */
let unreadMark = /** @type {{convId: string, afterSeq: number, count: number}|null} */ (null);
/** A scroll the next render owes the user: to the unread separator, the newest message, or `targetSeq`. */
let pendingScroll = /** @type {'unread'|'bottom'|'target'|null} */ (null);
/** The message a jump (a quote, a search result) brings into view. */
let targetSeq = 0;
/** Messages entering the view may be read: the observer asks `checkRead`. */
let observer = /** @type {IntersectionObserver|null} */ (null);

/** Empty the list (another chat opens, or log out). */
export function clearMessages() {
  msgEls.clear();
  if (observer) observer.disconnect();
  $('message-items').replaceChildren();
  win.latest = true;
  win.lo = 0;
  unreadMark = null;
  pendingScroll = null;
}

/**
 * A chat is opening: remember where its unread messages begin (the
 * separator and the first scroll go there), or else start at the newest.
 * @param {Conv} c
 */
export function prepareOpen(c) {
  unreadMark = c.unread > 0 ? { convId: c.id, afterSeq: c.readUpTo, count: c.unread } : null;
  pendingScroll = unreadMark ? 'unread' : 'bottom';
  win.latest = true;
  if (unreadMark) windowAround(c, unreadMark.afterSeq + 1);
}

/**
 * The seqs of `c`'s loaded messages that show as bubbles, ascending: events
 * (edits, deletes, reactions) change other bubbles, and messages deleted
 * "for me" are not shown.
 * @param {Conv} c
 */
function sortedSeqs(c) {
  const out = [];
  for (const [seq, m] of c.messages) if (!isEvent(m) && !isHidden(c.id, seq)) out.push(seq);
  return out.sort((a, b) => a - b);
}

/** Index of the first element of `arr` that is ≥ `x`. @param {number[]} arr @param {number} x */
function lowerBound(arr, x) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arr[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** Point the window at `seq`, with a little context above it. @param {Conv} c @param {number} seq */
function windowAround(c, seq) {
  const seqs = sortedSeqs(c);
  const i = Math.max(0, lowerBound(seqs, seq) - 10);
  if (seqs.length - i <= WINDOW_MAX) { win.latest = true; return; }
  win.latest = false;
  win.lo = seqs[i];
}

/** Index range [lo, hi] of the rendered window in `seqs`. @param {number[]} seqs */
function windowRange(seqs) {
  if (!seqs.length) return { lo: 0, hi: -1 };
  if (win.latest) return { lo: Math.max(0, seqs.length - WINDOW_MAX), hi: seqs.length - 1 };
  const lo = Math.min(lowerBound(seqs, win.lo), Math.max(0, seqs.length - WINDOW_MAX));
  const hi = Math.min(seqs.length - 1, lo + WINDOW_MAX - 1);
  if (hi === seqs.length - 1) win.latest = true;
  return { lo, hi };
}

/**
 * Re-render after `change` without moving what the user looks at: the first
 * element visible at the top stays where it was.
 * @param {() => void} change
 */
function keepingAnchor(change) {
  const box = $('messages');
  const top = box.getBoundingClientRect().top;
  let anchor = /** @type {HTMLElement|null} */ (null);
  let offset = 0;
  for (const el of /** @type {HTMLCollectionOf<HTMLElement>} */ ($('message-items').children)) {
    const r = el.getBoundingClientRect();
    if (r.bottom > top) { anchor = el; offset = r.top - top; break; }
  }
  change();
  if (anchor && anchor.isConnected) box.scrollTop += anchor.getBoundingClientRect().top - top - offset;
}

/** The user scrolled: slide the window near its edges, load older pages at the very top. */
export function onMessagesScroll() {
  const c = openConv();
  if (!c || !c.historyLoaded) return;
  const box = $('messages');
  const seqs = sortedSeqs(c);
  const { lo, hi } = windowRange(seqs);
  if (box.scrollTop < EDGE_PX) {
    if (lo > 0) {
      keepingAnchor(() => {
        win.latest = false;
        win.lo = seqs[Math.max(0, lo - WINDOW_STEP)];
        renderMessages({ keepScroll: true });
      });
    } else if (c.hasMoreOlder) {
      loadOlderMessages(c);
    }
  } else if (!win.latest && box.scrollHeight - box.scrollTop - box.clientHeight < EDGE_PX && hi < seqs.length - 1) {
    keepingAnchor(() => {
      win.lo = seqs[Math.min(seqs.length - 1, lo + WINDOW_STEP)];
      renderMessages({ keepScroll: true });
    });
  }
}

/** Show the newest messages. */
export function jumpToLatest() {
  win.latest = true;
  renderMessages({ stickToBottom: true });
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
  renderJumpButton();
}

/** Back to the unread separator of the open chat. */
export function jumpToFirstUnread() {
  const c = openConv();
  if (!c || !unreadMark || unreadMark.convId !== c.id) return;
  windowAround(c, unreadMark.afterSeq + 1);
  pendingScroll = 'unread';
  renderMessages({ keepScroll: true });
  renderJumpButton();
}

/**
 * Bring message `seq` of the open chat into view (loading older history
 * back to it when needed) and flash it.
 * @param {number} seq
 */
export async function jumpToMessage(seq) {
  const c = openConv();
  if (!c) return false;
  const found = await loadBackTo(c, seq);
  if (openConv() !== c) return false;
  if (!found) { toast('That message isn’t available any more.', 'info'); return false; }
  windowAround(c, seq);
  targetSeq = seq;
  pendingScroll = 'target';
  cancelStickToBottom();
  renderMessages({ keepScroll: true });
  return true;
}

/** The message element of `seq` in the open chat, if rendered. @param {number} seq */
export function messageElement(seq) {
  return msgEls.get(`s:${seq}`) || null;
}

/** The loaded message a click inside the list belongs to. @param {HTMLElement} el */
function messageAt(el) {
  const c = openConv();
  const row = /** @type {HTMLElement|null} */ (el.closest('.msg[data-seq]'));
  const m = c && row ? c.messages.get(Number(row.dataset.seq)) : null;
  return c && m && row ? { c, m, row } : null;
}

/** Wire the list's own controls: Discard of a failed send, quotes, reactions, the message menu. */
export function setupMessages() {
  const items = $('message-items');
  items.addEventListener('click', (e) => {
    const target = /** @type {HTMLElement} */ (e.target);
    const discard = target.closest('[data-discard]');
    if (discard) {
      outbox.remove(/** @type {HTMLElement} */ (discard).dataset.discard || '');
      scheduleRender();
      return;
    }
    const quote = /** @type {HTMLElement|null} */ (target.closest('[data-jump]'));
    if (quote) { jumpToMessage(Number(quote.dataset.jump)); return; }
    const at = messageAt(target);
    if (!at) return;
    const reaction = /** @type {HTMLElement|null} */ (target.closest('.reaction'));
    if (reaction) {
      // Pressing my own reaction takes it back; another one makes it mine.
      const emoji = reaction.dataset.emoji || '';
      react(at.c, at.m.seq, reactionOf(at.m, me()) === emoji ? '' : emoji);
      return;
    }
    const menuBtn = /** @type {HTMLElement|null} */ (target.closest('.msg-actions-btn'));
    if (menuBtn) openMessageMenu(menuBtn, at.c, at.m);
  });
  // Right-click and a long press open the same menu.
  attachMenuGestures(items, (el, point) => {
    const at = messageAt(el);
    if (!at) return false;
    openMessageMenu(/** @type {HTMLElement} */ (at.row.querySelector('.msg-actions-btn')), at.c, at.m, point);
    return true;
  });
}

/** How scroll-back shows itself in this view. */
const olderView = {
  statusChanged: renderHistoryStatus,
  /** Merge an older page without moving what the user looks at. @param {Conv} c @param {() => void} merge */
  keepScroll(c, merge) {
    if (openConvId() !== c.id) { merge(); return; }
    const seqs = sortedSeqs(c);
    const { lo } = windowRange(seqs);
    keepingAnchor(() => {
      merge();
      // Still at the top of what is loaded: show the page that just came.
      if (lo === 0 && seqs.length) {
        const first = sortedSeqs(c);
        win.latest = false;
        win.lo = first[Math.max(0, lowerBound(first, seqs[0]) - WINDOW_STEP)];
      }
      renderMessages({ keepScroll: true });
    });
  },
};

/** Load the page before the oldest loaded message of `c`. @param {Conv} c */
export function loadOlderMessages(c) {
  return loadOlder(c, olderView);
}

/** @param {{stickToBottom?: boolean, keepScroll?: boolean}} [opts] */
export function renderMessages(opts = {}) {
  const c = openConv();
  if (!c) return;
  const box = $('messages');
  const container = $('message-items');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;

  /** @type {{key: string, kind: 'day'|'msg'|'pending'|'unread', ms: number, m?: Message, o?: OutboxItem}[]} */
  const items = [];
  let lastDay = '';
  const push = (/** @type {any} */ it) => {
    const dk = dayKey(it.ms);
    if (dk !== lastDay) { items.push({ key: `d:${dk}`, kind: 'day', ms: it.ms }); lastDay = dk; }
    items.push(it);
  };
  const mark = unreadMark && unreadMark.convId === c.id ? unreadMark : null;
  if (pendingScroll === 'unread' && c.historyLoaded && mark) windowAround(c, mark.afterSeq + 1);
  const seqs = sortedSeqs(c);
  const range = windowRange(seqs);
  let markPlaced = false;
  for (let i = range.lo; i <= range.hi; i++) {
    const s = seqs[i];
    const m = /** @type {Message} */ (c.messages.get(s));
    if (mark && !markPlaced && s > mark.afterSeq && m.sender_id !== me()) {
      items.push({ key: 'u:', kind: 'unread', ms: 0 });
      markPlaced = true;
    }
    push({ key: `s:${s}`, kind: 'msg', ms: m.sent_at_ms || 0, m });
  }
  if (range.hi === seqs.length - 1) {
    for (const o of outbox.all()) {
      if (o.conversation_id === c.id) push({ key: `p:${o.client_msg_id}`, kind: 'pending', ms: o.created_ms, o });
    }
  }

  const keep = new Set(items.map((i) => i.key));
  for (const [k, el] of msgEls) if (!keep.has(k)) { el.remove(); msgEls.delete(k); }
  let prevSender = '';
  let prevMs = 0;
  items.forEach((it, i) => {
    let el = msgEls.get(it.key);
    if (it.kind === 'unread') {
      const n = mark ? mark.count : 0;
      if (!el) { el = h('div', 'unread-sep'); el.id = 'unread-separator'; el.append(h('span', '', '')); msgEls.set(it.key, el); }
      /** @type {HTMLElement} */ (el.firstChild).textContent = `${n} unread message${n === 1 ? '' : 's'}`;
    } else if (it.kind === 'day') {
      if (!el) { el = h('div', 'day-sep'); el.append(h('span', '', '')); msgEls.set(it.key, el); }
      /** @type {HTMLElement} */ (el.firstChild).textContent = dayLabel(it.ms);
      prevSender = '';
    } else if (it.kind === 'msg' && it.m && it.m.kind === 'system') {
      if (!el) { el = h('div', 'msg system'); el.dataset.seq = String(it.m.seq); el.append(h('span')); msgEls.set(it.key, el); observe(el); }
      /** @type {HTMLElement} */ (el.firstChild).textContent = systemText(it.m, c);
      prevSender = '';
    } else {
      const m = it.m;
      const o = it.o;
      const sender = m ? m.sender_id : me();
      const own = sender === me();
      if (!el) {
        el = h('div', `msg ${own ? 'own' : 'other'}`);
        const row = h('div', 'bubble-row');
        const bubble = h('div', 'bubble');
        if (!own && c.kind === 'group') bubble.append(h('div', 'sender'));
        bubble.append(h('div', 'body'));
        const meta = h('div', 'meta');
        meta.append(h('time'));
        bubble.append(meta);
        row.append(bubble);
        el.append(row);
        if (m) {
          el.dataset.seq = String(m.seq);
          const actions = h('button', 'msg-actions-btn');
          /** @type {HTMLButtonElement} */ (actions).type = 'button';
          actions.setAttribute('aria-label', 'Message actions');
          actions.setAttribute('aria-haspopup', 'menu');
          actions.title = 'Message actions';
          actions.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="6" cy="12" r="1.7" fill="currentColor"/><circle cx="12" cy="12" r="1.7" fill="currentColor"/><circle cx="18" cy="12" r="1.7" fill="currentColor"/></svg>';
          row.append(actions);
          const reactions = h('div', 'reactions');
          reactions.hidden = true;
          el.append(reactions);
          observe(el);
        }
        msgEls.set(it.key, el);
      }
      const shown = m || o;
      const key = bodyKey(shown, c);
      if (/** @type {any} */ (el)._key !== key && !el.classList.contains('editing')) {
        /** @type {any} */ (el)._key = key;
        fillBody(/** @type {HTMLElement} */ (el.querySelector('.body')), shown, c);
        const reactions = /** @type {HTMLElement|null} */ (el.querySelector('.reactions'));
        if (reactions) fillReactions(reactions, shown);
        el.classList.toggle('deleted', !!(m && /** @type {any} */ (m).deleted));
        el.classList.toggle('has-media', !!/** @type {HTMLElement} */ (el.querySelector('.body')).querySelector('.media'));
      }
      if (o && outbox.isMedia(o)) paintUpload(el, o);
      const cont = prevSender === sender && it.ms - prevMs < 5 * 60000;
      el.classList.toggle('cont', cont);
      const senderEl = /** @type {HTMLElement|null} */ (el.querySelector('.sender'));
      if (senderEl) {
        const n = displayName(sender);
        senderEl.textContent = n;
        senderEl.style.setProperty('--hue', String(hueFor(n)));
        senderEl.hidden = cont;
      }
      const meta = /** @type {HTMLElement} */ (el.querySelector('.meta'));
      const edited = !!(m && /** @type {any} */ (m).edited_at_ms && !/** @type {any} */ (m).deleted);
      let editedEl = /** @type {HTMLElement|null} */ (meta.querySelector('.edited'));
      if (edited && !editedEl) { editedEl = h('span', 'edited', 'edited'); meta.prepend(editedEl); }
      if (!edited && editedEl) editedEl.remove();
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
          /** @type {HTMLElement} */ (note.firstChild).textContent = `Not delivered: ${errorText(o.failed, { context: outbox.sendContext(o) })} `;
        } else if (note) {
          note.remove();
        }
      }
      prevSender = sender;
      prevMs = it.ms;
    }
    if (container.children[i] !== el) container.insertBefore(el, container.children[i] || null);
  });
  renderHistoryStatus(c, range.lo === 0);
  const sep = msgEls.get('u:');
  const target = pendingScroll === 'target' ? msgEls.get(`s:${targetSeq}`) : null;
  if (pendingScroll === 'target') {
    if (target) {
      target.scrollIntoView({ block: 'center' });
      target.classList.remove('flash');
      void target.offsetWidth; // restart the animation
      target.classList.add('flash');
    }
    pendingScroll = null;
  } else if (pendingScroll === 'unread' && c.historyLoaded) {
    // Open at the first unread message, its separator at the top.
    if (sep) box.scrollTop += sep.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
    else box.scrollTop = box.scrollHeight;
    pendingScroll = null;
  } else if (pendingScroll === 'unread') {
    // Wait for the history to arrive.
  } else if (pendingScroll === 'bottom' || (!opts.keepScroll && win.latest && (opts.stickToBottom || atBottom))) {
    box.scrollTop = box.scrollHeight;
    if (c.historyLoaded) pendingScroll = null;
  }
  renderJumpButton();
  // A short first page that doesn't fill the screen: fetch more right away.
  if (range.lo === 0 && c.hasMoreOlder && !c.loadingOlder && box.scrollHeight <= box.clientHeight + 10) loadOlderMessages(c);
  throttledCheckRead();
}

/** Watch a message element: when it scrolls into view, it may be read. @param {HTMLElement} el */
function observe(el) {
  if (typeof IntersectionObserver === 'undefined') return;
  if (!observer) {
    observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) throttledCheckRead();
    }, { root: $('messages'), threshold: 0.6 });
  }
  observer.observe(el);
}

/**
 * "Jump to latest" shows when the newest messages are out of view (it counts
 * the unread ones); "Jump to first unread" when the unread separator is.
 */
export function renderJumpButton() {
  const box = $('messages');
  const btn = $('jump-button');
  const c = openConv();
  const away = !win.latest || box.scrollHeight - box.scrollTop - box.clientHeight > 160;
  btn.hidden = !away;
  const unreadBtn = $('jump-unread-button');
  const sep = msgEls.get('u:');
  let sepInView = false;
  if (sep) {
    const r = sep.getBoundingClientRect();
    const b = box.getBoundingClientRect();
    sepInView = r.bottom > b.top && r.top < b.bottom;
  }
  unreadBtn.hidden = !(c && unreadMark && unreadMark.convId === c.id && !sepInView && c.historyLoaded);
  const n = c && away ? c.unread : 0;
  $('jump-count').textContent = n > 0 ? String(n) : '';
  $('jump-count').hidden = !(n > 0);
}

/** @param {Conv} c @param {boolean} [atOldest] the window starts at the oldest loaded message */
function renderHistoryStatus(c, atOldest = true) {
  if (openConvId() !== c.id) return;
  const el = $('history-status');
  el.textContent = !c.historyLoaded ? 'Loading messages…'
    : c.loadingOlder ? 'Loading earlier messages…'
      : c.hasMoreOlder || !atOldest ? '' : (c.messages.size ? 'This is the beginning of the chat.' : 'No messages yet. Say hello!');
}

/** Tab visible and focused: the user can actually see the chat. */
function userIsLooking() {
  return document.visibilityState === 'visible' && document.hasFocus();
}

/** Send a read receipt for the newest message visible in the open chat. */
export function checkRead() {
  const c = openConv();
  if (!c || !c.historyLoaded || !userIsLooking() || link.state() !== 'open') return;
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
  // The newest bubble seen: the events after it (reactions, edits) are read too.
  const seqs = sortedSeqs(c);
  if (maxVisible === seqs[seqs.length - 1]) maxVisible = Math.max(maxVisible, maxLoadedSeq(c));
  markRead(c, maxVisible);
}

let readTimer = /** @type {any} */ (null);
/** `checkRead` at most every 150 ms (scrolling fires often). */
export function throttledCheckRead() {
  if (readTimer) return;
  readTimer = setTimeout(() => { readTimer = null; checkRead(); }, 150);
}
