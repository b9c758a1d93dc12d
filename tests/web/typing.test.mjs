// Fewer wasted frames: several quick messages keep the typing frames within
// the server's typing rate limit (5 per second per socket, burst 10), so
// the server never refuses one.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, waitTickAtLeast, shot,
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

test('typing frames stay within the server limit across quick messages', { timeout: 120000 }, async () => {
  const bobName = uniqueName('bob');
  const bob = await openUser(browser, server.url, bobName);
  const alice = await openUser(browser, server.url, uniqueName('alice'));
  const { page } = alice;
  /** @type {number[]} */ const typingSent = [];
  /** @type {any[]} */ const refused = [];
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => {
      try { if (JSON.parse(String(f.payload)).type === 'typing') typingSent.push(Date.now()); } catch { /* not JSON */ }
    });
    ws.on('framereceived', (f) => {
      try {
        const m = JSON.parse(String(f.payload));
        if (m.type === 'error') refused.push(m);
      } catch { /* not JSON */ }
    });
  });
  // A fresh socket, so the listener sees it.
  await page.reload();
  await startDirectChat(page, bobName);
  const box = page.getByRole('textbox', { name: 'Message' });
  for (let i = 1; i <= 8; i++) {
    await box.pressSequentially(`quick ${i}`, { delay: 5 });
    await box.press('Enter');
  }
  await waitTickAtLeast(page, 'quick 8', 'Sent');
  await shot(page, 'typing-quick-messages');
  assert.deepEqual(refused, [], 'the server refused nothing');
  // Within any second, at most 5 typing frames (the server's sustained rate).
  for (const t of typingSent) {
    const inSecond = typingSent.filter((x) => x >= t && x < t + 1000).length;
    assert.ok(inSecond <= 5, `${inSecond} typing frames within one second`);
  }
  assert.ok(typingSent.length >= 1, 'the others were told alice types');
  assert.deepEqual(alice.errors, []);
  await bob.context.close();
});
