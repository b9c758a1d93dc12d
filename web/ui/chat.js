// The chat pane: opening and closing a conversation, its header (title,
// presence, typing), the composer with per-chat drafts, and the pane's
// keyboard, focus and scroll wiring.

import * as link from '../link.js';
import { ensureConv, openConv, openConvId, setOpenConvId, convTitle, otherMember, fetchDetails } from '../model.js';
import * as outbox from '../outbox.js';
import { loadHistory } from '../history.js';
import * as typing from '../typing.js';
import * as presence from '../presence.js';
import { username } from '../users.js';
import { presenceText } from '../format.js';
import { $, autoGrow, paintAvatar, showSidebar } from './dom.js';
import { scheduleRender, renderNow } from './refresh.js';
import { toast } from './toast.js';
import { clearMessages, setupMessages, loadOlderMessages, renderJumpButton, checkRead, throttledCheckRead } from './messages.js';
import { setupGroupPanel, closeGroupPanel, isGroupPanelOpen } from './group-panel.js';

/** Unsent text per conversation, kept while switching chats. */
const drafts = /** @type {Map<string, string>} */ (new Map());

/** @param {string} id */
export function openConversation(id) {
  const c = ensureConv(id);
  if (openConvId() !== id) {
    typing.stopTyping();
    const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
    const previous = openConvId();
    if (previous) drafts.set(previous, input.value);
    setOpenConvId(id);
    clearMessages();
    input.value = drafts.get(id) || '';
    autoGrow(input);
    closeGroupPanel();
  }
  $('chat-placeholder').hidden = true;
  $('chat-pane').hidden = false;
  $('app-view').classList.add('chat-open');
  if (!c.historyLoaded) loadHistory(c);
  fetchDetails(c);
  presence.syncSubscription();
  renderNow({ stickToBottom: true });
  /** @type {HTMLTextAreaElement} */ ($('composer-input')).focus({ preventScroll: true });
}

export function closeChat() {
  typing.stopTyping();
  setOpenConvId(null);
  presence.syncSubscription();
  $('chat-pane').hidden = true;
  $('chat-placeholder').hidden = false;
  $('app-view').classList.remove('chat-open');
  scheduleRender();
}

/** Forget the drafts (log out). */
export function clearDrafts() { drafts.clear(); }

function onComposerInput() {
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  autoGrow(input);
  const id = openConvId();
  if (!id) return;
  drafts.set(id, input.value);
  typing.composerChanged(id, input.value);
}

export function setupChat() {
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  const form = /** @type {HTMLFormElement} */ ($('composer'));
  input.addEventListener('input', onComposerInput);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener('blur', () => { if (!input.value.trim()) typing.stopTyping(); });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const c = openConv();
    const text = input.value.replace(/^\s*\n/, '').replace(/\s+$/, '');
    if (!c || !text.trim()) return;
    if (c.left) { toast('You’re no longer a member of this group.'); return; }
    typing.stopTyping();
    input.value = '';
    drafts.delete(c.id);
    autoGrow(input);
    outbox.sendText(c.id, text);
    input.focus();
  });
  $('back-button').addEventListener('click', () => {
    showSidebar();
    const id = openConvId();
    const li = id ? /** @type {HTMLElement|null} */ (document.querySelector(`#conversation-list > li[data-id="${CSS.escape(id)}"]`)) : null;
    if (li) li.focus();
  });
  const box = $('messages');
  box.addEventListener('scroll', () => {
    const c = openConv();
    if (c && box.scrollTop < 120) loadOlderMessages(c);
    throttledCheckRead();
    renderJumpButton();
  }, { passive: true });
  window.addEventListener('focus', () => checkRead());
  document.addEventListener('visibilitychange', () => {
    // Back from the background (phone unlocked…): don't wait out the backoff.
    if (document.visibilityState === 'visible' && link.state() === 'offline') link.reconnectNow();
    checkRead();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (isGroupPanelOpen()) { closeGroupPanel(); return; }
    if ($('app-view').classList.contains('chat-open') && matchMedia('(max-width: 760px)').matches) showSidebar();
  });
  $('jump-button').addEventListener('click', () => {
    box.scrollTo({ top: box.scrollHeight, behavior: 'smooth' });
    /** @type {HTMLElement} */ ($('composer-input')).focus({ preventScroll: true });
  });
  setupMessages();
  setupGroupPanel();
}

export function renderHeader() {
  const c = openConv();
  if (!c) return;
  const title = convTitle(c);
  $('chat-title').textContent = title;
  paintAvatar($('chat-avatar'), title, c.kind === 'group');
  $('group-info-button').hidden = c.kind !== 'group';
  const presenceEl = $('chat-presence');
  const typingEl = $('chat-typing');
  const typers = typing.typersIn(c.id);
  if (c.kind === 'direct') {
    const other = otherMember(c);
    presenceEl.textContent = other ? presenceText(presence.presenceOf(other)) : '';
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

export function renderComposer() {
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
