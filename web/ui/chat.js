// The chat pane: opening and closing a conversation, the open chat in the
// URL (`#/c/<id>`: reload returns to it, Back returns to the list), its
// header (title, presence, typing), the composer with per-chat drafts kept
// across reloads, and the pane's keyboard, focus and scroll wiring.

import * as link from '../link.js';
import * as store from '../store.js';
import { me } from '../session.js';
import { ensureConv, openConv, openConvId, setOpenConvId, convTitle, otherMember, fetchDetails, convAvatar } from '../model.js';
import * as outbox from '../outbox.js';
import { loadHistory } from '../history.js';
import * as typing from '../typing.js';
import * as presence from '../presence.js';
import { displayName, revalidate } from '../users.js';
import { presenceText, byteLength } from '../format.js';
import { maxTextBytes } from '../server-limits.js';
import { isBlocked, setBlocked } from '../chat-settings.js';
import { $, autoGrow, paintAvatar, showSidebar } from './dom.js';
import { scheduleRender, renderNow } from './refresh.js';
import { toast } from './toast.js';
import {
  clearMessages, setupMessages, prepareOpen, onMessagesScroll, jumpToLatest, jumpToFirstUnread, renderJumpButton, checkRead,
  throttledCheckRead,
} from './messages.js';
import { setupGroupPanel, closeGroupPanel, isGroupPanelOpen } from './group-panel.js';
import { setupReply, renderReplyBar, replyTarget, cancelReply } from './reply.js';
import { setupChatOptions, renderChatOptions } from './chat-options.js';
import { setupAttach } from './attach.js';
import { setupVoiceRecorder, isRecording, cancelRecording } from './voice-recorder.js';

/** Unsent text per conversation, kept while switching chats and (in storage) across reloads. */
const drafts = /** @type {Map<string, string>} */ (new Map());
let draftSaveTimer = /** @type {any} */ (null);

/** The signed-in user's stored drafts (session start). */
export function loadDrafts() {
  drafts.clear();
  for (const [id, text] of Object.entries(store.loadDrafts(me()))) if (typeof text === 'string' && text.trim()) drafts.set(id, text);
}

/** The unsent text of a chat ('' when none). @param {string} id */
export function draftOf(id) { return drafts.get(id) || ''; }

/** @param {string} id @param {string} text */
function setDraft(id, text) {
  if (text.trim()) drafts.set(id, text); else drafts.delete(id);
  // Typing is frequent: write storage a moment after the last keystroke.
  clearTimeout(draftSaveTimer);
  draftSaveTimer = setTimeout(saveDrafts, 300);
}

function saveDrafts() {
  clearTimeout(draftSaveTimer);
  if (me()) store.saveDrafts(me(), Object.fromEntries(drafts));
}

const CHAT_HASH = /^#\/c\/(.+)$/;

/** The chat named by the URL, or null. */
export function chatIdFromUrl() {
  const m = location.hash.match(CHAT_HASH);
  return m ? decodeURIComponent(m[1]) : null;
}

/** @param {string} id */
function chatHash(id) { return `#/c/${encodeURIComponent(id)}`; }

/**
 * Put the open chat in the URL. The list is the history entry below any
 * chat, so Back (a phone's above all) returns to the list; switching chats
 * replaces the entry instead of piling them up.
 * @param {string|null} id
 */
function setUrl(id) {
  const base = location.pathname + location.search;
  if (!id) {
    if (location.hash) history.replaceState(null, '', base);
    return;
  }
  if (location.hash === chatHash(id) && history.state && history.state.parleyChat) return;
  if (history.state && history.state.parleyChat) history.replaceState({ parleyChat: id }, '', chatHash(id));
  else {
    if (location.hash) history.replaceState(null, '', base);
    history.pushState({ parleyChat: id }, '', chatHash(id));
  }
}

/** Focus a chat's row in the list (the list is below the chat in the import order, so by DOM). @param {string} id */
function focusRow(id) {
  const btn = /** @type {HTMLElement|null} */ (document.querySelector(`#conversation-list > li[data-id="${CSS.escape(id)}"] .conv-open`));
  if (btn) btn.focus();
}

