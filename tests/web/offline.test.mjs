// The offline app shell (issue 15, web part): once the service worker
// controls the page, a reload while the server is down shows the app with
// its cached conversation list and the connection status — not the
// browser's error page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitVisible, until, shot,
} from './helpers.mjs';

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

test('a reload with the server down shows the cached app and conversations', { timeout: 120000 }, async () => {
  const [aliceName, bobName] = ['alice', 'bob'].map(uniqueName);
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  const { page } = alice;
  await startDirectChat(bob.page, aliceName);
  await sendMessage(bob.page, 'see you offline');
  await waitVisible(page.getByRole('listitem', { name: bobName }));
  await until(() => page.evaluate(() => !!navigator.serviceWorker.controller), 'the service worker to control the page');
  await until(() => page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith('parley.convs.')
    && /see you offline/.test(localStorage.getItem(k) || '') && /"members":\["/.test(localStorage.getItem(k) || ''))), 'the cached list');
  await bob.context.close();

  await server.stop();
  await page.reload();
  await waitVisible(page.getByRole('button', { name: 'New chat' }));
  await waitVisible(page.getByRole('listitem', { name: bobName }));
  await waitVisible(page.getByRole('listitem', { name: bobName }).getByText('see you offline'));
  const status = page.getByRole('status').filter({ hasText: /^(Connecting|No connection)/ });
  await waitVisible(status);
  assert.match(/** @type {string} */ (await status.first().textContent()), /^(Connecting|No connection)/);
  await shot(page, 'offline-shell');
  assert.deepEqual(alice.errors, []);
  await alice.context.close();
});
