// The "Settings" dialog: display name (seen by others in the list and
// header), last seen (Everyone/Nobody, as the peer sees it), read receipts
// (off: no blue ticks either way), theme (System/Light/Dark, kept across
// reloads) and linked devices (log another device out).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitText, waitCount,
  waitVisible, waitTick, until, shot,
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

test('display name, last seen, read receipts, theme, linked devices', { timeout: 180000 }, async () => {
  const [aliceName, bobName] = ['alice', 'bob'].map(uniqueName);
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  const alice2 = await openUser(browser, server.url, aliceName, { register: false });
  const { page } = alice;
  await startDirectChat(page, bobName);
  await sendMessage(page, 'hello from alice');
  await waitVisible(bob.page.getByRole('listitem', { name: aliceName }));

  // Display name: bob sees it in the list and the header.
  await page.getByRole('button', { name: 'Settings' }).click();
  const dialog = page.getByRole('dialog', { name: 'Settings' });
  const nameBox = dialog.getByRole('textbox', { name: 'Display name', exact: true });
  await waitVisible(nameBox);
  assert.equal(await nameBox.inputValue(), aliceName);
  await nameBox.fill('Alice Liddell');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await waitText(dialog.getByRole('status'), 'Saved');
  await shot(page, 'settings-dialog');
  // No reload: opening the chat re-reads the name.
  await bob.page.getByRole('listitem', { name: aliceName }).click();
  await waitText(bob.page.locator('#chat-title'), 'Alice Liddell');
  await waitVisible(bob.page.getByRole('listitem', { name: 'Alice Liddell' }));

  // Last seen: Nobody hides presence from bob.
  await waitVisible(bob.page.locator('.chat-header').getByText('online', { exact: true }));
  const lastSeen = dialog.getByRole('radiogroup', { name: 'Last seen', exact: true });
  assert.equal(await lastSeen.getByRole('radio', { name: 'Everyone' }).isChecked(), true);
  await lastSeen.getByRole('radio', { name: 'Nobody' }).check();
  await until(async () => (await bob.page.locator('.chat-header').getByText('online', { exact: true }).count()) === 0, 'alice hidden');
  await lastSeen.getByRole('radio', { name: 'Everyone' }).check();
  await waitVisible(bob.page.locator('.chat-header').getByText('online', { exact: true }));

  // Read receipts off: bob reading alice's message leaves it at Delivered.
  const receipts = dialog.getByRole('checkbox', { name: 'Read receipts', exact: true });
  assert.equal(await receipts.isChecked(), true);
  await receipts.uncheck();
  await until(async () => {
    const me = await page.evaluate(async () => {
      const s = JSON.parse(localStorage.getItem('parley.session') || '{}');
      return (await fetch('/v1/me', { headers: { authorization: `Bearer ${s.token}` } })).json();
    });
    return me.read_receipts === false;
  }, 'read receipts off on the server');

  // Theme: dark and light are real, and kept across reloads.
  const theme = dialog.getByRole('radiogroup', { name: 'Theme', exact: true });
  assert.equal(await theme.getByRole('radio', { name: 'System' }).isChecked(), true);
  const bg = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  await theme.getByRole('radio', { name: 'Dark' }).check();
  const dark = await bg();
  await shot(page, 'settings-dark');
  await theme.getByRole('radio', { name: 'Light' }).check();
  const light = await bg();
  assert.notEqual(dark, light);
  await theme.getByRole('radio', { name: 'Dark' }).check();

  // Linked devices: this one has no "Log out"; the other one is logged out.
  const devices = dialog.getByRole('list', { name: 'Linked devices' });
  await waitCount(devices.getByRole('listitem'), 2);
  await waitCount(devices.getByRole('button', { name: 'Log out' }), 1);
  await devices.getByRole('button', { name: 'Log out' }).click();
  await waitCount(devices.getByRole('listitem'), 1);
  await waitVisible(alice2.page.getByRole('button', { name: 'Log in' }));
  await dialog.getByRole('button', { name: 'Close settings' }).click();
  await waitCount(page.getByRole('dialog', { name: 'Settings' }), 0);

  // Back to read receipts: bob reads alice's new message; it stays Delivered.
  await sendMessage(page, 'do you read me?');
  await waitText(bob.page.locator('#message-items'), 'do you read me?');
  await waitTick(page, 'do you read me?', 'Delivered');
  await page.waitForTimeout(500); // a read receipt, if one came, would show by now
  assert.equal(await page.locator('#message-items .msg.own').last().locator('.tick').getAttribute('aria-label'), 'Delivered');

  await page.reload();
  await waitVisible(page.getByRole('button', { name: 'Settings' }));
  assert.equal(await bg(), dark, 'the theme survives a reload');
  await waitText(page.locator('#me-name'), 'Alice Liddell');
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  for (const u of [alice, alice2, bob]) await u.context.close();
});