/** Back/Forward: show what the URL names. */
function onPopState() {
  if (!me()) return;
  const id = chatIdFromUrl();
  if (id) { openConversation(id); return; }
  const was = openConvId();
  closeChat();
  showSidebar();
  if (was) focusRow(was);
}

/** @param {string} id */
export function openConversation(id) {
  const c = ensureConv(id);
  setUrl(id);
  if (openConvId() !== id) {
    typing.stopTyping();
    const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
    const previous = openConvId();
    if (previous) setDraft(previous, input.value);
    setOpenConvId(id);
    cancelReply();
    cancelRecording();
    clearMessages();
    prepareOpen(c);
    input.value = drafts.get(id) || '';
    autoGrow(input);
    renderLimit();
    closeGroupPanel();
  }
  $('chat-placeholder').hidden = true;
  $('chat-pane').hidden = false;
  $('app-view').classList.add('chat-open');
  if (!c.historyLoaded) loadHistory(c);
  fetchDetails(c);
  // Names changed elsewhere (there is no push for them) show when the chat opens.
  if (c.memberIds.length <= 50) for (const uid of c.memberIds) if (uid !== me()) revalidate(uid);
  presence.syncSubscription();
  renderNow({ stickToBottom: true });
  /** @type {HTMLTextAreaElement} */ ($('composer-input')).focus({ preventScroll: true });
}

export function closeChat() {
  typing.stopTyping();
  cancelRecording();
  const previous = openConvId();
  if (previous) setDraft(previous, /** @type {HTMLTextAreaElement} */ ($('composer-input')).value);
  setOpenConvId(null);
  setUrl(null);
  presence.syncSubscription();
  $('chat-pane').hidden = true;
  $('chat-placeholder').hidden = false;
  $('app-view').classList.remove('chat-open');
  scheduleRender();
}

/** Forget the drafts: in memory (session end), and in storage too when `forget` (log out). */
export function clearDrafts(forget = false) {
  if (forget && me()) store.saveDrafts(me(), null);
  else saveDrafts();
  clearTimeout(draftSaveTimer);
  drafts.clear();
}

/** How many bytes the composer's text is over the server's limit (0 when it fits). @param {string} text */
function bytesOver(text) {
  // A UTF-8 character takes at most 4 bytes (3 per UTF-16 unit): short texts always fit.
  if (text.length * 3 <= maxTextBytes()) return 0;
  return Math.max(0, byteLength(text) - maxTextBytes());
}

/** Say how far over the limit the text is (and keep it: nothing is cleared). */
function renderLimit() {
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  const el = $('composer-limit');
  const over = bytesOver(input.value);
  const fmt = new Intl.NumberFormat();
  const text = over ? `Too long to send: ${fmt.format(over)} bytes over the limit of ${fmt.format(maxTextBytes())}. Shorten it or split it into several messages.` : '';
  if (el.textContent !== text) el.textContent = text;
  el.hidden = !over;
  /** @type {HTMLButtonElement} */ ($('send-button')).disabled = over > 0;
  input.setAttribute('aria-invalid', over ? 'true' : 'false');
}

/**
 * The composer's text as the caption of a file being sent, taken out of the
 * composer; null (and the limit shown) when it is too long to send.
 */
function takeCaption() {
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  const text = input.value.replace(/^\s*\n/, '').replace(/\s+$/, '');
  if (bytesOver(text)) { renderLimit(); return null; }
  const c = openConv();
  if (!text.trim()) return '';
  typing.stopTyping({ sent: true });
  input.value = '';
  if (c) setDraft(c.id, '');
  autoGrow(input);
  renderLimit();
  return text;
}

