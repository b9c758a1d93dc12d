// Two people chat in real browsers: sign-up, direct chat, ticks
// (Sent → Delivered → Read), offline catch-up in order without duplicates,
// presence and typing, reload and log out.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitText,
  waitCount, waitVisible, waitTick, waitTickAtLeast, bubbleTexts, until, shot, PASSWORD,
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

test('sign up, chat, ticks go Sent → Delivered → Read', { timeout: 120000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const alice = await openUser(browser, server.url, aliceName);
  // Bob exists but is not connected yet, so alice's first message stays at one tick.
  const bobCtx = await openUser(browser, server.url, bobName);
  await bobCtx.context.close();

  await startDirectChat(alice.page, bobName);
  await waitVisible(alice.page.getByRole('listitem', { name: bobName }));
  await sendMessage(alice.page, 'Hi Bob, are you there?');
  await waitTick(alice.page, 'Hi Bob, are you there?', 'Sent');
  // The conversation list shows the preview.
  await waitText(alice.page.getByRole('listitem', { name: bobName }), 'Hi Bob, are you there?');

  // Bob logs in again: his client acknowledges delivery on arrival.
  const bob = await openUser(browser, server.url, bobName, { register: false });
  const aliceItem = bob.page.getByRole('listitem', { name: aliceName });
  await waitVisible(aliceItem);
  await waitText(aliceItem, 'Hi Bob, are you there?');
  await waitText(aliceItem.locator('.badge'), '1');
  await waitTick(alice.page, 'Hi Bob, are you there?', 'Delivered');
  await waitVisible(alice.page.getByRole('img', { name: 'Delivered' }));

  // Bob opens the chat: read.
  await aliceItem.click();
  await waitCount(bob.page.locator('#message-items .msg.other'), 1);
  await waitTick(alice.page, 'Hi Bob, are you there?', 'Read');
  await waitVisible(alice.page.getByRole('img', { name: 'Read' }));
  await until(async () => !(await aliceItem.locator('.badge').isVisible()), 'unread badge cleared');

  // Bob answers; alice sees it live, the list moves and updates.
  await sendMessage(bob.page, 'Yes! Hello Alice 👋\nSecond line');
  await waitText(alice.page.locator('#message-items .msg.other').last(), 'Hello Alice 👋');
  await waitTick(bob.page, 'Hello Alice', 'Read');
  // Shift+Enter makes a new line instead of sending.
  const box = alice.page.getByRole('textbox', { name: 'Message' });
  await box.fill('line one');
  await box.press('Shift+Enter');
  await box.pressSequentially('line two');
  assert.equal(await box.inputValue(), 'line one\nline two');
  await box.press('Enter');
  await waitText(bob.page.locator('#message-items .msg.other').last(), 'line two');
  assert.equal(await box.inputValue(), '');

  await shot(alice.page, 'chat-desktop-alice');
  await shot(bob.page, 'chat-desktop-bob');
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await alice.context.close();
  await bob.context.close();
});

