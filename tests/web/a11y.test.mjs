// Keyboard and screen readers: axe-core finds 0 violations on the log-in
// screen, the list, a direct chat, a group with its panel open, a
// confirmation dialog, the message menu, the react and delete dialogs and
// the settings dialog, in light and dark; one h1; the chat list is one Tab
// stop with arrow keys inside; focus moves into panels and dialogs and back.
// Confirmations (leave, remove, log out) name their action and "Cancel".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitText, waitVisible,
  until, shot,
} from './helpers.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

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

/** axe-core's violations on the page, in both colour schemes, as readable lines. */
async function violations(page, where) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: axePath });
  const out = [];
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    // Let transitions settle so colours are final.
    await page.waitForTimeout(250);
    const res = await page.evaluate(() => /** @type {any} */ (window).axe.run(document, { resultTypes: ['violations'] }));
    for (const v of res.violations) {
      out.push(`${where} (${scheme}): ${v.id}: ${v.nodes.map((n) => n.target.join(' ')).slice(0, 4).join(' | ')}`);
    }
    await shot(page, `a11y-${where}-${scheme}`);
  }
  await page.emulateMedia({ colorScheme: null });
  return out;
}

test('axe finds nothing; one h1; keyboard focus goes where it should', { timeout: 180000 }, async () => {
  const [aliceName, bobName, carolName] = ['alice', 'bob', 'carol'].map(uniqueName);
  const found = [];

  const ctx = await browser.newContext();
  const login = await ctx.newPage();
  await login.goto(server.url);
  await waitVisible(login.getByRole('button', { name: 'Log in' }));
  found.push(...await violations(login, 'login'));
  assert.equal(await login.locator('h1').count(), 1);
  await ctx.close();

  for (const n of [bobName, carolName]) await (await openUser(browser, server.url, n)).context.close();
  const alice = await openUser(browser, server.url, aliceName);
  const { page } = alice;
  await startDirectChat(page, carolName);
  await startDirectChat(page, bobName);
  await sendMessage(page, 'Hello Bob, see www.example.com');
  await waitVisible(page.getByRole('img', { name: /Sent|Delivered/ }));
  found.push(...await violations(page, 'direct-chat'));
  assert.equal(await page.locator('h1').count(), 1, 'exactly one h1');
  assert.equal(await page.getByRole('heading', { level: 1 }).count(), 1);

  // The list: one Tab stop, arrows move inside, rows are buttons.
  const rows = page.locator('#conversation-list .conv-open');
  await until(async () => (await rows.count()) === 2, 'two chats');
  assert.equal(await page.locator('#conversation-list [tabindex="0"]').count(), 1, 'one Tab stop');
  await page.getByRole('listitem', { name: bobName }).getByRole('button').focus();
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement?.closest('li')?.getAttribute('aria-label')), carolName);
  assert.equal(await page.locator('#conversation-list [tabindex="0"]').count(), 1, 'still one Tab stop');
  await page.keyboard.press('Enter');
  await waitText(page.locator('#chat-title'), carolName);
  found.push(...await violations(page, 'list'));

  // A group with its panel open: focus goes in, and back on close.
  await page.getByRole('button', { name: 'New group' }).click();
  await page.getByRole('textbox', { name: 'Group name' }).fill('Accessible');
  await page.getByRole('textbox', { name: 'Members' }).fill(`${bobName}, ${carolName}`);
  await page.getByRole('button', { name: 'Create group' }).click();
  await waitText(page.locator('#chat-title'), 'Accessible');
  await page.getByRole('button', { name: 'Group info' }).click();
  await waitVisible(page.getByRole('button', { name: 'Leave group' }));
  assert.equal(await page.evaluate(() => !!document.activeElement?.closest('#group-panel')), true, 'focus in the panel');
  found.push(...await violations(page, 'group-panel'));

  // Confirmations: a dialog naming the action, "Cancel" keeps everything.
  await page.getByRole('button', { name: `Remove ${bobName}` }).click();
  const dialog = page.getByRole('alertdialog');
  await waitVisible(dialog.getByRole('button', { name: 'Remove' }));
  found.push(...await violations(page, 'confirm'));
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await dialog.count(), 0);
  await page.getByRole('button', { name: 'Leave group' }).click();
  await waitVisible(dialog.getByRole('button', { name: 'Leave group' }));
  await page.keyboard.press('Escape');
  assert.equal(await dialog.count(), 0);
  await waitText(page.locator('.chat-header'), '3 members');
  await page.getByRole('button', { name: 'Close group details' }).click();
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Group info', 'focus back on Group info');

  // The message menu and the dialogs it opens, and the settings dialog.
  await page.getByRole('listitem', { name: bobName }).click();
  const msg = page.locator('#message-items .msg.own').last();
  await msg.hover();
  await msg.getByRole('button', { name: 'Message actions' }).click();
  await waitVisible(page.getByRole('menu'));
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('role')), 'menuitem', 'focus in the menu');
  found.push(...await violations(page, 'message-menu'));
  await page.keyboard.press('Escape');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Message actions', 'focus back on the button');
  await msg.getByRole('button', { name: 'Message actions' }).click();
  await page.getByRole('menuitem', { name: 'React' }).click();
  await waitVisible(page.getByRole('dialog', { name: 'React' }));
  found.push(...await violations(page, 'react'));
  await page.keyboard.press('Escape');
  await msg.getByRole('button', { name: 'Message actions' }).click();
  await page.getByRole('menuitem', { name: 'Delete' }).click();
  await waitVisible(page.getByRole('dialog', { name: 'Delete message?' }));
  found.push(...await violations(page, 'delete'));
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: 'Settings' }).click();
  const settings = page.getByRole('dialog', { name: 'Settings' });
  await waitVisible(settings.getByRole('list', { name: 'Linked devices' }));
  found.push(...await violations(page, 'settings'));
  await settings.getByRole('button', { name: 'Close settings' }).click();
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Settings', 'focus back on Settings');

  await page.getByRole('button', { name: 'Log out' }).click();
  await waitVisible(dialog.getByRole('button', { name: 'Log out' }));
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await waitVisible(page.getByRole('button', { name: 'New chat' }));
  await page.getByRole('button', { name: 'Log out' }).click();
  await dialog.getByRole('button', { name: 'Log out' }).click();
  await waitVisible(page.getByRole('button', { name: 'Log in' }));

  assert.deepEqual(found, []);
  assert.deepEqual(alice.errors, []);
});
