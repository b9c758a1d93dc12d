// Parley web client: the entry point. Boots the page and runs a signed-in
// session's lifecycle: starting every module for it (socket, outbox, timers)
// and stopping and clearing them all when it ends. Plain ES modules, no
// build step; every module starts with a comment saying what it owns.
//
// Layers (imports only point down; nothing runs at import time but this file's boot):
// - `protocol.js`  client frames, their encoding and the protocol's constants
// - `format.js`, `store.js`  pure helpers; localStorage
// - `api.js`, `connection.js`  REST under /v1; the WebSocket with backoff
// - `session.js`, `link.js`  the signed-in session and its REST client; the live socket
// - `server-limits.js`, `events.js`  the server's limits from `ready`; message events applied to their targets
// - `users.js`, `model.js`  user cache; conversations and messages
// - `media.js`  uploads, capability URLs and the files of unsent media messages
// - `outbox.js`, `receipts.js`, `typing.js`, `presence.js`, `history.js`,
//   `message-actions.js`, `chat-settings.js`, `profile.js`, `search.js`, `notify.js`  one concern each
// - `dispatch.js`  every incoming server frame, and the inbox cursor
// - `ui/*`  the screen: `refresh.js` (render schedule, below the state
//   modules), `dom.js`, `toast.js`, `confirm.js`, `dialog.js`, `menu.js`, `theme.js`,
//   `message-parts.js`, `bubble.js`, `login.js`, `sidebar.js`, `search.js`, `settings.js`,
//   `chat.js`, `chat-options.js`, `reply.js`, `messages.js`, `message-menu.js`, `edit-inline.js`,
//   `delete-dialog.js`, `react-picker.js`, `forward-dialog.js`, `message-info.js`,
//   `media-view.js`, `photo-viewer.js`, `attach.js`, `voice-recorder.js`, `avatar-picker.js`,
//   `group-panel.js`, `render.js`

import * as session from './session.js';
import * as link from './link.js';
import * as model from './model.js';
import * as users from './users.js';
import * as outbox from './outbox.js';
import * as receipts from './receipts.js';
import * as typing from './typing.js';
import * as presence from './presence.js';
import { refreshConversations, loadCachedConversations } from './history.js';
import * as store from './store.js';
import { onFrame, storedCursor } from './dispatch.js';
import { errorText } from './format.js';
import { scheduleRender, renderHeader, renderBanner } from './ui/refresh.js';
import { installPainters } from './ui/render.js';
import { setupLoginForm, showLogin } from './ui/login.js';
import { setupSidebar, clearList, showApp, focusNewChatOnWideScreens } from './ui/sidebar.js';
import { setupChat, closeChat, clearDrafts, loadDrafts, chatIdFromUrl, openConversation } from './ui/chat.js';
import { clearMessages, checkRead } from './ui/messages.js';
import { closeGroupPanel } from './ui/group-panel.js';
import { setupConfirm } from './ui/confirm.js';
import * as limits from './server-limits.js';
import { loadHidden, resetHidden } from './message-actions.js';
import { loadBlocks, resetBlocks } from './chat-settings.js';
import { loadProfile, resetProfile } from './profile.js';
import { applyTheme, currentTheme } from './ui/theme.js';
import { closeMenu } from './ui/menu.js';
import { setupDeleteDialog } from './ui/delete-dialog.js';
import { setupReactPicker } from './ui/react-picker.js';
import { setupForwardDialog } from './ui/forward-dialog.js';
import { setupMessageInfo } from './ui/message-info.js';
import { setupSettings } from './ui/settings.js';
import { setupPhotoViewer } from './ui/photo-viewer.js';
import { setupPush, setupAlerts } from './notify.js';

/** The session's intervals, cleared when it ends. */
let timers = /** @type {any[]} */ ([]);

/** Whether the last connection state was 'open'. */
let wasOpen = false;

/** @param {import('./connection.js').ConnState} s @param {{retryInMs?: number}} [detail] */
function onConnState(s, detail) {
  if (wasOpen && s !== 'open') {
    // Presence and typing are only known while connected.
    presence.clear();
    typing.clearAll();
    renderHeader();
  }
  wasOpen = s === 'open';
  renderBanner(detail);
  if (s === 'open') setTimeout(checkRead, 50);
}

/** @param {import('./store.js').StoredSession} s */
function enterApp(s) {
  session.begin(s);
  outbox.load(s.user_id);
  loadDrafts();
  loadHidden();
  loadBlocks();
  users.rememberUser({ user_id: s.user_id, username: s.username });
  showApp(s.username);
  loadCachedConversations();
  link.start({
    token: s.token,
    getSince: storedCursor,
    onFrame,
    onState: onConnState,
    onUnauthorized: () => onUnauthorized(),
  });
  const urlChat = chatIdFromUrl();
  refreshConversations().then(() => {
    // A reload (or a shared link) returns to the chat in the URL.
    if (urlChat && model.convs.has(urlChat) && chatIdFromUrl() === urlChat && !model.openConvId()) openConversation(urlChat);
    else if (urlChat && !model.openConvId()) history.replaceState(null, '', location.pathname + location.search);
  });
  timers.push(setInterval(() => outbox.checkAcks(), 3000));
  timers.push(setInterval(() => renderHeader(), 30000));
  timers.push(setInterval(() => { if (link.state() === 'offline') renderBanner(); }, 1000));
  // Make sure the stored token still works (a reload after a revoke); my display name.
  loadProfile().catch(() => {});
  scheduleRender();
  focusNewChatOnWideScreens();
  setupPush();
}

/**
 * Stop the socket and timers and forget the session's state (the signed-out
 * screen follows). `forget` (log out) also drops what is stored for the user.
 */
function leaveApp(forget = false) {
  closeMenu(false);
  for (const d of document.querySelectorAll('dialog[open]')) /** @type {HTMLDialogElement} */ (d).close();
  closeChat();
  clearDrafts(forget);
  if (forget && session.currentSession()) store.saveConvList(session.me(), null);
  link.stop();
  for (const t of timers) clearInterval(t);
  timers = [];
  typing.stopTyping();
  session.end();
  model.reset();
  outbox.reset();
  presence.reset();
  typing.clearAll();
  receipts.reset();
  limits.reset();
  resetHidden();
  resetBlocks();
  resetProfile();
  clearList();
  clearMessages();
  closeGroupPanel();
}

function onUnauthorized() {
  if (!session.currentSession()) return;
  leaveApp();
  showLogin(errorText('unauthorized'));
}

async function logout() {
  await session.signOut();
  leaveApp(true);
  showLogin('');
}

function boot() {
  applyTheme(currentTheme());
  installPainters();
  session.setUnauthorizedHandler(onUnauthorized);
  model.setOwnMessageListener((clientMsgId) => outbox.remove(clientMsgId));
  users.loadCachedUsers();
  setupLoginForm(enterApp);
  setupSidebar({ onLogout: () => logout() });
  setupChat();
  setupConfirm();
  setupDeleteDialog();
  setupReactPicker();
  setupForwardDialog();
  setupMessageInfo();
  setupSettings();
  setupPhotoViewer();
  setupAlerts(scheduleRender);
  const stored = session.storedSession();
  if (stored) enterApp(stored); else showLogin();
}

boot();
