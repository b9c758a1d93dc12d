// Groups show who is there: "3 members, 2 online" from the members'
// presence, "alice is typing…" and "alice and bob are typing…", and the
// member list with each member's presence or last seen.

import { test, before, after } from 'node:test';
import {
  startServer, launchBrowser, uniqueName, openUser, waitText, waitVisible, shot,
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

test('group header: members online, who is typing, member presence', { timeout: 120000 }, async () => {
  const [aliceName, bobName, carolName, daveName] = ['alice', 'bob', 'carol', 'dave'].map(uniqueName);
  const group = `Band ${Date.now().toString(36).slice(-4)}`;
  const dave = await openUser(browser, server.url, daveName);
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  const carol = await openUser(browser, server.url, carolName);
  // Dave goes away: he has a "last seen".
  await dave.context.close();

  await carol.page.getByRole('button', { name: 'New group' }).click();
  await carol.page.getByRole('textbox', { name: 'Group name' }).fill(group);
  await carol.page.getByRole('textbox', { name: 'Members' }).fill(`${aliceName}, ${bobName}, ${daveName}`);
  await carol.page.getByRole('button', { name: 'Create group' }).click();
  const header = carol.page.locator('.chat-header');
  await waitText(carol.page.locator('#chat-title'), group);
  // Carol, alice and bob are online; dave is not.
  await waitText(header, '4 members, 3 online');

  for (const u of [alice, bob]) await u.page.getByRole('listitem', { name: group }).click();
  await alice.page.getByRole('textbox', { name: 'Message' }).fill('I think');
  await waitText(header, `${aliceName} is typing…`);
  await bob.page.getByRole('textbox', { name: 'Message' }).fill('Me too');
  await waitText(header, `${aliceName} and ${bobName} are typing…`);
  await shot(carol.page, 'group-typing');

  await carol.page.getByRole('button', { name: 'Group info' }).click();
  const rows = carol.page.locator('#member-rows');
  await waitText(rows.locator('.member-row').filter({ hasText: bobName }), 'online');
  await waitText(rows.locator('.member-row').filter({ hasText: daveName }), 'last seen');
  await shot(carol.page, 'group-members-presence');

  // Bob leaves the app: one fewer online.
  await bob.context.close();
  await waitText(header, '4 members, 2 online');
});
