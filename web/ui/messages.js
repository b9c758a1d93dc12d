// The open chat's message list: bubbles (kept per message and updated in
// place), day separators, pending and failed sends, the history status line,
// the "jump to latest" button, scroll-back, and noticing what the user has
// read.

import { me } from '../session.js';
import * as link from '../link.js';
import { openConv, openConvId } from '../model.js';
import * as outbox from '../outbox.js';
import { loadOlder } from '../history.js';
import { markRead, tickState } from '../receipts.js';
import { username } from '../users.js';
import { errorText, clockTime, dayLabel, dayKey, hueFor } from '../format.js';
import { $, h } from './dom.js';
import { tickEl, richText, systemText } from './message-parts.js';
import { scheduleRender } from './refresh.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../store.js').OutboxItem} OutboxItem */
/** @typedef {import('../model.js').Conv} Conv */

/** Rendered elements by key: `d:<day>`, `s:<seq>`, `p:<client_msg_id>`. */
const msgEls = /** @type {Map<string, HTMLElement>} */ (new Map());

/** Empty the list (another chat opens, or log out). */
export function clearMessages() {
  msgEls.clear();
  $('message-items').replaceChildren();
}

/** Wire the list's own controls (the Discard button of a failed send). */
export function setupMessages() {
  $('message-items').addEventListener('click', (e) => {
    const btn = /** @type {HTMLElement} */ (e.target).closest('[data-discard]');
    if (!btn) return;
    outbox.remove(/** @type {HTMLElement} */ (btn).dataset.discard || '');
    scheduleRender();
  });
}

/** How scroll-back shows itself in this view. */
const olderView = {
  statusChanged: renderHistoryStatus,
  /** Merge an older page without moving what the user looks at. @param {Conv} c @param {() => void} merge */
  keepScroll(c, merge) {
    const el = $('messages');
    const fromBottom = el.scrollHeight - el.scrollTop;
    merge();
    if (openConvId() === c.id) {
      renderMessages({ keepScroll: true });
      el.scrollTop = el.scrollHeight - fromBottom;
    }
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
  for (const o of outbox.all()) {
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
      /** @type {HTMLElement} */ (el.firstChild).textContent = systemText(it.m);
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
  if (c.hasMoreOlder && !c.loadingOlder && box.scrollHeight <= box.clientHeight + 10) loadOlderMessages(c);
  throttledCheckRead();
}

/** "Jump to latest" shows when scrolled away from the bottom; it counts new messages. */
export function renderJumpButton() {
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
  if (openConvId() !== c.id) return;
  const el = $('history-status');
  el.textContent = !c.historyLoaded ? 'Loading messages…'
    : c.loadingOlder ? 'Loading earlier messages…'
      : c.hasMoreOlder ? '' : (c.messages.size ? 'This is the beginning of the chat.' : 'No messages yet. Say hello!');
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
  markRead(c, maxVisible);
}

let readTimer = /** @type {any} */ (null);
/** `checkRead` at most every 150 ms (scrolling fires often). */
export function throttledCheckRead() {
  if (readTimer) return;
  readTimer = setTimeout(() => { readTimer = null; checkRead(); }, 150);
}
