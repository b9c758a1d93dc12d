// The service worker (§12): shows a notification for a push and opens the
// chat when it is clicked.
//
// A push carries `{type: "wake", conversation_id, unread}` and, when the user
// turned previews on, `sender_id` and `text`. Notifications are tagged with
// the conversation, so a newer one replaces the older one for that chat.
// Nothing is shown while a window of the app is visible: the page shows new
// messages itself; open windows get the payload as a message. This file is a classic script (registered from app.js);
// in Node (the module layout test) it does nothing at import.

/** @type {any} */
const sw = globalThis;

/** @param {any} data */
function notificationFor(data) {
  const unread = Number(data.unread) || 1;
  const title = unread > 1 ? `${unread} new messages` : 'New message';
  const body = typeof data.text === 'string' && data.text ? data.text : 'Open Parley to read it.';
  return { title, body };
}

/** @param {string} conversationId */
function chatUrl(conversationId) {
  return new URL(`/#/c/${encodeURIComponent(conversationId)}`, sw.location.origin).href;
}

async function onPush(/** @type {any} */ event) {
  /** @type {any} */
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  const windows = await sw.clients.matchAll({ includeUncontrolled: true });
  // Open windows hear of it too (they may refresh the conversation list).
  for (const c of windows) c.postMessage({ kind: 'push', data });
  if (windows.some((/** @type {any} */ c) => c.visibilityState === 'visible')) return;
  const { title, body } = notificationFor(data);
  const id = typeof data.conversation_id === 'string' ? data.conversation_id : '';
  await sw.registration.showNotification(title, {
    body,
    tag: id ? `chat-${id}` : 'parley',
    renotify: true,
    icon: '/favicon.svg',
    data: { conversation_id: id },
  });
}

async function onNotificationClick(/** @type {any} */ event) {
  event.notification.close();
  const id = event.notification.data && event.notification.data.conversation_id;
  const url = id ? chatUrl(id) : new URL('/', sw.location.origin).href;
  const windows = await sw.clients.matchAll({ includeUncontrolled: true });
  for (const c of windows) {
    if ('focus' in c) {
      // The app follows its URL's hash (`#/c/<id>`) to open the chat.
      if ('navigate' in c) await c.navigate(url).catch(() => {});
      return c.focus();
    }
  }
  return sw.clients.openWindow(url);
}

if (typeof sw.registration === 'object' && typeof sw.addEventListener === 'function') {
  sw.addEventListener('push', (/** @type {any} */ e) => e.waitUntil(onPush(e)));
  sw.addEventListener('notificationclick', (/** @type {any} */ e) => e.waitUntil(onNotificationClick(e)));
}
