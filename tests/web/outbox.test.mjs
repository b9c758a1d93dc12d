// Resilience: the server is killed while alice types. Her messages wait in
// the outbox (clock icon, persisted in localStorage), and go out with the same
// client_msg_id once the server is back on the same port and data dir.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitText,
  waitVisible, waitTick, waitTickAtLeast, bubbleTexts, until, shot,
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

test('outbox survives a server restart and resends without duplicates', { timeout: 150000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  await startDirectChat(alice.page, bobName);
  await sendMessage(alice.page, 'before the outage');
  await waitTick(alice.page, 'before the outage', 'Delivered');
  await bob.page.getByRole('listitem', { name: aliceName }).click();
  await waitText(bob.page.locator('#message-items'), 'before the outage');

  // The server goes away abruptly.
  const { port, dataDir } = server;
  await server.kill();
  await waitVisible(alice.page.getByRole('status').filter({ hasText: /^(No connection|Connecting)/ }));

  await sendMessage(alice.page, 'typed while offline 1');
  await sendMessage(alice.page, 'typed while offline 2');
  await waitTick(alice.page, 'typed while offline 1', 'Sending');
  await waitTick(alice.page, 'typed while offline 2', 'Sending');
  assert.equal(await alice.page.getByRole('img', { name: 'Sending' }).count(), 2);
  const stored = await alice.page.evaluate(() => Object.keys(localStorage)
    .filter((k) => k.startsWith('parley.outbox.')).map((k) => JSON.parse(localStorage.getItem(k) || '[]')).flat());
  assert.deepEqual(stored.map((o) => o.text), ['typed while offline 1', 'typed while offline 2']);
  await shot(alice.page, 'outbox-offline');

  // Back on the same port and data dir: the outbox drains.
  server = await startServer({ port, dataDir });
  await waitTickAtLeast(alice.page, 'typed while offline 2', 'Delivered', 15000);
  await until(async () => (await alice.page.getByRole('img', { name: 'Sending' }).count()) === 0, 'no clocks left');
  const left = await alice.page.evaluate(() => Object.keys(localStorage)
    .filter((k) => k.startsWith('parley.outbox.')).map((k) => JSON.parse(localStorage.getItem(k) || '[]')).flat());
  assert.deepEqual(left, []);

  // Bob (reconnected on his own) sees each message once, in order.
  const expected = ['before the outage', 'typed while offline 1', 'typed while offline 2'];
  await until(async () => (await bubbleTexts(bob.page)).length >= 3, 'bob has three bubbles');
  await waitTick(alice.page, 'typed while offline 2', 'Read');
  assert.deepEqual(await bubbleTexts(bob.page), expected);
  assert.deepEqual(await bubbleTexts(alice.page), expected);

  // After a reload nothing is duplicated either.
  await alice.page.reload();
  await alice.page.getByRole('listitem', { name: bobName }).click();
  await until(async () => (await bubbleTexts(alice.page)).length === 3, 'three bubbles after reload');
  assert.deepEqual(await bubbleTexts(alice.page), expected);
  await shot(alice.page, 'outbox-after-restart');
  assert.deepEqual(alice.errors, []);
  await alice.context.close();
  await bob.context.close();
});

test('graceful restart (reconnect frame) and a stale cursor (resync_required)', { timeout: 150000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  await startDirectChat(alice.page, bobName);
  await sendMessage(alice.page, 'hello before restart');
  await waitTickAtLeast(alice.page, 'hello before restart', 'Delivered');

  // Bob's stored cursor becomes unusable (beyond the server's head), then he leaves.
  await bob.page.evaluate(() => {
    for (const k of Object.keys(localStorage)) if (k.startsWith('parley.cursor.')) localStorage.setItem(k, '999999999');
  });
  await bob.page.close();

  // SIGTERM: the server sends `reconnect` and drains; alice's client waits and comes back.
  const { port, dataDir } = server;
  await server.stop();
  await waitVisible(alice.page.getByRole('status').filter({ hasText: /^(No connection|Connecting)/ }));
  server = await startServer({ port, dataDir });
  await until(async () => !(await alice.page.locator('#connection-banner').isVisible()), 'alice reconnected');
  await sendMessage(alice.page, 'while bob was away 1');
  await sendMessage(alice.page, 'while bob was away 2');
  await waitTick(alice.page, 'while bob was away 2', 'Sent');

  // Bob returns with the stale cursor: the server answers resync_required and
  // the client reloads over HTTP, then continues live from the head cursor.
  const page = await bob.context.newPage();
  await page.goto(server.url);
  const item = page.getByRole('listitem', { name: aliceName });
  await waitText(item, 'while bob was away 2');
  await item.click();
  const expected = ['hello before restart', 'while bob was away 1', 'while bob was away 2'];
  await until(async () => (await bubbleTexts(page)).length === 3, 'bob has three bubbles');
  assert.deepEqual(await bubbleTexts(page), expected);
  await waitTick(alice.page, 'while bob was away 2', 'Read');
  await sendMessage(alice.page, 'live again');
  await waitText(page.locator('#message-items .msg.other').last(), 'live again');
  assert.deepEqual(await bubbleTexts(page), [...expected, 'live again']);
  const cursor = await page.evaluate(() => Object.entries(localStorage).find(([k]) => k.startsWith('parley.cursor.'))?.[1]);
  assert.ok(Number(cursor) < 999999999, `cursor was reset to the head, got ${cursor}`);
  await alice.context.close();
  await bob.context.close();
});
