// The service worker (§12): shows a notification for a push and opens the
// chat when it is clicked, and keeps the offline app shell.
//
// App shell: on install it caches `/`, the files index.html names and every
// module reachable from app.js (found by following their relative
// `import … from './x.js'`, so no list to keep in step). Navigations and
// static files are then served from the cache at once while the network
// refreshes the copy (cache first, network update): a reload while the
// server is down shows the app, its cached conversations and the reconnect
// banner instead of the browser's error page. `/v1/` (the API and the
// socket) is never cached or intercepted.
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

const SHELL_CACHE = 'parley-shell-v1';

/** Same-origin URLs of the shell: `/`, what index.html names, and the module graph from app.js. */
async function shellUrls() {
  const origin = sw.location.origin;
  const urls = new Set([new URL('/', origin).href]);
  const html = await (await fetch('/', { cache: 'no-cache' })).text();
  for (const m of html.matchAll(/(?:src|href)="([^"#:]+)"/g)) urls.add(new URL(m[1], `${origin}/`).href);
  const todo = [...urls].filter((u) => u.endsWith('.js'));
  while (todo.length) {
    const url = /** @type {string} */ (todo.pop());
    const src = await (await fetch(url, { cache: 'no-cache' })).text();
    for (const m of src.matchAll(/(?:from|import)\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const dep = new URL(m[1], url).href;
      if (!urls.has(dep)) { urls.add(dep); todo.push(dep); }
    }
  }
  return [...urls];
}

async function cacheShell() {
  const cache = await sw.caches.open(SHELL_CACHE);
  await cache.addAll(await shellUrls());
}

/** Whether the shell serves `req`: same-origin GETs outside `/v1/` and the worker itself. @param {Request} req */
function isShell(req) {
  if (req.method !== 'GET') return false;
  const url = new URL(req.url);
  return url.origin === sw.location.origin && !url.pathname.startsWith('/v1/') && url.pathname !== '/sw.js';
}

/** Cache first, and refresh the copy from the network. @param {any} event */
async function serveShell(event) {
  const req = /** @type {Request} */ (event.request);
  const cache = await sw.caches.open(SHELL_CACHE);
  // Every navigation is the one page (chats live in the hash).
  const key = req.mode === 'navigate' ? new URL('/', sw.location.origin).href : req;
  const cached = await cache.match(key, { ignoreSearch: req.mode === 'navigate' });
  const fresh = fetch(req).then((res) => {
    if (res.ok && res.type === 'basic') cache.put(key, res.clone());
    return res;
  });
  if (cached) {
    event.waitUntil(fresh.catch(() => {}));
    return cached;
  }
  return fresh;
}

if (typeof sw.registration === 'object' && typeof sw.addEventListener === 'function') {
  sw.addEventListener('install', (/** @type {any} */ e) => {
    // A shell that can't be fetched now is fetched on the next install; install anyway.
    e.waitUntil(cacheShell().catch(() => {}).then(() => sw.skipWaiting()));
  });
  sw.addEventListener('activate', (/** @type {any} */ e) => {
    e.waitUntil(sw.caches.keys()
      .then((/** @type {string[]} */ keys) => Promise.all(keys.filter((k) => k.startsWith('parley-shell-') && k !== SHELL_CACHE).map((k) => sw.caches.delete(k))))
      .then(() => sw.clients.claim()));
  });
  sw.addEventListener('fetch', (/** @type {any} */ e) => { if (isShell(e.request)) e.respondWith(serveShell(e)); });
  sw.addEventListener('push', (/** @type {any} */ e) => e.waitUntil(onPush(e)));
  sw.addEventListener('notificationclick', (/** @type {any} */ e) => e.waitUntil(onNotificationClick(e)));
}
