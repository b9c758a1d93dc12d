// Alerts for new messages (issue 15, web part): the "Notifications",
// "Message previews" and "Sounds" switches in Settings (previews reach the
// server), and — while the tab is hidden — a desktop notification, a beep
// and a count in the title and favicon per new message; a muted chat adds
// nothing, and the count clears when the tab shows again.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitVisible, until, apiRequest,
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

/** Count Notification constructions and beeps (oscillators) in `page`. @param {import('playwright-core').Page} page */
async function instrument(page) {
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.notes = [];
    w.beeps = 0;
    const Real = w.Notification;
    w.Notification = class extends Real {
      constructor(/** @type {string} */ title, /** @type {any} */ opts) { super(title, opts); w.notes.push({ title, body: opts && opts.body }); }
    };
    const osc = AudioContext.prototype.createOscillator;
    AudioContext.prototype.createOscillator = function () { w.beeps += 1; return osc.call(this); };
  });
}

/** Pretend the tab is hidden (true) or shown again (false). @param {import('playwright-core').Page} page @param {boolean} hidden */
function setHidden(page, hidden) {
  return page.evaluate((h) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

/** @param {import('playwright-core').Page} page */
const stored = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('parley.session') || '{}'));

test('settings switches; hidden tab notifies, beeps and counts; muted chats stay silent', { timeout: 180000 }, async () => {
  const [aliceName, bobName, carolName] = ['alice', 'bob', 'carol'].map(uniqueName);
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  const carol = await openUser(browser, server.url, carolName);
  const { page } = alice;
  await alice.context.grantPermissions(['notifications'], { origin: server.url });
  await instrument(page);

  // The switches: Notifications is off until switched on; Sounds is on.
  await page.getByRole('button', { name: 'Settings' }).click();
  const dialog = page.getByRole('dialog', { name: 'Settings' });
  const notifications = dialog.getByRole('checkbox', { name: 'Notifications', exact: true });
  const previews = dialog.getByRole('checkbox', { name: 'Message previews', exact: true });
  const sounds = dialog.getByRole('checkbox', { name: 'Sounds', exact: true });
  await waitVisible(notifications);
  assert.equal(await notifications.isChecked(), false);
  assert.equal(await previews.isChecked(), false);
  assert.equal(await sounds.isChecked(), true);
  await notifications.check();
  await until(async () => (await notifications.isChecked()) && !(await notifications.isDisabled()), 'notifications on');
  await previews.check();
  const { token } = await stored(page);
  await until(async () => (await apiRequest(server, 'GET', '/me', undefined, token)).push_previews === true, 'previews on at the server');
  await previews.uncheck();
  await until(async () => (await apiRequest(server, 'GET', '/me', undefined, token)).push_previews === false, 'previews off at the server');
  await previews.check();
  await until(async () => (await apiRequest(server, 'GET', '/me', undefined, token)).push_previews === true, 'previews on again');
  await dialog.getByRole('button', { name: 'Close settings' }).click();

  // Bob and carol each have a chat with alice; alice mutes carol's.
  await startDirectChat(bob.page, aliceName);
  await sendMessage(bob.page, 'hi alice');
  await startDirectChat(carol.page, aliceName);
  await sendMessage(carol.page, 'hi from carol');
  await waitVisible(page.getByRole('listitem', { name: bobName }));
  await waitVisible(page.getByRole('listitem', { name: carolName }));
  // Carol's only chat is the one with alice.
  const { conversations: [carolChat] } = await apiRequest(server, 'GET', '/conversations', undefined, (await stored(carol.page)).token);
  await apiRequest(server, 'PUT', `/conversations/${carolChat.conversation_id}/settings`, { muted_until_ms: -1 }, token);
  await waitVisible(page.getByRole('listitem', { name: carolName }).getByRole('img', { name: 'Muted' }));
  assert.deepEqual(await page.evaluate(() => /** @type {any} */ (window).notes.length), 0, 'nothing while visible');

  // Hidden: two messages from bob notify, beep and count; carol's muted chat adds nothing.
  await setHidden(page, true);
  await sendMessage(bob.page, 'are you there?');
  await sendMessage(carol.page, 'muted news');
  await sendMessage(bob.page, 'hello?');
  await until(() => page.evaluate(() => /** @type {any} */ (window).notes.length === 2), 'two notifications');
  const notes = await page.evaluate(() => /** @type {any} */ (window).notes);
  assert.deepEqual(notes.map((/** @type {any} */ n) => n.body), ['are you there?', 'hello?']);
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).beeps), 2);
  await until(async () => (await page.title()) === '(2) Parley', 'the title count');
  await until(() => page.evaluate(() => /** @type {HTMLLinkElement} */ (document.querySelector('link[rel="icon"]')).href.startsWith('data:image/png')), 'the favicon badge');
  // The muted message did arrive (and said nothing).
  await waitVisible(page.getByRole('listitem', { name: carolName }).getByText('muted news'));
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).notes.length), 2);

  // Shown again: the count and badge clear.
  await setHidden(page, false);
  await until(() => page.evaluate(() => !/** @type {HTMLLinkElement} */ (document.querySelector('link[rel="icon"]')).href.startsWith('data:')), 'the plain favicon');

  // Sounds off: the next hidden message notifies without a beep.
  await page.getByRole('button', { name: 'Settings' }).click();
  await sounds.uncheck();
  await dialog.getByRole('button', { name: 'Close settings' }).click();
  await setHidden(page, true);
  await sendMessage(bob.page, 'quietly');
  await until(() => page.evaluate(() => /** @type {any} */ (window).notes.length === 3), 'a third notification');
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).beeps), 2);
  await until(async () => (await page.title()) === '(1) Parley', 'the title count after showing');

  // Notifications off: nothing more is shown.
  await setHidden(page, false);
  await page.getByRole('button', { name: 'Settings' }).click();
  await notifications.uncheck();
  await until(() => page.evaluate(() => JSON.parse(localStorage.getItem('parley.alerts') || '{}').notifications === false), 'notifications off');
  await dialog.getByRole('button', { name: 'Close settings' }).click();
  await setHidden(page, true);
  await sendMessage(bob.page, 'unseen');
  await waitVisible(page.getByRole('listitem', { name: bobName }).getByText('unseen'));
  assert.equal(await page.title(), '(1) Parley');
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).notes.length), 3);

  assert.deepEqual(alice.errors, []);
  for (const u of [alice, bob, carol]) await u.context.close();
});