test('offline catch-up: in order, exactly once; reload stays logged in', { timeout: 120000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  await startDirectChat(alice.page, bobName);
  await sendMessage(alice.page, 'before you left');
  await bob.page.getByRole('listitem', { name: aliceName }).click();
  await waitText(bob.page.locator('#message-items'), 'before you left');
  await waitTick(alice.page, 'before you left', 'Read');

  // Bob goes away (his page closes; the context keeps his localStorage).
  await bob.page.close();
  const texts = ['one', 'two', 'three', 'four', 'five'].map((w) => `offline message ${w}`);
  for (const t of texts) await sendMessage(alice.page, t);
  for (const t of texts) await waitTick(alice.page, t, 'Sent');

  // Bob comes back in a new page of the same browser profile: still logged in.
  const page = await bob.context.newPage();
  await page.goto(server.url);
  const item = page.getByRole('listitem', { name: aliceName });
  await waitText(item, texts[4]);
  await waitText(item.locator('.badge'), '5');
  await waitTick(alice.page, texts[4], 'Delivered');
  await item.click();
  await until(async () => (await bubbleTexts(page)).length === 6, 'six bubbles');
  assert.deepEqual(await bubbleTexts(page), ['before you left', ...texts]);
  await waitTick(alice.page, texts[4], 'Read');

  // A live message after the catch-up arrives once too.
  await sendMessage(alice.page, 'welcome back');
  await waitText(page.locator('#message-items .msg.other').last(), 'welcome back');
  await page.waitForTimeout(300); // let any duplicate show up before counting
  assert.deepEqual(await bubbleTexts(page), ['before you left', ...texts, 'welcome back']);

  // Reload: still logged in, same history, no duplicates.
  await page.reload();
  await page.getByRole('listitem', { name: aliceName }).click();
  await until(async () => (await bubbleTexts(page)).length === 7, 'seven bubbles after reload');
  assert.deepEqual(await bubbleTexts(page), ['before you left', ...texts, 'welcome back']);
  await shot(page, 'catchup-bob');

  // Log out: back to the log-in form; logging in again works.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Log out' }).click();
  await waitVisible(page.getByRole('button', { name: 'Log in' }));
  await page.reload();
  await waitVisible(page.getByRole('button', { name: 'Log in' }));
  await page.getByRole('textbox', { name: 'Username' }).fill(bobName);
  await page.getByRole('textbox', { name: 'Password' }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await waitVisible(page.getByRole('listitem', { name: aliceName }));
  await alice.context.close();
  await bob.context.close();
});

test('presence and typing in the chat header', { timeout: 120000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  await startDirectChat(alice.page, bobName);
  const header = alice.page.locator('.chat-header');
  await waitVisible(header.getByText('online', { exact: true }));

  // Bob opens the chat and types: alice sees "typing…"; it goes away when he sends.
  await sendMessage(alice.page, 'knock knock');
  await bob.page.getByRole('listitem', { name: aliceName }).click();
  await waitVisible(bob.page.locator('.chat-header').getByText('online', { exact: true }));
  await bob.page.getByRole('textbox', { name: 'Message' }).pressSequentially('who is th');
  await waitVisible(header.getByText('typing…'));
  await shot(alice.page, 'typing-alice');
  await bob.page.getByRole('textbox', { name: 'Message' }).pressSequentially('ere?');
  await bob.page.getByRole('textbox', { name: 'Message' }).press('Enter');
  await waitText(alice.page.locator('#message-items .msg.other').last(), 'who is there?');
  await until(async () => !(await header.getByText('typing…').isVisible()), 'typing… to disappear');

  // Bob leaves: alice sees "last seen …".
  await bob.context.close();
  await waitVisible(header.getByText(/^last seen/));
  assert.equal(await header.getByText('online', { exact: true }).count(), 0);
  await shot(alice.page, 'presence-last-seen');
  await alice.context.close();
});

test('phone width: list and chat one at a time, with human error messages', { timeout: 120000 }, async () => {
  const phone = { width: 390, height: 844 };
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const bob = await openUser(browser, server.url, bobName);
  const alice = await openUser(browser, server.url, aliceName, { viewport: phone });
  const { page } = alice;

  // Unknown user: a clear message, no crash.
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.getByRole('textbox', { name: 'Find user' }).fill('nobody_here_zz');
  await page.getByRole('button', { name: 'Start chat' }).click();
  await waitText(page.locator('#new-chat-error'), 'no user called');

  await page.getByRole('textbox', { name: 'Find user' }).fill(bobName);
  await page.getByRole('button', { name: 'Start chat' }).click();
  await waitVisible(page.getByRole('textbox', { name: 'Message' }));
  assert.equal(await page.getByRole('list').isVisible(), false, 'list hidden while a chat is open on a phone');
  await sendMessage(page, 'Hello from my phone');
  await waitTickAtLeast(page, 'Hello from my phone', 'Delivered');
  await shot(page, 'phone-chat');
  await page.getByRole('button', { name: 'Back to chats' }).click();
  await waitVisible(page.getByRole('listitem', { name: bobName }));
  await shot(page, 'phone-list');

  // Log-in errors are human.
  const ctx = await browser.newContext({ viewport: phone });
  const p2 = await ctx.newPage();
  await p2.goto(server.url);
  await p2.getByRole('textbox', { name: 'Username' }).fill(aliceName);
  await p2.getByRole('textbox', { name: 'Password' }).fill('wrong password!');
  await p2.getByRole('button', { name: 'Log in' }).click();
  await waitText(p2.getByRole('alert').first(), 'Wrong username or password');
  await p2.getByRole('button', { name: 'Create account' }).click();
  await waitText(p2.getByRole('alert').first(), 'already taken');
  await shot(p2, 'phone-login-error');
  await ctx.close();
  await alice.context.close();
  await bob.context.close();
});

test('scroll-back loads older history page by page, without gaps or duplicates', { timeout: 120000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  // Both accounts are made over HTTP; alice writes 75 messages (seeding, not
  // the UI) before bob logs in, so his client must page through history.
  const api = async (method, p, body, token) => {
    const res = await fetch(`${server.url}/v1${p}`, {
      method, body: body && JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    assert.ok(res.ok, `${method} ${p} -> ${res.status}`);
    return res.status === 204 ? null : res.json();
  };
  await api('POST', '/users', { username: aliceName, password: PASSWORD });
  await api('POST', '/users', { username: bobName, password: PASSWORD });
  const { token } = await api('POST', '/sessions', { username: aliceName, password: PASSWORD });
  const { user_id: bobId } = await api('GET', `/users?username=${bobName}`, undefined, token);
  const { conversation_id: cid } = await api('POST', '/conversations/direct', { user_id: bobId }, token);
  const texts = Array.from({ length: 75 }, (_, i) => `history ${String(i + 1).padStart(2, '0')}`);
  for (const [i, text] of texts.entries()) {
    await api('POST', `/conversations/${cid}/messages`, { client_msg_id: `seed-${i}`, kind: 'text', text }, token);
  }

  // Alice reads her own chat on a new device: nothing unread, so it opens at
  // the newest page (a chat with unread messages opens at the first of them,
  // see unread.test.mjs).
  const bob = await openUser(browser, server.url, aliceName, { register: false });
  const { page } = bob;
  const item = page.getByRole('listitem', { name: bobName });
  await waitText(item, 'history 75');
  await item.click();
  await waitText(page.locator('#message-items .msg.own').last(), 'history 75');
  assert.equal((await bubbleTexts(page)).length, 50, 'the newest page first');
  // Older pages as she scrolls up.
  for (let i = 0; i < 20 && (await bubbleTexts(page)).length < 75; i++) {
    await page.locator('#messages').evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    await page.waitForTimeout(150);
  }
  assert.deepEqual(await bubbleTexts(page), texts);
  await waitText(page.locator('#history-status'), 'beginning of the chat');
  await shot(page, 'scrollback-top');
  await bob.context.close();
});

test('two devices of one user stay in sync', { timeout: 120000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  const alice2 = await openUser(browser, server.url, aliceName, { register: false });
  await startDirectChat(alice.page, bobName);
  await sendMessage(alice.page, 'from my laptop');

  // Alice's other device shows it as her own message, ticks included.
  const item2 = alice2.page.getByRole('listitem', { name: bobName });
  await waitText(item2, 'from my laptop');
  await item2.click();
  await waitText(alice2.page.locator('#message-items .msg.own').last(), 'from my laptop');
  await bob.page.getByRole('listitem', { name: aliceName }).click();
  await waitTick(alice.page, 'from my laptop', 'Read');
  await waitTick(alice2.page, 'from my laptop', 'Read');

  // Bob answers; alice reads on device 2, device 1's unread badge clears.
  await alice2.page.getByRole('button', { name: 'Back to chats' }).isVisible(); // desktop: no-op
  await alice.page.getByRole('button', { name: 'New chat' }).click(); // move focus away from the chat
  await sendMessage(bob.page, 'got it');
  await waitText(alice2.page.locator('#message-items .msg.other').last(), 'got it');
  await waitTick(bob.page, 'got it', 'Read');
  await until(async () => !(await alice.page.getByRole('listitem', { name: bobName }).locator('.badge').isVisible()),
    'badge on device 1 cleared by the read on device 2');
  await alice.context.close();
  await alice2.context.close();
  await bob.context.close();
});