function onComposerInput() {
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  autoGrow(input);
  renderLimit();
  const id = openConvId();
  if (!id) return;
  setDraft(id, input.value);
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
    if (bytesOver(text)) { renderLimit(); return; }
    if (c.left) { toast('You’re no longer a member of this group.'); return; }
    typing.stopTyping({ sent: true });
    input.value = '';
    setDraft(c.id, '');
    autoGrow(input);
    outbox.sendText(c.id, text, replyTarget(c.id) || undefined);
    cancelReply();
    renderLimit();
    input.focus();
  });
  window.addEventListener('popstate', onPopState);
  window.addEventListener('pagehide', saveDrafts);
  $('back-button').addEventListener('click', () => {
    // The list is the history entry below the chat: going back keeps the
    // browser's Back button and this one the same.
    if (history.state && history.state.parleyChat) { history.back(); return; }
    showSidebar();
    const id = openConvId();
    if (id) focusRow(id);
  });
  const box = $('messages');
  box.addEventListener('scroll', () => {
    onMessagesScroll();
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
    if (document.querySelector('dialog[open]')) return;
    if (isGroupPanelOpen()) { closeGroupPanel({ restoreFocus: true }); return; }
    if ($('app-view').classList.contains('chat-open') && matchMedia('(max-width: 760px)').matches) showSidebar();
  });
  $('jump-button').addEventListener('click', () => {
    jumpToLatest();
    /** @type {HTMLElement} */ ($('composer-input')).focus({ preventScroll: true });
  });
  $('jump-unread-button').addEventListener('click', () => jumpToFirstUnread());
  $('composer-unblock').addEventListener('click', () => {
    const c = openConv();
    const other = c && c.kind === 'direct' ? otherMember(c) : null;
    if (other) setBlocked(other, false);
  });
  setupAttach(takeCaption);
  setupVoiceRecorder();
  setupMessages();
  setupGroupPanel();
  setupReply();
  setupChatOptions();
}

/** "alice is typing…", "alice and bob are typing…", "alice, bob and 2 others are typing…". @param {string[]} ids */
export function typingText(ids) {
  const names = ids.map((id) => displayName(id));
  if (!names.length) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  return `${names[0]}, ${names[1]} and ${names.length - 2} others are typing…`;
}

/** "3 members, 2 online" (me included while connected, as Telegram counts). @param {import('../model.js').Conv} c */
export function groupSubtitle(c) {
  const n = c.memberIds.length;
  const members = `${n} member${n === 1 ? '' : 's'}`;
  if (link.state() !== 'open') return members;
  let online = 0;
  for (const id of c.memberIds) {
    if (id === me() || (presence.presenceOf(id) || { online: false }).online) online++;
  }
  return online ? `${members}, ${online} online` : members;
}

export function renderHeader() {
  const c = openConv();
  if (!c) return;
  presence.syncSubscription();
  const title = convTitle(c);
  $('chat-title').textContent = title;
  paintAvatar($('chat-avatar'), title, c.kind === 'group', convAvatar(c));
  $('group-info-button').hidden = c.kind !== 'group';
  const presenceEl = $('chat-presence');
  const typingEl = $('chat-typing');
  const typers = typing.typersIn(c.id);
  if (c.kind === 'direct') {
    const other = otherMember(c);
    presenceEl.textContent = other ? presenceText(presence.presenceOf(other)) : '';
    typingEl.textContent = typers.length ? 'typing…' : '';
  } else {
    presenceEl.textContent = c.left ? 'You’re not a member' : groupSubtitle(c);
    typingEl.textContent = typingText(typers);
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
  const other = c.kind === 'direct' ? otherMember(c) : null;
  const blocked = !!other && isBlocked(other);
  if (c.left) {
    notice.hidden = false;
    $('composer-notice-text').textContent = 'You can’t send messages to this group because you’re no longer a member. Its history up to then stays here.';
    form.hidden = true;
  } else if (blocked && other) {
    notice.hidden = false;
    $('composer-notice-text').textContent = `You blocked ${displayName(other)}. Unblock to send messages.`;
    form.hidden = true;
  } else {
    notice.hidden = true;
    form.hidden = isRecording();
  }
  $('composer-unblock').hidden = !blocked || c.left;
  renderReplyBar();
  renderLimit();
  renderChatOptions();
}
