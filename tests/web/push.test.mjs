// The service worker (§12): registered after log-in, and its push handler
// runs for a push delivered through the DevTools protocol
// (`ServiceWorker.deliverPushMessage`). Headless Chromium cannot subscribe
// to a real push service without a vendor; the server side of push, the
// encryption included, is covered by crates/parley/tests/push.rs.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, uniqueName, openUser, until } from './helpers.mjs';

/** @type {import('./helpers.mjs').Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
});

test('the service worker registers and handles a push', async () => {
  const { context, page, errors } = await openUser(browser, server.url, uniqueName('sw'));
  const cdp = await context.newCDPSession(page);
  /** @type {string|null} */
  let registrationId = null;
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => {
    for (const r of e.registrations) if (r.scopeURL === `${server.url}/` && !r.isDeleted) registrationId = r.registrationId;
  });
  await cdp.send('ServiceWorker.enable');
  await until(() => page.evaluate(() => navigator.serviceWorker.ready.then((r) => !!r.active)), 'an active service worker');
  await until(() => registrationId, 'the registration id');
  await page.evaluate(() => {
    /** @type {any} */ (window).pushes = [];
    navigator.serviceWorker.addEventListener('message', (e) => /** @type {any} */ (window).pushes.push(e.data));
  });
  const payload = { type: 'wake', conversation_id: 'c42', unread: 3 };
  await cdp.send('ServiceWorker.deliverPushMessage', {
    origin: server.url, registrationId, data: JSON.stringify(payload),
  });
  const got = await until(() => page.evaluate(() => /** @type {any} */ (window).pushes[0]), 'the push handler to run');
  assert.deepEqual(got, { kind: 'push', data: payload });
  // The page is visible, so the handler shows no notification.
  const shown = await page.evaluate(() => navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((n) => n.length));
  assert.equal(shown, 0);
  assert.deepEqual(errors, []);
  await context.close();
});
