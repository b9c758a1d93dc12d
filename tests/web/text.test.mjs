// Correct text and right words: sign-up takes a display name and says when
// a username is lowercased; messages and the composer follow the text's
// direction; avatar initials keep whole graphemes; www. links are links; a
// message over max_text_bytes is kept and the overshoot shown; the member
// promoted when the last admin leaves reads "You're now an admin".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, sendMessage, waitText, waitVisible, shot, PASSWORD,
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

test('sign-up, text direction, initials, links, the size limit, succession', { timeout: 150000 }, async () => {
  const bobName = uniqueName('bob');
  const aliceName = uniqueName('alice');
  const bob = await openUser(browser, server.url, bobName);

  // Sign-up with a display name; uppercase in the username is pointed out.
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url);
  await page.getByRole('textbox', { name: 'Username' }).fill(aliceName.toUpperCase());
  await waitText(page.getByRole('status').filter({ hasText: 'lowercase' }), `“${aliceName}”`);
  await page.getByRole('textbox', { name: 'Password' }).fill(PASSWORD);
  await page.getByRole('textbox', { name: 'Display name' }).fill('Alice Ångström');
  await shot(page, 'text-signup');
  await page.getByRole('button', { name: 'Create account' }).click();
  await waitVisible(page.getByRole('button', { name: 'New chat' }));
  const me = await page.evaluate(async () => {
    const s = JSON.parse(localStorage.getItem('parley.session') || '{}');
    return (await fetch('/v1/me', { headers: { authorization: `Bearer ${s.token}` } })).json();
  });
  assert.equal(me.username, aliceName);
  assert.equal(me.display_name, 'Alice Ångström');

  // Alice makes a group with bob, so she can leave it as its only admin later.
  await page.getByRole('button', { name: 'New group' }).click();
  await page.getByRole('textbox', { name: 'Group name' }).fill('🎉 Party');
  await page.getByRole('textbox', { name: 'Members' }).fill(bobName);
  await page.getByRole('button', { name: 'Create group' }).click();
  await waitText(page.locator('#chat-title'), '🎉 Party');
  // The emoji is one grapheme: its initials never split it.
  const initials = await page.locator('#chat-avatar').textContent();
  assert.equal(initials, '🎉P');

  await sendMessage(page, 'مرحبا بالعالم');
  await sendMessage(page, 'see www.example.com/path.');
  const rtl = page.locator('#message-items .msg .text').filter({ hasText: 'مرحبا' });
  await waitVisible(rtl);
  assert.equal(await rtl.getAttribute('dir'), 'auto');
  assert.equal(await rtl.evaluate((el) => getComputedStyle(el).direction), 'rtl');
  assert.equal(await page.getByRole('textbox', { name: 'Message' }).getAttribute('dir'), 'auto');
  const link = page.getByRole('link', { name: 'www.example.com/path' });
  assert.equal(await link.getAttribute('href'), 'https://www.example.com/path');

  // Over the limit: kept, with how far over it is; nothing is sent.
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill('x'.repeat(70000));
  await waitText(page.getByRole('status').filter({ hasText: 'Too long' }), '4,464 bytes over');
  await box.press('Enter');
  assert.equal((await box.inputValue()).length, 70000, 'the text is kept');
  await shot(page, 'text-too-long');
  await box.fill('');

  // Alice, the only admin, leaves: bob is promoted by the server.
  await bob.page.getByRole('listitem', { name: '🎉 Party' }).click();
  await page.getByRole('button', { name: 'Group info' }).click();
  await page.getByRole('button', { name: 'Leave group' }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Leave group' }).click();
  await waitText(bob.page.locator('#message-items .msg.system').last(), 'You’re now an admin');
  await shot(bob.page, 'text-now-admin');
  assert.deepEqual(errors, []);
  assert.deepEqual(bob.errors, []);
  await context.close();
});
