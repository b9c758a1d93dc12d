// Unread the WhatsApp way: a chat with unread messages opens at the first of
// them under an "N unread messages" separator; messages are marked read as
// they scroll into view, not all at once; "Jump to latest" and "Jump to
// first unread" take the user to either end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, waitText, waitVisible, until, shot, PASSWORD,
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

/** One HTTP call to the test server (seeding, not the UI). */
async function api(method, p, body, token) {
  const res = await fetch(`${server.url}/v1${p}`, {
    method, body: body && JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  assert.ok(res.ok, `${method} ${p} -> ${res.status}`);
  return res.status === 204 ? null : res.json();
}

/** A user made over HTTP: its id and a token. @param {string} name */
async function makeUser(name) {
  const { user_id: id } = await api('POST', '/users', { username: name, password: PASSWORD });
  const { token } = await api('POST', '/sessions', { username: name, password: PASSWORD });
  return { id, token, name };
}

/** Whether `locator`'s element is inside the visible part of the message log. */
async function inView(page, locator) {
  const box = await page.locator('#messages').boundingBox();
  const el = await locator.boundingBox();
  return !!(box && el && el.y + el.height > box.y && el.y < box.y + box.height);
}

test('a chat opens at its first unread message and reads as it scrolls', { timeout: 120000 }, async () => {
  const alice = await makeUser(uniqueName('alice'));
  const bob = await makeUser(uniqueName('bob'));
  const carol = await makeUser(uniqueName('carol'));
  const { conversation_id: cid } = await api('POST', '/conversations/direct', { user_id: bob.id }, alice.token);
  // Bob's own messages are read by him; alice's 40 after them are not.
  for (let i = 1; i <= 10; i++) {
    await api('POST', `/conversations/${cid}/messages`, { client_msg_id: `b${i}`, kind: 'text', text: `earlier ${i}` }, bob.token);
  }
  for (let i = 1; i <= 40; i++) {
    await api('POST', `/conversations/${cid}/messages`, { client_msg_id: `a${i}`, kind: 'text', text: `unread ${String(i).padStart(2, '0')}` }, alice.token);
  }
  const { conversation_id: cid2 } = await api('POST', '/conversations/direct', { user_id: bob.id }, carol.token);
  await api('POST', `/conversations/${cid2}/messages`, { client_msg_id: 'c1', kind: 'text', text: 'just one' }, carol.token);
  const bobRead = async () => {
    const d = await api('GET', `/conversations/${cid}`, undefined, alice.token);
    return Number(d.members.find((m) => m.user_id === bob.id).read_up_to) || 0;
  };

  const { page } = await openUser(browser, server.url, bob.name, { register: false });
  await page.getByRole('listitem', { name: alice.name }).click();
  const log = page.getByRole('log');
  const separator = log.getByText('40 unread messages', { exact: true });
  await waitVisible(separator);
  const bubble = (/** @type {string} */ text) => page.locator('#message-items .msg').filter({ hasText: text });
  await until(() => inView(page, bubble('unread 01')), 'the first unread message in view');
  assert.equal(await inView(page, bubble('unread 40')), false, 'the newest message is further down');
  assert.ok(await inView(page, separator), 'the separator is in view');
  await shot(page, 'unread-open');

  // Only what was seen is read.
  await until(async () => (await bobRead()) > 10, 'the visible messages read');
  await page.waitForTimeout(600);
  assert.ok((await bobRead()) < 50, 'not everything is read at once');

  await page.getByRole('button', { name: 'Jump to latest' }).click();
  await until(() => inView(page, bubble('unread 40')), 'the newest message in view');
  await until(async () => (await bobRead()) === 50, 'everything read once seen');
  await page.getByRole('button', { name: 'Jump to first unread' }).click();
  await until(() => inView(page, separator), 'back at the separator');
  await shot(page, 'unread-jump-back');

  // One unread message: singular.
  await page.getByRole('listitem', { name: carol.name }).click();
  await waitVisible(page.getByRole('log').getByText('1 unread message', { exact: true }));
  await waitText(page.locator('#chat-title'), carol.name);
});
