// A group of three: creation, group ticks from receipt summaries, an admin
// removes a member (system messages on every side, the removed member stops
// receiving), non-admins see no admin actions, rename, leave.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, sendMessage, waitText, waitVisible,
  waitTick, bubbleTexts, until, shot,
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

test('group of three with a removal, rename and leave', { timeout: 150000 }, async () => {
  const [aliceName, bobName, carolName] = ['alice', 'bob', 'carol'].map(uniqueName);
  const group = `Weekend ${Date.now().toString(36).slice(-4)}`;
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  const carol = await openUser(browser, server.url, carolName, { viewport: { width: 390, height: 844 } });

  // Alice creates the group; members are looked up by username.
  await alice.page.getByRole('button', { name: 'New group' }).click();
  await alice.page.getByRole('textbox', { name: 'Group name' }).fill(group);
  await alice.page.getByRole('textbox', { name: 'Members' }).fill(`${bobName}, ${carolName}`);
  await alice.page.getByRole('button', { name: 'Create group' }).click();
  await waitText(alice.page.locator('#chat-title'), group);
  await waitText(alice.page.locator('#message-items .msg.system'), 'You created the group');
  await waitText(alice.page.locator('.chat-header'), '3 members');

  // Everyone sees it live, named by the group name.
  for (const u of [bob, carol]) await waitVisible(u.page.getByRole('listitem', { name: group }));

  await sendMessage(alice.page, 'Hiking on Saturday?');
  await waitTick(alice.page, 'Hiking on Saturday?', 'Delivered');
  await bob.page.getByRole('listitem', { name: group }).click();
  await waitText(bob.page.locator('#message-items .msg.other').last(), 'Hiking on Saturday?');
  await waitText(bob.page.locator('#message-items .msg.other .sender').last(), aliceName);
  // Only bob has read it: not yet blue for the group.
  await waitTick(alice.page, 'Hiking on Saturday?', 'Delivered');
  await carol.page.getByRole('listitem', { name: group }).click();
  await waitText(carol.page.locator('#message-items .msg.other').last(), 'Hiking on Saturday?');
  await waitTick(alice.page, 'Hiking on Saturday?', 'Read');

  // Bob is not an admin: no admin actions, but he may leave.
  await bob.page.getByRole('button', { name: 'Group info' }).click();
  await waitVisible(bob.page.getByRole('button', { name: 'Leave group' }));
  assert.equal(await bob.page.getByRole('button', { name: /^Remove / }).count(), 0);
  assert.equal(await bob.page.getByRole('textbox', { name: 'Rename group' }).count(), 0);
  await bob.page.getByRole('button', { name: 'Close group details' }).click();

  // Alice (admin) removes carol.
  await alice.page.getByRole('button', { name: 'Group info' }).click();
  await alice.page.getByRole('button', { name: `Remove ${carolName}` }).click();
  await alice.page.getByRole('alertdialog').getByRole('button', { name: 'Remove' }).click();
  await waitText(alice.page.locator('#message-items .msg.system').last(), `You removed ${carolName}`);
  await waitText(bob.page.locator('#message-items .msg.system').last(), `${aliceName} removed ${carolName}`);
  await waitText(carol.page.locator('#message-items .msg.system').last(), `${aliceName} removed you`);
  await waitVisible(carol.page.getByText('no longer a member'));
  assert.equal(await carol.page.getByRole('textbox', { name: 'Message' }).isVisible(), false);
  await shot(alice.page, 'group-admin-panel');
  await shot(carol.page, 'group-removed-phone');

  // After the removal carol receives nothing more; bob does.
  await sendMessage(alice.page, 'Just the two of us now');
  await waitText(bob.page.locator('#message-items .msg.other').last(), 'Just the two of us now');
  await waitTick(alice.page, 'Just the two of us now', 'Read');
  assert.ok(!(await bubbleTexts(carol.page)).includes('Just the two of us now'));

  // Alice adds carol back: carol can write again.
  await alice.page.getByRole('textbox', { name: 'Usernames to add' }).fill(carolName);
  await alice.page.getByRole('button', { name: 'Add', exact: true }).click();
  await waitText(alice.page.locator('#message-items .msg.system').last(), `You added ${carolName}`);
  await waitText(carol.page.locator('#message-items .msg.system').last(), `${aliceName} added you`);
  await waitVisible(carol.page.getByRole('textbox', { name: 'Message' }));
  await sendMessage(carol.page, 'Thanks for having me back');
  await waitText(bob.page.locator('#message-items .msg.other').last(), 'Thanks for having me back');
  await waitText(alice.page.locator('.chat-header'), '3 members');

  // Rename: bob's list follows.
  const renamed = `${group} (2)`;
  await alice.page.getByRole('textbox', { name: 'Rename group' }).fill(renamed);
  await alice.page.getByRole('button', { name: 'Rename', exact: true }).click();
  await waitVisible(bob.page.getByRole('listitem', { name: renamed }));
  await waitText(bob.page.locator('#chat-title'), renamed);

  // Alice makes bob an admin: he now sees the admin actions.
  await alice.page.getByRole('button', { name: `Make ${bobName} an admin` }).click();
  await waitText(alice.page.locator('#message-items .msg.system').last(), `You made ${bobName} an admin`);
  await waitText(bob.page.locator('#message-items .msg.system').last(), `${aliceName} made you an admin`);
  await bob.page.getByRole('button', { name: 'Group info' }).click();
  await waitVisible(bob.page.getByRole('textbox', { name: 'Rename group' }));
  await waitVisible(bob.page.getByRole('button', { name: `Remove ${carolName}` }));

  // Bob leaves.
  await bob.page.getByRole('button', { name: 'Leave group' }).click();
  await bob.page.getByRole('alertdialog').getByRole('button', { name: 'Leave group' }).click();
  await waitText(alice.page.locator('#message-items .msg.system').last(), `${bobName} left`);
  await waitText(alice.page.locator('.chat-header'), '2 members');
  await waitVisible(bob.page.getByText('no longer a member'));
  await shot(alice.page, 'group-after-leave');
  await shot(bob.page, 'group-bob-left');
  for (const u of [alice, bob, carol]) {
    assert.deepEqual(u.errors, []);
    await u.context.close();
  }
});
