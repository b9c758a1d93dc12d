// Errors the server can send are shown as human sentences, and the client
// recovers: rate-limited sends are retried in order, a too-long message is
// kept in the composer (the server's limit) or, refused by the server,
// marked as not sent (and can be discarded), unknown usernames are named.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitText,
  waitVisible, waitTick, waitTickAtLeast, bubbleTexts, until, shot,
} from './helpers.mjs';

/** @type {import('./helpers.mjs').Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  server = await startServer({
    env: {
      PARLEY_SEND_RATE_PER_SEC: '2', PARLEY_SEND_BURST: '3', PARLEY_MAX_TEXT_BYTES: '200',
      // A short heartbeat: the client's pings must keep its one socket alive.
      PARLEY_HEARTBEAT_MS: '1000',
    },
  });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
});

test('rate limits, too-long messages and unknown users get clear messages', { timeout: 150000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  const { page } = alice;
  let sockets = 0;
  page.on('websocket', () => { sockets += 1; });
  await startDirectChat(page, bobName);

  // Eight messages in a burst of three: some are refused with rate_limited,
  // retried after retry_after_ms, and all arrive once, in the typed order.
  const texts = Array.from({ length: 8 }, (_, i) => `burst ${i + 1}`);
  for (const t of texts) await sendMessage(page, t);
  await waitVisible(page.getByRole('alert').getByText('You’re sending too fast'));
  await shot(page, 'errors-rate-limited');
  for (const t of texts) await waitTickAtLeast(page, t, 'Delivered', 15000);
  assert.deepEqual(await bubbleTexts(page), texts);
  await bob.page.getByRole('listitem', { name: aliceName }).click();
  await until(async () => (await bubbleTexts(bob.page)).length === 8, 'bob has all eight');
  assert.deepEqual(await bubbleTexts(bob.page), texts);

  // Over max_text_bytes (200 here; the composer has it from the server's
  // `ready`): kept in the composer with how far over it is, not sent.
  const long = 'x'.repeat(300);
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(long);
  await waitText(page.getByRole('status').filter({ hasText: 'Too long' }), '100 bytes over the limit of 200');
  await box.press('Enter');
  assert.equal(await box.inputValue(), long, 'kept, not sent');
  await box.fill('');
  // One that reaches the server anyway (queued in the stored outbox, e.g.
  // before the limit was lowered) is refused: marked, explained, discardable.
  await page.evaluate((text) => {
    const s = JSON.parse(localStorage.getItem('parley.session') || '{}');
    const conversationId = decodeURIComponent(location.hash.replace('#/c/', ''));
    localStorage.setItem(`parley.outbox.${s.user_id}`, JSON.stringify([
      { client_msg_id: 'web-too-long', conversation_id: conversationId, text, created_ms: Date.now() },
    ]));
  }, long);
  await page.reload();
  await waitVisible(page.getByRole('img', { name: 'Failed to send' }));
  sockets = 0; // the reload's own socket
  await waitText(page.locator('.failed-note'), 'too long');
  await waitVisible(page.getByRole('alert').getByText('That message is too long to send'));
  await shot(page, 'errors-too-long');
  // A failed message does not block the ones after it.
  await sendMessage(page, 'short one after the long one');
  await waitTick(page, 'short one after the long one', 'Read');
  await page.getByRole('button', { name: 'Discard' }).click();
  await until(async () => (await page.getByRole('img', { name: 'Failed to send' }).count()) === 0, 'failed message discarded');
  assert.ok(!(await bubbleTexts(bob.page)).includes(long));

  // Unknown usernames in a new group are named.
  await page.getByRole('button', { name: 'New group' }).click();
  await page.getByRole('textbox', { name: 'Group name' }).fill('Ghosts');
  await page.getByRole('textbox', { name: 'Members' }).fill(`${bobName}, ghost_zz_404`);
  await page.getByRole('button', { name: 'Create group' }).click();
  await waitText(page.locator('#new-group-error'), 'no user called “ghost_zz_404”');
  assert.equal(sockets, 0, 'no reconnects: pings kept the socket alive with a 1 s heartbeat');
  assert.deepEqual(alice.errors, []);
  await alice.context.close();
  await bob.context.close();
});
