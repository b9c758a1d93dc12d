// Finding people: New chat and New group suggest matching users while the
// user types (a prefix of people they share a conversation with, or anyone's
// exact username), never the user themself.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, waitVisible, until, shot,
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

test('usernames are suggested while typing', { timeout: 120000 }, async () => {
  const [aliceName, bobName, carolName] = ['alice', 'bob', 'carol'].map(uniqueName);
  for (const n of [bobName, carolName]) await (await openUser(browser, server.url, n)).context.close();
  const alice = await openUser(browser, server.url, aliceName);
  const { page } = alice;
  await startDirectChat(page, bobName);

  // A prefix of someone alice already talks to.
  await page.getByRole('button', { name: 'New chat' }).click();
  const find = page.getByRole('textbox', { name: 'Find user' });
  await find.fill(bobName.slice(0, 5));
  await waitVisible(page.getByRole('option', { name: bobName }));
  assert.equal(await page.getByRole('option', { name: carolName }).count(), 0, 'no shared chat, no prefix match');
  await shot(page, 'suggest-prefix');
  // Anyone, by exact username.
  await find.fill(carolName);
  await waitVisible(page.getByRole('option', { name: carolName }));
  await find.press('ArrowDown');
  await find.press('Enter');
  assert.equal(await find.inputValue(), carolName);
  await page.getByRole('button', { name: 'Start chat' }).click();
  await until(async () => (await page.locator('#chat-title').textContent()) === carolName, 'the chat with carol');

  // New group: members are suggested, the user never is.
  await page.getByRole('button', { name: 'New group' }).click();
  const members = page.getByRole('textbox', { name: 'Members' });
  await members.fill(`${bobName}, ${carolName.slice(0, 6)}`);
  await waitVisible(page.getByRole('option', { name: carolName }));
  await page.getByRole('option', { name: carolName }).click();
  assert.equal(await members.inputValue(), `${bobName}, ${carolName}, `);
  await members.fill(aliceName.slice(0, 6));
  await members.fill(aliceName);
  await page.waitForTimeout(800);
  assert.equal(await page.getByRole('option', { name: aliceName }).count(), 0, 'never oneself');
  assert.deepEqual(alice.errors, []);
});
