// The sidebar: the conversation list (one element per chat, updated in
// place; pinned first, archived ones only in the "Archived" view, filtered
// by the searchbox), unread counts in the tab title, the connection banner,
// the "New chat" and "New group" forms, and the log-out button (confirmed first).

import { ApiError } from '../api.js';
import { api, currentSession, me } from '../session.js';
import * as link from '../link.js';
import { ensureConv, convs, openConvId, sortedConvs, convTitle, isListLoaded, isMuted, convAvatar } from '../model.js';
import * as outbox from '../outbox.js';
import { tickState } from '../receipts.js';
import { displayName, lookupUsername, resolveUsernames, avatarOf } from '../users.js';
import { errorText, listTime, parseUsernames, normalizeUsername } from '../format.js';
import { $, h, busy, paintAvatar, showSidebar } from './dom.js';
import { tickEl, systemText } from './message-parts.js';
import { openConversation, draftOf } from './chat.js';
import { confirmAction } from './confirm.js';
import { attachSuggestions } from './suggest.js';
import { setupSearch, searchQuery, clearSearch } from './search.js';
import { DELETED_TEXT, textOf } from './bubble.js';
import { openSettings } from './settings.js';
import { hiddenUnread } from '../notify.js';

/** @typedef {import('../model.js').Conv} Conv */

/** List items by conversation id. */
const listEls = /** @type {Map<string, HTMLLIElement>} */ (new Map());
/** Numbers the ids of list items' parts (for aria-describedby). */
let listElSerial = 0;
/** When the offline banner's countdown ends. */
let bannerRetryAt = 0;
/** Whether the list shows the archived chats instead of the others. */
let archivedView = false;

/** The chats the list shows now, in order. */
function visibleConvs() {
  const q = searchQuery().toLowerCase();
  const all = sortedConvs(outbox.pendingTimes());
  // A search looks through every chat, archived ones included.
  if (q) return all.filter((c) => convTitle(c).toLowerCase().includes(q));
  return all.filter((c) => c.archived === archivedView);
}

/** Show the archived chats, or the others. @param {boolean} on */
function setArchivedView(on) {
  archivedView = on;
  const btn = $('archived-button');
  btn.setAttribute('aria-pressed', String(on));
  $('list-heading').hidden = !on;
  renderList();
}

/** Leave the log-in screen for the messenger, signed in as `name`. @param {string} name */
export function showApp(name) {
  $('auth-view').hidden = true;
  $('app-view').hidden = false;
  $('me-name').textContent = name;
  // The page keeps exactly one h1, the app's name: here it is for screen readers.
  const title = $('app-title');
  title.classList.add('visually-hidden');
  $('sidebar-header').prepend(title);
  paintAvatar($('me-avatar'), name);
}

/** With the list and chat side by side (not on phones), start keyboard users at "New chat". */
export function focusNewChatOnWideScreens() {
  if (matchMedia('(min-width: 761px)').matches) /** @type {HTMLElement} */ ($('new-chat-button')).focus({ preventScroll: true });
}

/** Empty the list (log out). */
export function clearList() {
  listEls.clear();
  $('conversation-list').replaceChildren();
  clearSearch();
  setArchivedView(false);
}

