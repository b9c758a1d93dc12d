// Per-chat URLs and drafts: the open chat is in the URL, a reload returns
// to it, Back on a phone returns to the list (not out of the app), and an
// unsent text stays per chat across reloads, shown as "Draft: …" in the list.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, waitText, waitVisible, until, shot,
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

test('the chat is in the URL, Back returns to the list, drafts survive reloads', { timeout: 120000 }, async () => {
  const bobName = uniqueName('bob');
  const carolName = uniqueName('carol');
  for (const n of [bobName, carolName]) await (await openUser(browser, server.url, n)).context.close();
  const alice = await openUser(browser, server.url, uniqueName('alice'), { viewport: { width: 390, height: 844 } });
  const { page } = alice;
  await startDirectChat(page, carolName);
  await page.getByRole('button', { name: 'Back to chats' }).click();
  await startDirectChat(page, bobName);
  assert.match(page.url(), /#\/c\/[^/]+$/);

  // Reload: the same chat, at once.
  await page.reload();
  await waitText(page.locator('#chat-title'), bobName);
  await waitVisible(page.getByRole('textbox', { name: 'Message' }));

  // A draft, then the browser's Back: the list, with the draft in it.
  await page.getByRole('textbox', { name: 'Message' }).fill('half-written thought');
  await page.goBack();
  const item = page.getByRole('listitem', { name: bobName });
  await waitVisible(item);
  assert.ok(!page.url().includes('#/c/'), page.url());
  await waitText(item, 'Draft: half-written thought');
  await shot(page, 'urls-draft-in-list');

  // Still there after a reload, and back in the composer when the chat opens.
  await page.reload();
  await waitText(page.getByRole('listitem', { name: bobName }), 'Draft: half-written thought');
  await page.getByRole('listitem', { name: bobName }).click();
  await until(async () => (await page.getByRole('textbox', { name: 'Message' }).inputValue()) === 'half-written thought', 'the draft in the composer');
  // The other chat has no draft.
  assert.equal(await page.getByRole('listitem', { name: carolName }).getByText('Draft:').count(), 0);
  assert.deepEqual(alice.errors, []);
});
