// "Chat options": mute, pin and archive (pinned first, archived chats only
// under "Archived", a muted mark), each synced live to the user's other
// device; block and unblock from the header (the composer says so, presence
// hidden both ways); a group one has left stays listed, read-only.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitText, waitCount,
  waitVisible, until, shot,
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

/** Choose `item` in the open chat's "Chat options". */
async function option(page, item) {
  await page.getByRole('button', { name: 'Chat options' }).click();
  await page.getByRole('menu').getByRole('menuitem', { name: item, exact: true }).click();
}

/** The names of the chat list's rows, top to bottom. */
function rowNames(page) {
  return page.locator('#conversation-list > li').evaluateAll((lis) => lis.map((li) => li.getAttribute('aria-label')));
}

test('mute, pin and archive, synced to my other device', { timeout: 150000 }, async () => {
  const [aliceName, bobName, carolName] = ['alice', 'bob', 'carol'].map(uniqueName);
  const bob = await openUser(browser, server.url, bobName);
  const carol = await openUser(browser, server.url, carolName);
  const alice = await openUser(browser, server.url, aliceName);
  const alice2 = await openUser(browser, server.url, aliceName, { register: false });
  const { page } = alice;
  await startDirectChat(page, bobName);
  await sendMessage(page, 'hi bob');
  await startDirectChat(page, carolName);
  await sendMessage(page, 'hi carol');
  await until(async () => (await rowNames(alice2.page)).join() === [carolName, bobName].join(), 'carol on top on device 2');

  // Pin bob: first on both devices, with a pinned mark.
  await page.getByRole('listitem', { name: bobName }).click();
  await page.getByRole('button', { name: 'Chat options' }).click();
  assert.deepEqual(await page.getByRole('menu').getByRole('menuitem').allTextContents(), ['Mute', 'Pin', 'Archive', 'Block']);
  await shot(page, 'options-menu');
  await page.keyboard.press('Escape');
  await option(page, 'Pin');
  await until(async () => (await rowNames(page))[0] === bobName, 'bob pinned first');
  await until(async () => (await rowNames(alice2.page))[0] === bobName, 'bob pinned first on device 2');
  await waitVisible(alice2.page.getByRole('listitem', { name: bobName }).getByRole('img', { name: 'Pinned' }));

  // Mute: the mark in the list and header; Unmute is offered instead.
  await option(page, 'Mute');
  await waitVisible(page.getByRole('listitem', { name: bobName }).getByRole('img', { name: 'Muted' }));
  await waitVisible(page.locator('.chat-header').getByRole('img', { name: 'Muted' }));
  await waitVisible(alice2.page.getByRole('listitem', { name: bobName }).getByRole('img', { name: 'Muted' }));
  await page.getByRole('button', { name: 'Chat options' }).click();
  assert.deepEqual(await page.getByRole('menu').getByRole('menuitem').allTextContents(), ['Unmute', 'Unpin', 'Archive', 'Block']);
  await page.getByRole('menuitem', { name: 'Unmute' }).click();
  await waitCount(alice2.page.getByRole('listitem', { name: bobName }).getByRole('img', { name: 'Muted' }), 0);

  // Archive carol: gone from the list, under "Archived"; unarchive brings her back.
  await page.getByRole('listitem', { name: carolName }).click();
  await option(page, 'Archive');
  await waitCount(page.getByRole('listitem', { name: carolName }), 0);
  await waitCount(alice2.page.getByRole('listitem', { name: carolName }), 0);
  await alice2.page.getByRole('button', { name: 'Archived' }).click();
  await waitVisible(alice2.page.getByRole('listitem', { name: carolName }));
  await waitCount(alice2.page.getByRole('listitem', { name: bobName }), 0);
  await shot(alice2.page, 'options-archived');
  await alice2.page.getByRole('listitem', { name: carolName }).click();
  await option(alice2.page, 'Unarchive');
  await waitVisible(page.getByRole('listitem', { name: carolName }));
  await alice2.page.getByRole('button', { name: 'Archived' }).click();
  await waitVisible(alice2.page.getByRole('listitem', { name: bobName }));
  await waitVisible(alice2.page.getByRole('listitem', { name: carolName }));

  // After a reload the settings come from the server.
  await alice2.page.reload();
  await until(async () => (await rowNames(alice2.page))[0] === bobName, 'still pinned after reload');
  for (const u of [alice, alice2, bob, carol]) assert.deepEqual(u.errors, []);
  for (const u of [alice, alice2, bob, carol]) await u.context.close();
});

test('block and unblock; a left group stays listed', { timeout: 150000 }, async () => {
  const [aliceName, bobName] = ['alice', 'bob'].map(uniqueName);
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  const { page } = alice;
  await startDirectChat(page, bobName);
  await sendMessage(page, 'hello');
  await bob.page.getByRole('listitem', { name: aliceName }).click();
  await waitVisible(page.locator('.chat-header').getByText('online', { exact: true }));

  await option(page, 'Block');
  await waitText(page.locator('#composer-notice'), `You blocked ${bobName}`);
  assert.equal(await page.getByRole('textbox', { name: 'Message' }).isVisible(), false);
  // Presence is hidden both ways; bob's sends are refused.
  await until(async () => (await page.locator('.chat-header').getByText('online', { exact: true }).count()) === 0, 'bob not online for alice');
  await until(async () => (await bob.page.locator('.chat-header').getByText('online', { exact: true }).count()) === 0, 'alice not online for bob');
  await sendMessage(bob.page, 'can you hear me?');
  await waitVisible(bob.page.getByText('Not delivered'));
  await shot(page, 'options-blocked');
  await page.getByRole('button', { name: 'Chat options' }).click();
  await page.getByRole('menuitem', { name: 'Unblock' }).click();
  await waitVisible(page.getByRole('textbox', { name: 'Message' }));
  await waitVisible(page.locator('.chat-header').getByText('online', { exact: true }));

  // Block again, and unblock from the composer's notice.
  await option(page, 'Block');
  await page.locator('#composer-notice').getByRole('button', { name: 'Unblock' }).click();
  await waitVisible(page.getByRole('textbox', { name: 'Message' }));

  // A group alice leaves stays in her list, read-only, its history readable.
  await page.getByRole('button', { name: 'New group' }).click();
  await page.getByRole('textbox', { name: 'Group name' }).fill('Leavers');
  await page.getByRole('textbox', { name: 'Members' }).fill(bobName);
  await page.getByRole('button', { name: 'Create group' }).click();
  await waitText(page.locator('#chat-title'), 'Leavers');
  await sendMessage(page, 'bye all');
  await page.getByRole('button', { name: 'Group info' }).click();
  await page.getByRole('button', { name: 'Leave group' }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Leave group' }).click();
  await waitVisible(page.getByText('no longer a member'));
  await page.reload();
  await page.getByRole('listitem', { name: 'Leavers' }).click();
  await waitText(page.locator('#message-items'), 'bye all');
  await waitVisible(page.getByText('no longer a member'));
  await shot(page, 'options-left-group');
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await alice.context.close();
  await bob.context.close();
});