/** @param {{onLogout: () => void}} handlers */
export function setupSidebar(handlers) {
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
  setupSearch();
  $('archived-button').addEventListener('click', () => setArchivedView(!archivedView));
  $('settings-button').addEventListener('click', () => openSettings());
  attachSuggestions(/** @type {HTMLInputElement} */ ($('new-chat-username')));
  attachSuggestions(/** @type {HTMLInputElement} */ ($('new-group-members')), { multi: true });
  // Closing a form puts focus back on the button that opened it.
  const closeForm = (/** @type {HTMLFormElement} */ form) => {
    form.hidden = true;
    /** @type {HTMLElement} */ ($(form === chatForm ? 'new-chat-button' : 'new-group-button')).focus();
  };
  for (const form of [chatForm, groupForm]) {
    form.querySelector('[data-cancel]')?.addEventListener('click', () => closeForm(form));
    form.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeForm(form); });
  }

  chatForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($('new-chat-username'));
    const err = $('new-chat-error');
    const name = normalizeUsername(input.value);
    err.textContent = '';
    if (!name) { err.textContent = 'Type a username.'; return; }
    const session = currentSession();
    if (session && name === session.username) { err.textContent = 'That’s you! Pick someone else.'; return; }
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
    const session = currentSession();
    const names = parseUsernames(membersEl.value).filter((n) => !session || n !== session.username);
    busy(groupForm, true);
    try {
      const found = await resolveUsernames(names);
      if (!found.ids) { err.textContent = found.error; return; }
      try {
        const res = await api.createGroup(name, found.ids);
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

  $('logout-button').addEventListener('click', async () => {
    const ok = await confirmAction({
      title: 'Log out?',
      text: 'You will need your password to log in again on this device. Unsent drafts here are discarded.',
      action: 'Log out',
    });
    if (ok) handlers.onLogout();
  });
}

/** Preview line for the list. @param {Conv} c */
function previewOf(c) {
  const draft = c.id !== openConvId() ? draftOf(c.id) : '';
  if (draft) return { text: draft, status: null, prefix: 'Draft: ', draft: true };
  const pending = outbox.itemsOf(c.id);
  if (pending.length) {
    const last = pending[pending.length - 1];
    return { text: textOf(last), status: last.failed ? 'Failed' : 'Sending', prefix: '' };
  }
  const m = c.lastMessage;
  if (!m) return { text: c.kind === 'group' ? 'Group created' : 'No messages yet', status: null, prefix: '' };
  if (m.kind === 'system') return { text: systemText(m, c), status: null, prefix: '' };
  const text = /** @type {any} */ (m).deleted ? DELETED_TEXT : m.kind === 'text' ? (m.text || '') : textOf(m);
  if (m.sender_id === me()) return { text, status: tickState(c, m.seq), prefix: '' };
  return { text, status: null, prefix: c.kind === 'group' ? `${displayName(m.sender_id)}: ` : '' };
}

export function renderList() {
  const ul = $('conversation-list');
  const myName = me() ? displayName(me()) : '';
  if (myName && $('me-name').textContent !== myName) $('me-name').textContent = myName;
  if (myName) paintAvatar($('me-avatar'), myName, false, avatarOf(me()));
  const list = visibleConvs();
  const keep = new Set(list.map((c) => c.id));
  for (const [id, li] of listEls) if (!keep.has(id)) { li.remove(); listEls.delete(id); }
  list.forEach((c, i) => {
    let li = listEls.get(c.id);
    if (!li) {
      li = /** @type {HTMLLIElement} */ (h('li', 'conv'));
      li.dataset.id = c.id;
      // The row's action is a real button (announced as one); the list is one
      // Tab stop, arrow keys move between rows (roving tabindex).
      li.innerHTML = '<button type="button" class="conv-open" tabindex="-1"><span class="avatar" aria-hidden="true"></span><span class="conv-main"><span class="conv-top"><span class="conv-title" dir="auto"></span><time class="conv-time"></time></span><span class="conv-bottom"><span class="conv-preview" dir="auto"></span><span class="conv-marks"></span><span class="badge"></span></span></span></button>';
      const id = c.id;
      // Name = the title (the contract); the preview, time and unread count describe it.
      const n = ++listElSerial;
      const btn = /** @type {HTMLElement} */ (li.querySelector('.conv-open'));
      /** @type {HTMLElement} */ (li.querySelector('.conv-title')).id = `conv-title-${n}`;
      /** @type {HTMLElement} */ (li.querySelector('.conv-preview')).id = `conv-prev-${n}`;
      /** @type {HTMLElement} */ (li.querySelector('.conv-time')).id = `conv-time-${n}`;
      /** @type {HTMLElement} */ (li.querySelector('.badge')).id = `conv-badge-${n}`;
      // The button's name is its visible content (title, time, preview, unread count).
      li.addEventListener('click', () => { rovingId = id; openConversation(id); });
      btn.addEventListener('keydown', (e) => onListKey(e));
      btn.addEventListener('focus', () => { rovingId = id; updateRoving(); });
      listEls.set(c.id, li);
    }
    const title = convTitle(c);
    if (li.getAttribute('aria-label') !== title) li.setAttribute('aria-label', title);
    const isOpen = c.id === openConvId();
    li.classList.toggle('active', isOpen);
    const openBtn = /** @type {HTMLElement} */ (li.querySelector('.conv-open'));
    if (isOpen) openBtn.setAttribute('aria-current', 'true'); else openBtn.removeAttribute('aria-current');
    paintAvatar(/** @type {HTMLElement} */ (li.querySelector('.avatar')), title, c.kind === 'group', convAvatar(c));
    /** @type {HTMLElement} */ (li.querySelector('.conv-title')).textContent = title;
    const t = Math.max(c.activityMs, ...outbox.itemsOf(c.id).map((o) => o.created_ms));
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
    if (p.prefix) prev.append(h('span', /** @type {any} */ (p).draft ? 'draft-prefix' : 'sender-prefix', p.prefix));
    prev.append(h('span', 'preview-text', p.text.replace(/\s+/g, ' ')));
    const badge = /** @type {HTMLElement} */ (li.querySelector('.badge'));
    const unread = c.unread;
    badge.textContent = unread > 0 ? (unread > 99 ? '99+' : String(unread)) : '';
    badge.hidden = !(unread > 0);
    li.classList.toggle('unread', unread > 0);
    li.classList.toggle('muted', isMuted(c));
    paintMarks(/** @type {HTMLElement} */ (li.querySelector('.conv-marks')), c);
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
  });
  const empty = $('conversation-empty');
  empty.hidden = !isListLoaded() || list.length > 0;
  empty.textContent = searchQuery() ? 'No chats match.' : archivedView ? 'No archived chats.' : 'No chats yet. Start one with the buttons above.';
  updateRoving();
}

const MARK_SVG = {
  Pinned: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M9 3h6l-1 6 4 4H6l4-4zM12 13v8" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round"/></svg>',
  Muted: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 16h12l-1.6-2.2V10a4.4 4.4 0 0 0-8.8 0v3.8z" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round"/><path d="M4 4l16 16" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>',
};

/** The pinned and muted marks of a row (images named "Pinned", "Muted"). @param {HTMLElement} el @param {Conv} c */
function paintMarks(el, c) {
  const want = [c.pinned ? 'Pinned' : '', isMuted(c) ? 'Muted' : ''].filter(Boolean);
  if (el.dataset.marks === want.join(',')) return;
  el.dataset.marks = want.join(',');
  el.replaceChildren();
  for (const name of want) {
    const m = h('span', `conv-mark mark-${name.toLowerCase()}`);
    m.setAttribute('role', 'img');
    m.setAttribute('aria-label', name);
    m.title = name;
    m.innerHTML = MARK_SVG[/** @type {'Pinned'|'Muted'} */ (name)];
    el.append(m);
  }
}

/** The row that takes the list's one Tab stop (the last focused, else the open chat, else the first). */
let rovingId = /** @type {string|null} */ (null);

function updateRoving() {
  let id = rovingId && listEls.has(rovingId) ? rovingId : null;
  if (!id) id = openConvId() && listEls.has(openConvId() || '') ? openConvId() : null;
  if (!id) { const first = $('conversation-list').firstElementChild; id = first ? /** @type {HTMLElement} */ (first).dataset.id || null : null; }
  for (const [cid, li] of listEls) {
    const btn = /** @type {HTMLElement} */ (li.querySelector('.conv-open'));
    const want = cid === id ? '0' : '-1';
    if (btn.getAttribute('tabindex') !== want) btn.setAttribute('tabindex', want);
  }
}

/** Focus the list row of `id` (back from a chat). @param {string} id */
export function focusListRow(id) {
  const li = listEls.get(id);
  if (!li) return;
  rovingId = id;
  updateRoving();
  /** @type {HTMLElement} */ (li.querySelector('.conv-open')).focus();
}

/** Unread chats in the tab title: "(2) Parley"; while the tab is hidden, the messages that came since. */
export function renderTitle() {
  let n = hiddenUnread();
  if (!n) for (const c of convs.values()) if (c.unread > 0) n++;
  const t = n ? `(${n}) Parley` : 'Parley';
  if (document.title !== t) document.title = t;
}

/** Arrow keys, Home and End move through the list (Enter and Space are the button's own). @param {KeyboardEvent} e */
function onListKey(e) {
  const li = /** @type {HTMLElement} */ (/** @type {HTMLElement} */ (e.currentTarget).closest('li'));
  let to = /** @type {Element|null} */ (null);
  if (e.key === 'ArrowDown') to = li.nextElementSibling;
  else if (e.key === 'ArrowUp') to = li.previousElementSibling;
  else if (e.key === 'Home') to = li.parentElement && li.parentElement.firstElementChild;
  else if (e.key === 'End') to = li.parentElement && li.parentElement.lastElementChild;
  else return;
  e.preventDefault();
  const id = to && /** @type {HTMLElement} */ (to).dataset.id;
  if (id) focusListRow(id);
}

/** "Connecting…" on first connect; offline with a countdown, pending count and "Retry now" after. @param {{retryInMs?: number}} [detail] */
export function renderBanner(detail) {
  const el = $('connection-banner');
  const s = link.state();
  if (!currentSession() || s === 'open' || s === 'stopped') { el.hidden = true; el.replaceChildren(); return; }
  if (s === 'connecting' && !link.wasEverConnected()) {
    el.hidden = false;
    el.className = 'connection-banner connecting';
    el.textContent = 'Connecting…';
    return;
  }
  if (detail && typeof detail.retryInMs === 'number') bannerRetryAt = Date.now() + detail.retryInMs;
  el.hidden = false;
  el.className = 'connection-banner offline';
  const secs = Math.max(0, Math.ceil((bannerRetryAt - Date.now()) / 1000));
  const text = s === 'connecting' ? 'Connecting…' : `No connection. Retrying${secs ? ` in ${secs} s` : ''}…`;
  const pending = outbox.waitingCount();
  el.replaceChildren(h('span', '', pending ? `${text} ${pending} message${pending === 1 ? '' : 's'} waiting.` : text));
  if (s === 'offline') {
    const btn = h('button', 'link-btn', 'Retry now');
    btn.type = 'button';
    btn.addEventListener('click', () => link.reconnectNow());
    el.append(btn);
  }
}
