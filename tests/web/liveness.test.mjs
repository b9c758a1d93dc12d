// A dead connection is noticed in seconds: with the server frozen
// (SIGSTOP) the client's pings go unanswered, it shows "Connecting…" or
// "No connection", forgets presence, and reconnects on its own once the
// server runs again (SIGCONT); a message typed meanwhile then goes out.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitVisible,
  waitTickAtLeast, until, shot,
} from './helpers.mjs';

/** @type {import('./helpers.mjs').Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;
let frozen = false;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  if (frozen) process.kill(/** @type {number} */ (server.proc.pid), 'SIGCONT');
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
});

test('a frozen server is noticed within seconds and the client comes back on its own', { timeout: 90000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const bob = await openUser(browser, server.url, bobName);
  const alice = await openUser(browser, server.url, aliceName);
  await startDirectChat(alice.page, bobName);
  const header = alice.page.locator('.chat-header');
  await waitVisible(header.getByText('online', { exact: true }));

  process.kill(/** @type {number} */ (server.proc.pid), 'SIGSTOP');
  frozen = true;
  // The default wait (15 s) is far below the minutes TCP would take.
  const banner = alice.page.getByRole('status').filter({ hasText: /^(Connecting|No connection)/ });
  await waitVisible(banner);
  // Presence is unknown while disconnected: bob is no longer shown online.
  assert.equal(await header.getByText('online', { exact: true }).count(), 0);
  await sendMessage(alice.page, 'Sent while the server was frozen');
  await shot(alice.page, 'liveness-frozen');

  process.kill(/** @type {number} */ (server.proc.pid), 'SIGCONT');
  frozen = false;
  await until(async () => !(await banner.count()), 'the connection status to go away', 20000);
  await waitTickAtLeast(alice.page, 'Sent while the server was frozen', 'Sent', 20000);
  await waitVisible(bob.page.getByRole('listitem', { name: aliceName }));
  await waitVisible(header.getByText('online', { exact: true }));
  await shot(alice.page, 'liveness-back');
  assert.deepEqual(alice.errors, []);
});
